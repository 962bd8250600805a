"""The ceiling of the stack: bare Starlette answering constant JSON, served exactly as
`hiapi-mock serve` serves the fake (`uvicorn.Server(uvicorn_config(app, host, port,
log_level="info"))`, so the same loop, HTTP protocol, access log and limits).

    python -m bench.bare_app --port 8001 --bodies bodies.json

`bodies.json` holds the fake's own answers (`{"post": "...", "get": "..."}`), so both servers send
the same bytes. The POST route reads the request body (and ignores it): the cost of receiving it
is part of the stack.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mock_server.server import uvicorn_config

__all__ = ["create_bare_app", "main"]


def create_bare_app(post_body: bytes, get_body: bytes) -> Starlette:
    async def create(request: Request) -> Response:
        await request.body()
        return Response(post_body, media_type="application/json")

    async def read(request: Request) -> Response:
        return Response(get_body, media_type="application/json")

    return Starlette(
        routes=[
            Route("/v1/tasks", create, methods=["POST"]),
            Route("/v1/tasks/{task_id}", read, methods=["GET"]),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bare_app")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bodies", type=Path, required=True)
    args = parser.parse_args()
    bodies = json.loads(args.bodies.read_text())
    app = create_bare_app(bodies["post"].encode(), bodies["get"].encode())
    # The very call of `mock_server.cli.main`, loop left at "auto" (uvloop where installed).
    uvicorn.Server(uvicorn_config(app, "127.0.0.1", args.port, log_level="info")).run()


if __name__ == "__main__":
    main()
