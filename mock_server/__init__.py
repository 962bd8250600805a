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
from .errors import MockError
from .server import ServerThread
from .spec import Spec

__all__ = [
    "Backend",
    "Catalog",
    "Clock",
    "KeyPolicy",
    "KeyState",
    "ManualClock",
    "MockConfig",
    "MockError",
    "Model",
    "Profile",
    "RealClock",
    "ServerThread",
    "Spec",
    "Timing",
    "create_app",
]
