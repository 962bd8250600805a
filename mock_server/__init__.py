"""hiapi-mock: an offline, faithful fake of the HiAPI unified async task API.

    >>> from mock_server import MockConfig, ManualClock, create_app
    >>> app = create_app(MockConfig(seed=1, profile="fast"), clock=ManualClock())

`app.state.backend` holds the fake's state; `ServerThread(app)` serves it on a free port.
"""

from __future__ import annotations

from .app import create_app
from .backend import Backend
from .catalog import Catalog, Model, Profile, Timing
from .clock import Clock, ManualClock, RealClock
from .config import KeyPolicy, KeyState, MockConfig
from .delivery import Attempt, CallbackFault, DeliveryPolicy, Fault, FaultRule
from .errors import MockError
from .receiver import CallbackReceiver, ReceivedCallback
from .scheduler import Scheduler
from .server import ServerThread
from .settings import Settings, SettingsError, load_settings
from .spec import Spec

__all__ = [
    "Attempt",
    "Backend",
    "CallbackFault",
    "CallbackReceiver",
    "Catalog",
    "Clock",
    "DeliveryPolicy",
    "Fault",
    "FaultRule",
    "KeyPolicy",
    "KeyState",
    "ManualClock",
    "MockConfig",
    "MockError",
    "Model",
    "Profile",
    "RealClock",
    "ReceivedCallback",
    "Scheduler",
    "ServerThread",
    "Settings",
    "SettingsError",
    "Spec",
    "Timing",
    "create_app",
    "load_settings",
]
