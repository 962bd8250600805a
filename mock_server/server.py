"""Run an app under a real uvicorn server in a background thread, on a free loopback port.

with ServerThread(create_app()) as server:
    httpx.get(server.url + "/v1/tasks")
"""

from __future__ import annotations

import asyncio
import socket
import threading
from types import TracebackType

import uvicorn
from starlette.types import ASGIApp

__all__ = ["ServerThread", "free_port"]

_START_TIMEOUT = 15.0


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class ServerThread:
    """A uvicorn server for `app` on `host:port` (a free port by default), in a daemon thread.

    Errors raised while serving are logged by uvicorn and the app turns them into 500s; the
    thread itself re-raises a failure to start.
    """

    def __init__(self, app: ASGIApp, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        config = uvicorn.Config(
            app, host=self.host, port=self.port, log_level="warning", lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name=f"uvicorn:{self.port}", daemon=True)
        self._error: BaseException | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # surfaced to the starting thread
            self._error = exc

    async def _serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        await self.server.serve()

    def start(self) -> ServerThread:
        self._thread.start()
        started = threading.Event()

        def ready() -> bool:
            return self.server.started or not self._thread.is_alive()

        # Poll a flag uvicorn sets; bounded by _START_TIMEOUT.
        for _ in range(int(_START_TIMEOUT / 0.01)):
            if ready():
                break
            started.wait(0.01)
        if self._error is not None or not self.server.started:
            self.stop()
            raise RuntimeError(f"uvicorn did not start on {self.url}") from self._error
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=_START_TIMEOUT)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
