"""The README's "Staging a bad day" section, run, so its examples cannot rot.

The format the section keeps to:

- The section runs from the line `## Staging a bad day` to the line
  `<!-- end: staging-a-bad-day -->`.
- Its first ```sh block is the prelude (where the fake is, shell helpers) and prints nothing.
  Every later ```sh block runs after it as one `bash` script under `set -euo pipefail`, with
  `BASE` and `KEY` in its environment, against a fake reset just before: seed 0, the `fast`
  profile and a manual clock at 2026-01-01T00:00:00Z, as `hiapi-mock serve --clock manual` runs.
- A comment `# => EXPECTED`, continued on the comment lines right after it that start with `#`
  and two or more spaces, is what the script prints next. EXPECTED starting with `{` or `[` is
  JSON, matched against the next JSON value printed; anything else is the next line printed,
  exactly (a trailing `\\r` aside). In expected JSON, a bare `...` in an object allows more
  members, a bare `...` as the last item of a list allows more items, and the string `"..."`
  matches any value; otherwise objects have exactly the members shown and lists the items.
  Everything a block prints must be expected, and it must exit 0.
- Every ```python block is a test module using the plugin's fixtures; it runs with pytester in a
  fresh interpreter (under `filterwarnings = error`) and must pass, with at least one test.

`bash` and `curl` must be installed: without them these tests fail, they never skip.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from mock_server.app import create_app
from mock_server.clock import ManualClock
from mock_server.config import MockConfig
from mock_server.server import ServerThread

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.server

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "## Staging a bad day\n", "<!-- end: staging-a-bad-day -->\n"
KEY = "sk-test"
#: Bound of one block's run, wall seconds.
BLOCK_TIMEOUT = 60
ANY = "..."
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True, slots=True)
class Block:
    language: str
    code: str
    line: int  # in README.md, of the opening fence


def section_blocks() -> list[Block]:
    text = README.read_text(encoding="utf-8")
    start, end = text.find(START), text.find(END)
    assert 0 <= start < end, f"README.md: no section from {START.strip()!r} to {END.strip()!r}"
    first_line = text.count("\n", 0, start) + 1
    section = text[start:end]
    return [
        Block(found.group(1), found.group(2), first_line + section.count("\n", 0, found.start()))
        for found in _FENCE.finditer(section)
    ]


BLOCKS = section_blocks()
PRELUDE, *SCRIPTS = [block for block in BLOCKS if block.language == "sh"]
PYTHON = [block for block in BLOCKS if block.language == "python"]


def test_the_section_has_its_examples() -> None:
    assert "create()" in PRELUDE.code and "# =>" not in PRELUDE.code
    assert len(SCRIPTS) >= 8
    assert all("# =>" in block.code for block in SCRIPTS)
    assert len(PYTHON) >= 1
    assert {block.language for block in BLOCKS} == {"sh", "python"}


# -- expectations ---------------------------------------------------------------------------------


def expectations(code: str) -> list[str]:
    """The `# =>` comments of a block, each with its continuation lines joined on."""
    found: list[str] = []
    continuing = False
    for line in code.splitlines():
        stripped = line.strip()
        if stripped.startswith("# => "):
            found.append(stripped.removeprefix("# => "))
            continuing = True
        elif continuing and re.match(r"#\s{2,}\S", stripped):
            found[-1] += stripped[1:].strip()
        else:
            continuing = False
    return found


def expected_json(text: str) -> Any:
    """Parse expected JSON, turning a bare `...` into the markers `mismatch` understands."""
    out: list[str] = []
    open_: list[str] = []
    i, in_string = 0, False
    while i < len(text):
        char = text[i]
        if in_string:
            out.append(char)
            if char == "\\":
                out.append(text[i + 1])
                i += 1
            elif char == '"':
                in_string = False
        elif text.startswith("...", i):
            out.append(f'"{ANY}":"{ANY}"' if open_ and open_[-1] == "{" else f'"{ANY}"')
            i += 2
        else:
            out.append(char)
            if char == '"':
                in_string = True
            elif char in "{[":
                open_.append(char)
            elif char in "}]":
                open_.pop()
        i += 1
    return json.loads("".join(out))


def mismatch(expected: Any, actual: Any, where: str = "$") -> str | None:
    """Where `actual` departs from `expected`, or None."""
    if expected == ANY:
        return None
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return f"{where}: expected an object, got {actual!r}"
        members = {k: v for k, v in expected.items() if k != ANY}
        missing = members.keys() - actual.keys()
        extra = set() if ANY in expected else actual.keys() - members.keys()
        if missing or extra:
            return f"{where}: missing {sorted(missing)}, unexpected {sorted(extra)}"
        return next(
            (m for k, v in members.items() if (m := mismatch(v, actual[k], f"{where}.{k}"))), None
        )
    if isinstance(expected, list):
        items, more = (expected[:-1], True) if expected[-1:] == [ANY] else (expected, False)
        if not isinstance(actual, list) or not (
            len(actual) >= len(items) if more else len(actual) == len(items)
        ):
            return f"{where}: expected {len(items)}{'+' if more else ''} items, got {actual!r}"
        return next(
            (m for n, v in enumerate(items) if (m := mismatch(v, actual[n], f"{where}[{n}]"))),
            None,
        )
    if type(expected) is bool or type(actual) is bool:
        return None if expected is actual else f"{where}: expected {expected!r}, got {actual!r}"
    return None if expected == actual else f"{where}: expected {expected!r}, got {actual!r}"


def check_output(expected: list[str], printed: str) -> None:
    rest = printed
    for number, want in enumerate(expected, 1):
        rest = rest.lstrip()
        assert rest, f"expectation {number} ({want[:60]}...): nothing more was printed"
        if want[0] in "{[":
            actual, end = json.JSONDecoder().raw_decode(rest)
            problem = mismatch(expected_json(want), actual)
            assert problem is None, f"expectation {number}: {problem}\nprinted: {rest[:end]}"
            rest = rest[end:]
        else:
            line, _, rest = rest.partition("\n")
            assert line.rstrip("\r") == want, f"expectation {number}: printed {line!r}"
    assert not rest.strip(), f"printed but not expected: {rest[:300]!r}"


def test_the_expectation_format_means_what_the_docstring_says() -> None:
    assert expected_json('{"a":1,...}') == {"a": 1, ANY: ANY}
    assert expected_json('[{"s":"..."},...]') == [{"s": ANY}, ANY]
    assert expected_json('{"m":"x...y\\"..."}') == {"m": 'x...y"...'}
    assert mismatch({"a": 1, ANY: ANY}, {"a": 1, "b": 2}) is None
    assert mismatch({"a": 1}, {"a": 1, "b": 2}) is not None
    assert mismatch([1, ANY], [1, 2, 3]) is None
    assert mismatch([1], [1, 2]) is not None
    assert mismatch({"a": ANY}, {"a": [1]}) is None
    assert mismatch({"a": ANY}, {}) is not None
    assert mismatch(True, 1) is not None
    assert mismatch(0.0, 0) is None
    check_output(['{"a":1}', "text: 7", "[...]"], '{"a":1}text: 7\r\n[2]')
    with pytest.raises(AssertionError, match="not expected"):
        check_output(['{"a":1}'], '{"a":1}{"b":2}')
    with pytest.raises(AssertionError, match="nothing more"):
        check_output(['{"a":1}', '{"b":2}'], '{"a":1}')
    assert expectations('x\n# => {"a":\n#      1}\n# not this\n# => b\n') == ['{"a":1}', "b"]


# -- running the blocks ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    """A fake as `hiapi-mock serve --clock manual` runs it, on a free port."""
    app = create_app(MockConfig(seed=0, profile="fast"), clock=ManualClock())
    try:
        with ServerThread(app) as server:
            yield server.url
    finally:
        app.state.backend.close()


@pytest.fixture
def fresh(base_url: str) -> str:
    response = httpx.post(f"{base_url}/_mock/reset", timeout=10)
    assert response.status_code == 200, response.text
    return base_url


@pytest.mark.parametrize("block", SCRIPTS, ids=lambda block: f"README.md:{block.line}")
def test_the_shell_example_prints_what_it_says(fresh: str, block: Block) -> None:
    for tool in ("bash", "curl"):
        assert shutil.which(tool), f"{tool} is needed to run the README's examples"
    script = f"set -euo pipefail\n{PRELUDE.code}\n{block.code}"
    done = subprocess.run(
        ["bash", "-c", script],
        env={**os.environ, "BASE": fresh, "KEY": KEY},
        capture_output=True,
        encoding="utf-8",
        timeout=BLOCK_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, f"exit {done.returncode}\nstderr: {done.stderr}"
    check_output(expectations(block.code), done.stdout)


@pytest.mark.parametrize("block", PYTHON, ids=lambda block: f"README.md:{block.line}")
def test_the_python_example_passes(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, block: Block
) -> None:
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    pytester.makeini("[pytest]\naddopts = -p no:cacheprovider\nfilterwarnings = error\n")
    pytester.makepyfile(test_readme_example=block.code)
    result = pytester.runpytest_subprocess(timeout=120)
    assert result.ret == 0, result.stdout.str()
    assert result.parseoutcomes().get("passed", 0) >= 1
