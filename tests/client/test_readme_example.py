"""The README's reference-client example, run against a real fake so it cannot rot.

The example is the first ```python block after the heading `## Reference client` (before the
next `## ` heading) of `README.md`, or of the file named by `README_PATH`. It runs as a script
(`__name__ == "__main__"`), in-process, with `HIAPI_BASE_URL`, `HIAPI_API_KEY` and
`HIAPI_WEBHOOK_SECRET` pointing at a fake served by uvicorn: the `instant` profile on the wall
clock, so tasks end at once and callback timestamps agree with the receiver's clock.
It must send the model page's two example requests (as `openapi.yaml` records them), each with
a callback, and its receiver must hand each task to its handler once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from client import CallbackReceiver
from mock_server.app import create_app
from mock_server.backend import Backend
from mock_server.clock import RealClock
from mock_server.config import MockConfig
from mock_server.server import ServerThread

from .conftest import HTTP_TIMEOUT, WEBHOOK_SECRET

pytestmark = pytest.mark.server

ROOT = Path(__file__).resolve().parents[2]
README = Path(os.environ.get("README_PATH") or ROOT / "README.md")
HEADING = "## Reference client"
API_KEY = "sk-test-readme-example"


def example_block(readme: Path = README) -> tuple[str, int]:
    """The example's code and the line of its opening fence."""
    lines = readme.read_text(encoding="utf-8").splitlines()
    assert HEADING in lines, f"{readme}: no {HEADING!r} heading"
    start = lines.index(HEADING) + 1
    for number in range(start, len(lines)):
        line = lines[number]
        if line.startswith("## "):
            break
        if line.strip() == "```python":
            end = lines.index("```", number + 1)
            return "\n".join(lines[number + 1 : end]) + "\n", number + 1
    raise AssertionError(f"{readme}: no ```python block under {HEADING!r}")


def model_page_requests() -> list[dict[str, Any]]:
    """The model page's example bodies, as openapi.yaml keeps them."""
    document = yaml.safe_load((ROOT / "openapi.yaml").read_text(encoding="utf-8"))
    content = document["paths"]["/v1/tasks"]["post"]["requestBody"]["content"]
    return [example["value"] for example in content["application/json"]["examples"].values()]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    config = MockConfig(seed=3, profile="instant", webhook_secret=WEBHOOK_SECRET)
    backend = Backend(config, clock=RealClock())
    with ServerThread(create_app(backend=backend)) as server:
        monkeypatch.setenv("HIAPI_BASE_URL", server.url)
        monkeypatch.setenv("HIAPI_API_KEY", API_KEY)
        monkeypatch.setenv("HIAPI_WEBHOOK_SECRET", WEBHOOK_SECRET)
        yield backend
    backend.close()


def test_the_readme_example_runs_the_model_pages_requests(
    fake: Backend, capsys: pytest.CaptureFixture[str]
) -> None:
    code, line = example_block()
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(compile(code, f"{README}:{line}", "exec"), namespace)

    posts = [json.loads(e.body) for e in fake.journal.entries(method="POST", path="/v1/tasks")]
    callbacks = [post.pop("callback") for post in posts]
    assert posts == model_page_requests()
    assert all(callback["url"].startswith("http://127.0.0.1:") for callback in callbacks)

    task_ids = {task.task_id for task in fake.store.newest(API_KEY, 0, 10)}
    assert len(task_ids) == 2
    fake.callbacks.wait_idle(HTTP_TIMEOUT)
    assert {attempt.task_id for attempt in fake.callbacks.log if attempt.ok} == task_ids
    assert set(namespace["finished"]) == task_ids  # what the script's handler was given
    receiver = namespace["receiver"].state.receiver
    assert isinstance(receiver, CallbackReceiver) and not receiver.errors

    printed = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in printed] == ["product photo", "reference edit"]
    assert all(": success, " in line for line in printed)
