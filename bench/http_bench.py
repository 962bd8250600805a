"""Section 2: HTTP throughput and latency with wrk, the fake against its ceiling and two peers.

Each target runs alone, on 127.0.0.1, one after another in one run: the fake (`hiapi-mock
serve`, default configuration), bare Starlette on the same uvicorn call, Prism 5 mocking the
same `openapi.yaml`, WireMock 3 with stubs answering the fake's own bytes. Each endpoint gets a
warm-up run (discarded), then a measured run of fixed length, at 32 connections.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from .meter import Meter, Usage
from .servers import Server, free_port, python_command, running
from .tooling import ROOT, WORK, ensure_node_packages, node_bin, node_package_version
from .wrk import WrkResult, lua_script, run_wrk

__all__ = [
    "BODY",
    "ENDPOINTS",
    "KEY",
    "HttpOptions",
    "Measurement",
    "fake_command",
    "run_http",
    "stack_description",
]

#: One Nano-Banana-Pro create body (the one `hiapi-mock serve` prints in its banner), sent by
#: every load generator to every target.
BODY = (
    '{"model":"Nano-Banana-Pro","input":{"prompt":"A luxury product photo of a banana on black '
    'marble","aspect_ratio":"1:1","resolution":"1K","output_format":"png"}}'
)
#: One key for all the load: the default profile (fast) counts requests per key and stamps
#: X-RateLimit-* headers but enforces nothing, so one key measures the default as shipped.
KEY = "sk-bench-load"
ENDPOINTS = ("POST /v1/tasks", "GET /v1/tasks/{id}")
TARGETS = ("hiapi-mock", "bare Starlette", "Prism 5", "WireMock 3")
_JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True, slots=True)
class HttpOptions:
    seconds: float = 10.0
    warmup: float = 3.0
    connections: int = 32
    rounds: int = 1


@dataclass(frozen=True, slots=True)
class Measurement:
    target: str
    endpoint: str
    result: WrkResult
    usage: Usage

    def to_json(self) -> dict[str, Any]:
        requests = max(self.result.requests, 1)
        return {
            "target": self.target,
            "endpoint": self.endpoint,
            **self.result.to_json(),
            "server_cpu_us_per_request": self.usage.server_cpu_s / requests * 1e6,
            "client_cpu_s": self.usage.client_cpu_s,
            "others_cores": self.usage.others_cores,
        }


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {KEY}"}


def _scripts() -> dict[str, str]:
    post = lua_script("POST", {**_auth(), "Content-Type": "application/json"}, BODY)
    return {ENDPOINTS[0]: post, ENDPOINTS[1]: lua_script("GET", _auth())}


def fake_command(port: int, *extra: str) -> list[str]:
    """`hiapi-mock serve` of this virtualenv on `port`."""
    script = Path(sys.prefix) / "bin" / "hiapi-mock"
    if script.exists():
        return [str(script), "serve", "--port", str(port), *extra]
    return python_command("-m", "mock_server.cli", "serve", "--port", str(port), *extra)


def _measure(target: str, server: Server, task_id: str, options: HttpOptions) -> list[Measurement]:
    urls = {
        ENDPOINTS[0]: f"{server.url}/v1/tasks",
        ENDPOINTS[1]: f"{server.url}/v1/tasks/{task_id}",
    }
    found = []
    for endpoint, script in _scripts().items():
        slug = re.sub(r"[^A-Za-z0-9.-]+", "_", f"{target}-{endpoint.split()[0]}")
        print(f"[bench] {target}: {endpoint} (warm-up {options.warmup:g} s)", flush=True)
        run_wrk(urls[endpoint], script, seconds=options.warmup, name=slug + "-warm",
                connections=options.connections)  # fmt: skip
        meter = Meter(server.pid)
        result = run_wrk(urls[endpoint], script, seconds=options.seconds, name=slug,
                         connections=options.connections)  # fmt: skip
        usage = meter.read()
        print(
            f"[bench]   {result.rps:,.0f} req/s  p50 {result.p50_ms:.2f} ms  "
            f"p99 {result.p99_ms:.2f} ms  non-2xx {result.non2xx}  "
            f"server {usage.server_cpu_s / max(result.requests, 1) * 1e6:.0f} us CPU/req  "
            f"others {usage.others_cores:.2f} cores",
            flush=True,
        )
        found.append(Measurement(target, endpoint, result, usage))
    return found


def _fake_bodies(url: str) -> tuple[str, bytes, bytes]:
    """A task made on the fake and finished; the fake's POST and GET answers, byte for byte."""
    with httpx.Client(base_url=url, timeout=10) as client:
        created = client.post(
            "/v1/tasks", content=BODY, headers={**_auth(), "Content-Type": "application/json"}
        )
        created.raise_for_status()
        task_id = created.json()["data"]["taskId"]
        client.post("/_mock/wait", json={"task_id": task_id, "status": "terminal"})
        got = client.get(f"/v1/tasks/{task_id}", headers=_auth())
        got.raise_for_status()
        assert got.json()["data"]["status"] == "success", got.text
        return task_id, created.content, got.content


def _stub_wiremock(url: str, post_body: bytes, get_body: bytes) -> None:
    stubs = (
        ("POST", {"url": "/v1/tasks"}, post_body),
        ("GET", {"urlPathPattern": "/v1/tasks/[^/]+"}, get_body),
    )
    with httpx.Client(base_url=url, timeout=10) as client:
        for method, matcher, body in stubs:
            response = {"status": 200, "body": body.decode(), "headers": _JSON}
            mapping = {"request": {"method": method, **matcher}, "response": response}
            client.post("/__admin/mappings", json=mapping).raise_for_status()


def _wait_http(url: str, path: str, timeout: float = 60.0) -> None:
    """Until `path` answers at all (WireMock's admin API comes up after its port)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url + path, timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"{url}{path} did not answer within {timeout:g} s")


def _check_answers(name: str, url: str, task_id: str) -> None:
    """One request of each kind answers 2xx, so wrk measures successes (it counts non-2xx too)."""
    with httpx.Client(base_url=url, timeout=10) as client:
        post = client.post(
            "/v1/tasks", content=BODY, headers={**_auth(), "Content-Type": "application/json"}
        )
        get = client.get(f"/v1/tasks/{task_id}", headers=_auth())
    for response in (post, get):
        if response.status_code >= 300:
            raise RuntimeError(f"{name}: {response.request.method} answered {response.text[:300]}")


def _run_target(target: str, options: HttpOptions, state: dict[str, Any]) -> list[Measurement]:
    """Start one target, measure both endpoints, stop it. The fake runs first in every round:
    the others answer its bytes (`state` keeps them, and a task id for the GET)."""
    port = free_port()
    if target == "hiapi-mock":
        with running("hiapi-mock", fake_command(port), port) as fake:
            state["task_id"], post_body, get_body = _fake_bodies(fake.url)
            bodies = {"post": post_body.decode(), "get": get_body.decode()}
            (WORK / "bodies.json").write_text(json.dumps(bodies))
            return _measure(target, fake, state["task_id"], options)
    task_id = state["task_id"]
    bodies = json.loads((WORK / "bodies.json").read_text())
    if target == "bare Starlette":
        bare = python_command(
            "-m", "bench.bare_app", "--port", str(port), "--bodies", str(WORK / "bodies.json")
        )
        with running("bare-starlette", bare, port) as server:
            _check_answers(target, server.url, task_id)
            return _measure(target, server, task_id, options)
    if target == "Prism 5":
        prism = [str(node_bin("prism")), "mock", "-p", str(port), "-v", "silent", "openapi.yaml"]
        with running("prism", prism, port) as server:
            _check_answers(target, server.url, task_id)
            return _measure(target, server, task_id, options)
    wiremock = [str(node_bin("wiremock")), "--port", str(port), "--bind-address", "127.0.0.1",
                "--disable-request-logging", "--no-request-journal"]  # fmt: skip
    with running("wiremock", wiremock, port) as server:
        _wait_http(server.url, "/__admin/mappings")
        _stub_wiremock(server.url, bodies["post"].encode(), bodies["get"].encode())
        _check_answers(target, server.url, task_id)
        return _measure(target, server, task_id, options)


def run_http(options: HttpOptions) -> dict[str, Any]:
    """Measure every target, `options.rounds` times (the peers in reversed order every other
    round, so a slow drift of the machine does not favour one of them); the raw results."""
    ensure_node_packages()
    measurements: list[Measurement] = []
    state: dict[str, Any] = {}
    for number in range(options.rounds):
        peers = list(TARGETS[1:]) if number % 2 == 0 else list(TARGETS[:0:-1])
        for target in [TARGETS[0], *peers]:
            measurements += _run_target(target, options, state)
    return {
        "options": {
            "seconds": options.seconds,
            "warmup": options.warmup,
            "connections": options.connections,
            "threads": 1,
            "rounds": options.rounds,
        },
        "stack": stack_description(),
        "measurements": [m.to_json() for m in measurements],
    }


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def stack_description() -> dict[str, str]:
    """What served the Python targets and what the peers and wrk were."""
    uvloop = importlib.util.find_spec("uvloop") is not None
    httptools = importlib.util.find_spec("httptools") is not None
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    wiremock_jars = sorted((ROOT / "bench" / ".node").glob("node_modules/wiremock/**/*.jar"))
    return {
        "python": sys.version.split()[0],
        "uvicorn": _version("uvicorn"),
        "starlette": _version("starlette"),
        "loop": f"uvloop {_version('uvloop')}" if uvloop else "asyncio",
        "http": f"httptools {_version('httptools')}" if httptools else "h11",
        "prism": node_package_version("@stoplight/prism-cli"),
        "wiremock": wiremock_jars[0].stem if wiremock_jars else node_package_version("wiremock"),
        "wrk": (wrk.stdout + wrk.stderr).splitlines()[0] if (wrk.stdout + wrk.stderr) else "?",
    }
