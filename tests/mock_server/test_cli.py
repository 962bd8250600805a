"""`hiapi-mock serve` as a user runs it: a real process, real HTTP, the model page's examples."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from mock_server.cli import _banner, build_parser
from mock_server.server import free_port

from ..conftest import PAGE_EXAMPLE, REFERENCE_EXAMPLE, auth

SCRIPT = Path(sys.executable).parent / "hiapi-mock"


@contextmanager
def serve(*args: str) -> Iterator[tuple[str, list[str]]]:
    """Run `hiapi-mock serve` on a free port; yields its URL and the lines it printed."""
    port = free_port()
    command = [str(SCRIPT), "serve", "--port", str(port), *args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if "Uvicorn running" in line:
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(20), "".join(lines)
        yield f"http://127.0.0.1:{port}", lines
    finally:
        process.terminate()
        process.wait(10)
        reader.join(10)
        assert process.stdout is not None
        process.stdout.close()


def poll_until_terminal(client: httpx.Client, task_id: str) -> dict[str, Any]:
    waiter = threading.Event()
    for _ in range(500):  # bounded: 500 polls, 10 ms apart at most
        data: dict[str, Any] = client.get(f"/v1/tasks/{task_id}").json()["data"]
        if data["status"] in ("success", "fail"):
            return data
        waiter.wait(0.01)
    raise AssertionError(f"{task_id} did not finish")


@pytest.mark.parametrize(
    "args",
    [("--profile", "instant"), ("--profile", "realistic", "--time-scale", "1000")],
    ids=["instant", "realistic-x1000"],
)
def test_serve_runs_both_model_page_examples_to_a_downloadable_image(args: tuple[str, ...]) -> None:
    with serve(*args) as (url, lines), httpx.Client(base_url=url, headers=auth()) as client:
        banner = "".join(lines)
        assert url in banner and "curl" in banner
        for example, size in ((PAGE_EXAMPLE, (1024, 1024)), (REFERENCE_EXAMPLE, (928, 1152))):
            created = client.post("/v1/tasks", json=example)
            assert created.status_code == 200
            envelope = created.json()
            assert (envelope["code"], envelope["message"]) == (200, "success")
            task = poll_until_terminal(client, envelope["data"]["taskId"])
            assert task["status"] == "success"
            image = Image.open(io.BytesIO(client.get(task["output"][0]["url"]).content))
            assert (image.format, image.size) == ("PNG", size)


def test_one_seed_gives_the_same_ids_in_two_runs() -> None:
    args = ["--seed", "5", "--profile", "instant", "--time-scale", "0"]
    args += ["--start-time", "2026-03-01T00:00:00Z", "--failure-rate", "0.5"]
    runs = []
    for _ in range(2):
        with serve(*args) as (url, _), httpx.Client(base_url=url, headers=auth()) as client:
            ids = [
                client.post("/v1/tasks", json=PAGE_EXAMPLE).json()["data"]["taskId"] for _ in "abcd"
            ]
            runs.append([client.get(f"/v1/tasks/{i}").json()["data"] for i in ids])
    for task in runs[0] + runs[1]:
        task.pop("output", None)  # the URL names the port, which differs
    assert runs[0] == runs[1]
    assert runs[0][0]["created"] == 1_772_323_200
    assert {t["status"] for t in runs[0]} == {"success", "fail"}


def test_parser_defaults_and_refusals(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port, args.seed, args.profile, args.time_scale) == (
        "127.0.0.1",
        8000,
        0,
        "fast",
        1.0,
    )
    for bad in (["--profile", "slow"], ["--time-scale", "-1"], ["--failure-rate", "2"]):
        with pytest.raises(SystemExit) as exit_info:
            build_parser().parse_args(["serve", *bad])
        assert exit_info.value.code == 2
    assert "--time-scale" in capsys.readouterr().err


def test_banner_gives_the_base_url_and_a_working_curl_line() -> None:
    args = build_parser().parse_args(["serve", "--port", "9123", "--api-key", "sk-mine"])
    banner = _banner(args)
    assert "http://127.0.0.1:9123" in banner
    assert "curl -s http://127.0.0.1:9123/v1/tasks -H 'Authorization: Bearer sk-mine'" in banner
    assert "Nano-Banana-Pro" in banner
