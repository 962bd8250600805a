"""`hiapi-contract check`: exit 0 against the fake, non-zero against a broken one."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import contract
from contract.cli import main
from mock_server.store import OutputPlan

from .conftest import EXAMPLES, KEYS, Variant


def test_exit_zero_against_the_fake(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check", "--examples", str(EXAMPLES), "--seed", "3", "--report", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "PASS  lifecycle.status_order [lifecycle]" in out  # progress, one line per check
    assert "PASSED:" in out and "Spent:" in out
    assert (tmp_path / "report.xml").is_file() and (tmp_path / "report.json").is_file()


def test_non_zero_against_a_broken_fake(
    serve: Callable[..., Variant], capsys: pytest.CaptureFixture[str]
) -> None:
    variant = serve()
    plan = variant.backend.outputs.plan

    def wider(*args: Any, **kwargs: Any) -> OutputPlan:
        return replace(plan(*args, **kwargs), width=1)

    variant.backend.outputs.plan = wider  # type: ignore[method-assign]
    argv = ["check", "--base-url", variant.url, "--api-key", KEYS[0], "--only", "lifecycle"]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "FAIL  outputs.pixel_size [lifecycle]" in out
    assert "curl -X GET" in out and "FAILED:" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["check", "--live"],
        ["check", "--base-url", "http://127.0.0.1:9"],
        ["check", "--max-tasks", "-1"],
        ["check", "--only", "everything"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "hiapi-contract" in capsys.readouterr().err


def test_runnable_as_python_dash_m() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "contract", "check", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=Path(contract.__file__).resolve().parent.parent,
    )
    assert done.returncode == 0, done.stderr
    assert "--webhook-secret" in done.stdout and "--max-tasks" in done.stdout


def test_a_bad_option_value_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["check", "--only", "behaviour", "--callback-listen", "nowhere"]
    assert main(argv) == 2
    assert "--callback-listen must be HOST:PORT" in capsys.readouterr().err
