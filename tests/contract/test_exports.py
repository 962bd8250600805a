from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import contract


def test_all_lists_exactly_the_public_names() -> None:
    public = {
        name
        for name, value in vars(contract).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith("contract.")
    }
    assert set(contract.__all__) == public
    for name in contract.__all__:
        assert getattr(contract, name) is not None


MODULES = sorted(
    m.name
    for m in pkgutil.iter_modules(contract.__path__, "contract.")
    if m.name != "contract.__main__"
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_hold(name: str) -> None:
    module = importlib.import_module(name)
    failures, _ = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert failures == 0
