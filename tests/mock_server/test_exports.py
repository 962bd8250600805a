from __future__ import annotations

import mock_server


def test_all_lists_exactly_the_public_names() -> None:
    public = {
        name
        for name, value in vars(mock_server).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith("mock_server.")
    }
    assert set(mock_server.__all__) == public
    for name in mock_server.__all__:
        assert getattr(mock_server, name) is not None
