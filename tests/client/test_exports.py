from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import client
from client import errors

PACKAGE = Path(client.__file__).parent


def test_all_lists_exactly_the_public_names() -> None:
    public = {
        name
        for name, value in vars(client).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith("client.")
    }
    assert set(client.__all__) == public | {"__version__"}
    assert len(client.__all__) == len(set(client.__all__))
    for name in client.__all__:
        assert getattr(client, name) is not None


def test_every_error_is_a_hiapi_error_and_drawn_in_the_tree() -> None:
    classes = [value for value in vars(client).values() if isinstance(value, type)]
    error_classes = [cls for cls in classes if issubclass(cls, Exception)]
    assert len(error_classes) == 18
    for cls in error_classes:
        assert issubclass(cls, client.HiAPIError)
        assert cls.__name__ in (errors.__doc__ or ""), cls


def test_the_client_never_imports_the_fake() -> None:
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(name.split(".")[0] == "mock_server" for name in names), path
    code = "import client, sys; print(any(m.split('.')[0] == 'mock_server' for m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PACKAGE.parent,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "False"


def _public(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_")}


def _shape(signature: inspect.Signature) -> list[tuple[str, object, object]]:
    """Names, kinds and defaults; `sleep` defaults differ by nature (blocking or awaitable)."""
    return [
        (p.name, p.kind, None if p.name == "sleep" else p.default)
        for p in signature.parameters.values()
    ]


def test_the_async_client_mirrors_the_sync_one() -> None:
    sync, aio = client.HiAPIClient, client.AsyncHiAPIClient
    assert _public(sync) - {"close"} == _public(aio) - {"aclose"}
    for name in [*(_public(sync) - {"close", "base_url"}), "__init__"]:
        ours, theirs = inspect.signature(getattr(sync, name)), inspect.signature(getattr(aio, name))
        assert _shape(ours) == _shape(theirs), name
        expected_async = name not in {"iter_tasks", "__init__"}
        assert inspect.iscoroutinefunction(getattr(aio, name)) is expected_async, name
