"""hiapi-mock started in this process, on a free loopback port, for a run without `--base-url`.

The harness still checks it only over HTTP: this module just serves it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from mock_server.app import create_app
from mock_server.catalog import Profile
from mock_server.clock import RealClock
from mock_server.config import MockConfig
from mock_server.server import ServerThread

__all__ = ["DEFAULT_KEYS", "default_secret", "serve_fake"]

#: The fake accepts any `sk-...` key, each its own tenant: two keys make isolation checkable.
DEFAULT_KEYS = ("sk-hiapi-contract-primary", "sk-hiapi-contract-other")


def default_secret(seed: int) -> str:
    """A webhook signing key for the in-process fake (16 to 256 characters)."""
    return f"whsec-hiapi-contract-{seed:08d}"


@contextmanager
def serve_fake(seed: int, webhook_secret: str) -> Iterator[str]:
    """Serve hiapi-mock (fast timings, real clock, signing on) and yield its base URL.

    Creates take 0.3 s to answer, as live ones take a moment, so a second create with the
    same Idempotency-Key can arrive while the first is in flight and the 409 is observable.
    """
    profile = Profile("fast", accept=0.3)
    config = MockConfig(seed=seed, profile=profile, webhook_secret=webhook_secret)
    app = create_app(config, clock=RealClock())
    quiet = _ProbeNoise()
    logging.getLogger("uvicorn.error").addFilter(quiet)
    server = ServerThread(app).start()
    try:
        yield server.url
    finally:
        server.stop()
        app.state.backend.close()
        logging.getLogger("uvicorn.error").removeFilter(quiet)


class _ProbeNoise(logging.Filter):
    """Drops uvicorn's warning about Schemathesis's deliberate NUL-byte header probe."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "Invalid HTTP request received."
