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

from mock_server.cli import _banner, build_parser, overrides, settings_from_args
from mock_server.clock import DEFAULT_START
from mock_server.server import free_port
from mock_server.settings import Settings

from ..conftest import PAGE_EXAMPLE, REFERENCE_EXAMPLE, auth

SCRIPT = Path(sys.executable).parent / "hiapi-mock"
EXAMPLE = Path(__file__).parents[2] / "examples" / "mock.toml"
#: A CI job's scenario: a manual clock, one key, one rule, and a token the command line replaces.
SCENARIO = """
[server]
control_token = "from-the-file"

[fake]
clock = "manual"
profile = "fast"
seed = 3

[[keys]]
key = "sk-listed"

[[rules]]
match = { prompt = "[fail-me]" }
action = { type = "outcome", status = "fail", code = "CONTENT_REJECTED", message = "by the file" }
"""


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


def settings_of(*flags: str) -> Settings:
    return settings_from_args(build_parser().parse_args(["serve", *flags]))


def test_parser_defaults_and_refusals(capsys: pytest.CaptureFixture[str]) -> None:
    settings = settings_of()
    assert (settings.host, settings.port, settings.config.seed, settings.config.profile) == (
        "127.0.0.1",
        8000,
        0,
        "fast",
    )
    assert (settings.clock_kind, settings.clock.speed) == ("real", 1.0)
    refused = [
        ["--profile", "slow"],
        ["--time-scale", "-1"],
        ["--failure-rate", "2"],
        ["--clock", "wall"],
        ["--rate-limit", "maybe"],
        ["--journal-size", "-1"],
        ["--chaos-429", "2"],
        ["--chaos-callback", "dorp=0.1"],
        ["--chaos-callback", "drop"],
        ["--port", "0"],
        ["--webhook-secret", "short"],
        ["--api-key", "alice"],
    ]
    for bad in refused:
        with pytest.raises(SystemExit) as exit_info:
            build_parser().parse_args(["serve", *bad])
        assert exit_info.value.code == 2
        assert bad[0] in capsys.readouterr().err


def test_a_flag_left_out_leaves_the_files_value_alone(tmp_path: Path) -> None:
    path = tmp_path / "mock.toml"
    path.write_text(
        '[fake]\nseed = 7\nfailure_rate = 0.5\nclock = "manual"\n'
        '[callbacks]\nhttps_only = true\ntimeout = 3\n[[keys]]\nkey = "sk-file"\n'
    )
    settings = settings_of("--config", str(path), "--seed", "9", "--no-callback-https-only")
    assert (settings.config.seed, settings.config.callback_https_only) == (9, False)
    assert (settings.config.failure_rate, settings.config.delivery.timeout) == (0.5, 3.0)
    assert (settings.clock_kind, list(settings.config.keys)) == ("manual", ["sk-file"])
    assert list(settings_of("--config", str(path), "--api-key", "sk-a").config.keys) == ["sk-a"]


def test_every_new_flag_reaches_its_setting() -> None:
    flags = ["--clock", "manual", "--control-token", "t0k", "--rate-limit", "on"]
    flags += ["--journal-size", "5", "--chaos-429", "0.1", "--chaos-503", "0.2"]
    flags += ["--chaos-callback", "drop=0.3", "--chaos-callback", "duplicate=0.1"]
    args = build_parser().parse_args(["serve", *flags])
    assert overrides(args) == {
        "server": {"control_token": "t0k"},
        "fake": {"clock": "manual", "rate_limit": True, "journal_size": 5},
        "chaos": {
            "rate_429": 0.1,
            "rate_503": 0.2,
            "callback_faults": {"drop": 0.3, "duplicate": 0.1},
        },
    }
    settings = settings_from_args(args)
    config = settings.config
    assert (settings.clock_kind, settings.clock.now(), settings.clock.speed) == (
        "manual",
        DEFAULT_START,
        0.0,
    )
    assert (config.control_token, config.rate_limit_enforced(), config.journal_size) == (
        "t0k",
        True,
        5,
    )
    assert (config.chaos.rate_429, config.chaos.rate_503) == (0.1, 0.2)
    assert config.chaos.callback_faults == {"drop": 0.3, "duplicate": 0.1}


def test_banner_gives_the_base_url_and_a_working_curl_line() -> None:
    banner = _banner(settings_of("--port", "9123", "--api-key", "sk-mine"))
    assert "http://127.0.0.1:9123" in banner
    assert "curl -s http://127.0.0.1:9123/v1/tasks -H 'Authorization: Bearer sk-mine'" in banner
    assert "Nano-Banana-Pro" in banner
    assert "control:   http://127.0.0.1:9123/_mock/" in banner
    assert "frozen" not in banner


def test_banner_says_a_manual_clock_waits_for_the_control_api() -> None:
    banner = _banner(settings_of("--port", "9123", "--clock", "manual", "--control-token", "t"))
    assert "manual, frozen at 2026-01-01T00:00:00Z until POST " in banner
    assert "http://127.0.0.1:9123/_mock/clock/advance" in banner
    assert "X-Mock-Token" in banner and "'X-Mock-Token: t'" not in banner  # never the token


def test_a_bad_configuration_file_stops_the_server_with_status_2(tmp_path: Path) -> None:
    path = tmp_path / "mock.toml"
    path.write_text('[fake]\nclock = "wall"\n')
    done = subprocess.run(
        [str(SCRIPT), "serve", "--config", str(path)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2
    assert f"{path}: fake.clock: must be one of real, manual" in done.stderr


def test_serve_runs_the_scenario_of_a_configuration_file(tmp_path: Path) -> None:
    path = tmp_path / "mock.toml"
    path.write_text(SCENARIO)
    token = {"X-Mock-Token": "from-the-flag"}
    with (
        serve("--config", str(path), "--control-token", "from-the-flag") as (url, lines),
        httpx.Client(base_url=url, headers=auth("sk-listed")) as client,
    ):
        banner = "".join(lines)
        assert f"{url}/_mock/" in banner and f"POST {url}/_mock/clock/advance" in banner
        # Only the file's key exists.
        assert client.post("/v1/tasks", json=PAGE_EXAMPLE, headers=auth()).status_code == 401
        plain = client.post("/v1/tasks", json=PAGE_EXAMPLE).json()["data"]["taskId"]
        body = {**PAGE_EXAMPLE, "input": {**PAGE_EXAMPLE["input"], "prompt": "a [fail-me] pear"}}
        failing = client.post("/v1/tasks", json=body).json()["data"]["taskId"]
        # The flag's token replaced the file's.
        assert client.get("/_mock/clock").status_code == 401
        assert (
            client.get("/_mock/clock", headers={"X-Mock-Token": "from-the-file"}).status_code == 401
        )
        # Frozen: the clock reads its start however often it is asked; tasks wait.
        clock = client.get("/_mock/clock", headers=token)
        assert clock.status_code == 200
        assert clock.json()["data"] == client.get("/_mock/clock", headers=token).json()["data"]
        assert clock.json()["data"]["now"] == DEFAULT_START
        assert client.get(f"/v1/tasks/{plain}").json()["data"]["status"] not in ("success", "fail")
        advanced = client.post("/_mock/clock/advance", json={"seconds": 60}, headers=token)
        assert advanced.json()["data"]["now"] == DEFAULT_START + 60
        assert poll_until_terminal(client, plain)["status"] == "success"
        task = poll_until_terminal(client, failing)
        assert (task["status"], task["error"]) == (
            "fail",
            {"code": "CONTENT_REJECTED", "message": "by the file"},
        )


def test_serve_runs_the_example_file(tmp_path: Path) -> None:
    with (
        serve("--config", str(EXAMPLE)) as (url, lines),
        httpx.Client(base_url=url) as client,
    ):
        assert f"config:    {EXAMPLE} (3 keys, 3 rules)" in "".join(lines)
        assert client.get("/v1/tasks", headers=auth("sk-revoked")).status_code == 401
        assert client.get("/v1/tasks", headers=auth("sk-alice")).status_code == 200
