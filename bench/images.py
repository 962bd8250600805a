"""Section 5: images. Time to first byte of 1K, 2K and 4K outputs, first download (rendered)
and cached, over HTTP from `hiapi-mock serve` (default configuration); and whether 4K first
downloads slow concurrent `GET /v1/tasks/{id}` answers.

Time to first byte: a kept-alive socket sends the request; the clock stops at the first byte
of the answer (the rest is read and dropped). Each first download is of a task never downloaded
before (each task renders its own picture); cached is the same file again.

Concurrent GETs: wrk on `GET /v1/tasks/{id}` without, then with, a client that downloads 4K
outputs of fresh tasks back to back for the whole run; at 32 connections (the server busy) and
at 1 connection (the server mostly idle, so a render only slows a GET by holding the GIL or the
event loop).
"""

from __future__ import annotations

import socket
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from .http_bench import KEY, fake_command
from .servers import HOST, free_port, python_command, running
from .tooling import ROOT
from .wrk import lua_script, run_wrk

__all__ = ["run_images"]

RESOLUTIONS = ("1K", "2K", "4K")
_AUTH = {"Authorization": f"Bearer {KEY}"}


def _create(client: httpx.Client, resolution: str, index: int) -> str:
    body = {
        "model": "Nano-Banana-Pro",
        "input": {
            "prompt": f"A luxury product photo of a banana on black marble, take {index}",
            "aspect_ratio": "1:1",
            "resolution": resolution,
            "output_format": "png",
        },
    }
    answer = client.post("/v1/tasks", json=body, headers=_AUTH)
    answer.raise_for_status()
    task_id: str = answer.json()["data"]["taskId"]
    return task_id


def _file_paths(client: httpx.Client, ids: list[str]) -> list[str]:
    paths = []
    for task_id in ids:
        client.post("/_mock/wait", json={"task_id": task_id, "status": "terminal"})
        task = client.get(f"/v1/tasks/{task_id}", headers=_AUTH).json()["data"]
        paths.append(urlsplit(task["output"][0]["url"]).path)
    return paths


def _read_answer(sock: socket.socket, first: bytes) -> int:
    """Read the rest of an answer whose first bytes are `first`; its size."""
    data = first
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, rest = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(rest) < length:
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("the server closed mid-answer")
        rest += chunk
    return length


def ttfb(port: int, path: str) -> tuple[float, int]:
    """(seconds to the first byte, body size) of one GET on a connection made beforehand."""
    with socket.create_connection((HOST, port)) as sock:
        request = f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode()
        started = time.perf_counter()
        sock.sendall(request)
        first = sock.recv(1)
        elapsed = time.perf_counter() - started
        return elapsed, _read_answer(sock, first)


def _ttfb_table(port: int, client: httpx.Client, samples: int) -> list[dict[str, Any]]:
    rows = []
    for resolution in RESOLUTIONS:
        ids = [_create(client, resolution, i) for i in range(samples)]
        paths = _file_paths(client, ids)
        first = [ttfb(port, path) for path in paths]
        cached = [ttfb(port, paths[0])[0] for _ in range(5)]
        rows.append(
            {
                "resolution": resolution,
                "bytes": first[0][1],
                "first_ms": [round(t * 1000, 2) for t, _ in first],
                "first_median_ms": statistics.median(t for t, _ in first) * 1000,
                "cached_median_ms": statistics.median(cached) * 1000,
            }
        )
        print(
            f"[bench] image {resolution}: first byte {rows[-1]['first_median_ms']:.1f} ms "
            f"first download, {rows[-1]['cached_median_ms']:.2f} ms cached",
            flush=True,
        )
    return rows


@contextmanager
def _downloading(port: int, paths: list[str]) -> Iterator[list[float]]:
    """4K first downloads back to back in a thread while the block runs; their times."""
    stop = threading.Event()
    times: list[float] = []

    def work() -> None:
        for path in paths:
            if stop.is_set():
                return
            started = time.perf_counter()
            ttfb(port, path)
            times.append(time.perf_counter() - started)

    thread = threading.Thread(target=work, name="4k-downloads", daemon=True)
    thread.start()
    try:
        yield times
    finally:
        stop.set()
        thread.join(120)


def _concurrent(
    port: int, client: httpx.Client, seconds: float, renders: int
) -> list[dict[str, Any]]:
    task_id = _create(client, "1K", 10_000)
    _file_paths(client, [task_id])
    url = f"http://{HOST}:{port}/v1/tasks/{task_id}"
    script = lua_script("GET", _AUTH)
    rows = []
    for connections in (32, 1):
        ids = [_create(client, "4K", 20_000 + connections * 1000 + i) for i in range(renders)]
        paths = _file_paths(client, ids)
        run_wrk(url, script, seconds=2, connections=connections, name="img-warm")
        alone = run_wrk(url, script, seconds=seconds, connections=connections, name="img-alone")
        with _downloading(port, paths) as times:
            busy = run_wrk(url, script, seconds=seconds, connections=connections, name="img-4k")
        rows.append(
            {
                "connections": connections,
                "alone": alone.to_json(),
                "with_4k": busy.to_json(),
                "renders": len(times),
                "render_download_median_ms": statistics.median(times) * 1000 if times else None,
            }
        )
        print(
            f"[bench] GET at {connections} conn: {alone.rps:,.0f} -> {busy.rps:,.0f} req/s, "
            f"p50 {alone.p50_ms:.2f} -> {busy.p50_ms:.2f} ms, p99 {alone.p99_ms:.2f} -> "
            f"{busy.p99_ms:.2f} ms with {len(times)} 4K first downloads",
            flush=True,
        )
    return rows


def run_images(
    seconds: float = 8.0, samples: int = 3, renders: int = 60, tree: Path | None = None
) -> dict[str, Any]:
    """The image measurements; `tree`: serve the `mock_server` of that source tree instead."""
    port = free_port()
    command = fake_command(port)
    if tree is not None:
        command = python_command("-m", "mock_server.cli", "serve", "--port", str(port))
    with (
        running("hiapi-mock-images", command, port, tree or ROOT) as fake,
        httpx.Client(base_url=fake.url, timeout=60) as client,
    ):
        return {
            "ttfb": _ttfb_table(port, client, samples),
            "concurrent": _concurrent(port, client, seconds, renders),
        }
