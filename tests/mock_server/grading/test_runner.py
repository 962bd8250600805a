"""The runner: the fake it starts, the environment it gives, and the clients it stops."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

import mock_server.grading
from mock_server.grading import (
    SCENARIOS,
    Command,
    GradingError,
    PythonClient,
    Verdict,
    render_table,
    select,
)
from mock_server.grading.clients import as_client, environment
from mock_server.grading.fixtures import Grader

from .clients import naive_client, reference_client

pytestmark = pytest.mark.server


def test_all_lists_exactly_the_public_names() -> None:
    public = {
        name
        for name, value in vars(mock_server.grading).items()
        if not name.startswith("_")
        and getattr(value, "__module__", "").startswith("mock_server.grading")
    }
    assert set(mock_server.grading.__all__) == public | {"GRADES", "SCENARIOS", "ClientFunction"}


def test_select_keeps_the_order_given() -> None:
    assert [s.name for s in select("task_failed,happy_path,task_failed")] == [
        "task_failed",
        "happy_path",
    ]
    assert select("all") == list(SCENARIOS)
    with pytest.raises(GradingError, match="unknown scenario"):
        select("happy_path,nope")


def test_the_environment_keeps_the_graders_own_hiapi_settings_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HIAPI_API_KEY", "sk-a-real-key")
    monkeypatch.setenv("HIAPI_WEBHOOK_SECRET", "a-real-secret-0000")
    monkeypatch.setenv("NO_PROXY", "corp.example")
    env = environment({"HIAPI_BASE_URL": "http://127.0.0.1:1"})
    assert env["HIAPI_BASE_URL"] == "http://127.0.0.1:1"
    assert "HIAPI_API_KEY" not in env and "HIAPI_WEBHOOK_SECRET" not in env
    assert env["NO_PROXY"] == "corp.example,127.0.0.1,localhost"


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ")[-1].startswith("Z")


def test_a_client_past_its_timeout_is_stopped_with_what_it_started(tmp_path: Path) -> None:
    pid_file = tmp_path / "helper.pid"
    command = Command(["sh", "-c", f'sleep 60 & echo $! > "{pid_file}"; wait'])
    started = time.monotonic()
    execution = command.run({}, 0.5, tmp_path)
    assert execution.timed_out and execution.exit_code is None
    assert time.monotonic() - started < 10
    helper = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while not _gone(helper) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _gone(helper), "the client's background helper outlived it"


def test_a_finished_client_leaves_nothing_behind(tmp_path: Path) -> None:
    pid_file = tmp_path / "helper.pid"
    command = Command(["sh", "-c", f'sleep 60 & echo $! > "{pid_file}"; echo done; exit 4'])
    execution = command.run({}, 10, tmp_path)
    assert (execution.exit_code, execution.timed_out, execution.stdout) == (4, False, "done")
    helper = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while not _gone(helper) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _gone(helper)


def test_python_clients_exit_statuses(tmp_path: Path) -> None:
    def boom(env: object) -> int:
        raise RuntimeError("the client broke")

    broken = PythonClient(boom).run({}, 5, tmp_path)
    assert broken.exit_code == 1 and "RuntimeError: the client broke" in broken.stderr
    assert PythonClient(lambda env: None).run({}, 5, tmp_path).exit_code == 0
    assert PythonClient(lambda env: sys.exit(3)).run({}, 5, tmp_path).exit_code == 3
    with pytest.raises(GradingError, match="list of arguments"):
        as_client("./client.sh")
    assert isinstance(as_client(["./client.sh"]), Command)


def test_a_python_callable_is_graded_in_process(hiapi_grader: Grader) -> None:
    report = hiapi_grader.grade(reference_client.run, "happy_path,callback_duplicated", timeout=20)
    assert report.ok and not report.findings(), render_table(report)
    assert report.client == "run"
    acks = report["callback_duplicated"].get("receiver_ack")
    assert acks is not None and acks.reason == "answered 2xx to all 3 deliveries"


def test_the_same_fixture_grades_a_naive_callable(hiapi_grader: Grader) -> None:
    report = hiapi_grader.grade(naive_client.run, "unavailable_polling", timeout=20)
    result = report["unavailable_polling"].get("retry_after")
    assert result is not None and result.verdict is Verdict.FAIL
    assert report.exit_code == 1
