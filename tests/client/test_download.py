"""`download()`: bytes or a file, streamed, and the key kept to the API's own origin."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from client import NotFoundError, PermissionDeniedError, TaskOutput

from .conftest import MakeApi
from .support import API_KEY, BASE, FakeClock, Script, error

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
CDN = "https://cdn.test/out/0.png"


def image(content: object = PNG) -> httpx.Response:
    return httpx.Response(200, content=content, headers={"Content-Type": "image/png"})  # type: ignore[arg-type]


def test_download_returns_the_bytes_without_the_key_on_another_host(make_api: MakeApi) -> None:
    script = Script(image())
    assert make_api(script).download(CDN) == PNG
    request = script.requests[0]
    assert str(request.url) == CDN
    assert "authorization" not in request.headers
    assert request.headers["user-agent"].startswith("hiapi-client-python/")


def test_download_accepts_a_task_output(make_api: MakeApi) -> None:
    script = Script(image())
    output = TaskOutput(url=CDN, type="image", expire_at=1)
    assert make_api(script).download(output) == PNG
    assert str(script.requests[0].url) == CDN


def test_the_key_goes_to_outputs_on_the_api_origin(make_api: MakeApi) -> None:
    script = Script(image(), image())
    api = make_api(script)
    api.download(f"{BASE}/files/tk/0.png")
    api.download("/files/tk/1.png")
    assert [str(request.url) for request in script.requests] == [
        f"{BASE}/files/tk/0.png",
        f"{BASE}/files/tk/1.png",
    ]
    assert script.header("authorization") == [f"Bearer {API_KEY}"] * 2


def test_a_lookalike_origin_gets_no_key(make_api: MakeApi) -> None:
    script = Script(image(), image())
    api = make_api(script)
    api.download("http://api.test/files/0.png")
    api.download("https://api.test:8443/files/0.png")
    assert script.header("authorization") == [None, None]


def test_a_redirect_to_another_host_drops_the_key(make_api: MakeApi) -> None:
    redirect = httpx.Response(302, headers={"Location": CDN})
    script = Script(redirect, image())
    assert make_api(script).download(f"{BASE}/files/0.png") == PNG
    assert script.header("authorization") == [f"Bearer {API_KEY}", None]


def test_download_streams_into_a_file(make_api: MakeApi, tmp_path: Path) -> None:
    api = make_api(Script())
    parts: list[bytes | Exception] = [PNG[:1000], PNG[1000:5000], PNG[5000:]]
    script = Script(image(api.chunks(parts)))
    api = make_api(script)
    target = tmp_path / "out.png"
    assert api.download(CDN, target) == target
    assert target.read_bytes() == PNG
    assert [path.name for path in tmp_path.iterdir()] == ["out.png"]


def test_a_broken_stream_is_retried_and_the_file_is_whole(
    make_api: MakeApi, tmp_path: Path
) -> None:
    api = make_api(Script())
    broken = image(api.chunks([PNG[:100], httpx.ReadError("connection reset")]))
    script = Script(broken, image())
    target = tmp_path / "out.png"
    make_api(script).download(CDN, target)
    assert target.read_bytes() == PNG
    assert script.count == 2
    assert [path.name for path in tmp_path.iterdir()] == ["out.png"]


def test_a_failed_download_leaves_no_file_and_keeps_an_old_one(
    make_api: MakeApi, tmp_path: Path
) -> None:
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    with pytest.raises(NotFoundError):
        make_api(Script(error(404, message="expired"))).download(CDN, target)
    assert target.read_bytes() == b"old"
    assert [path.name for path in tmp_path.iterdir()] == ["out.png"]


def test_a_non_json_error_from_storage_is_mapped(make_api: MakeApi) -> None:
    denied = httpx.Response(403, text="<Error><Code>AccessDenied</Code></Error>")
    with pytest.raises(PermissionDeniedError, match="AccessDenied"):
        make_api(Script(denied)).download(CDN)


def test_download_is_retried_on_503(make_api: MakeApi, clock: FakeClock) -> None:
    script = Script(error(503, headers={"Retry-After": "2"}), image())
    assert make_api(script).download(CDN) == PNG
    assert clock.sleeps == [2.0]


@pytest.mark.parametrize("bad", ["ftp://cdn.test/0.png", "https://", "https:///x", "//cdn.test/x"])
def test_download_refuses_a_url_that_is_not_http(make_api: MakeApi, bad: str) -> None:
    script = Script()
    with pytest.raises(ValueError):
        make_api(script).download(bad)
    assert script.count == 0


def test_a_target_that_cannot_be_written_leaves_no_partial_file(
    make_api: MakeApi, tmp_path: Path
) -> None:
    target = tmp_path / "a-directory"
    target.mkdir()
    with pytest.raises(OSError):
        make_api(Script(image())).download(CDN, target)
    assert [path.name for path in tmp_path.iterdir()] == ["a-directory"]
    assert list(target.iterdir()) == []
