"""The harness catches real defects: each broken variant of the fake fails the check meant for it,
and the report shows a curl command that reproduces it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from contract import Report, Status
from mock_server.store import OutputPlan

from .conftest import Rewrite, Variant, run_against


def _failed_with_curl(report: Report, name: str) -> None:
    failed = [r for r in report.failed() if r.name == name]
    assert failed, f"{name} did not fail: {[r.label for r in report.failed()]}"
    assert all(r.curl and r.curl.startswith("curl ") for r in failed), failed


def test_a_wrong_status_name_fails_the_status_order(serve: Callable[..., Variant]) -> None:
    def rename(body: bytes) -> bytes:
        return body.replace(b'"status":"handling"', b'"status":"processing"')

    variant = serve(lambda app: Rewrite(app, body=rename))
    report = run_against(variant, "lifecycle")
    _failed_with_curl(report, "lifecycle.status_order")
    assert "'processing' is not one of" in report.named("lifecycle.status_order")[0].message


def test_a_missing_rate_limit_header_fails_the_header_check(serve: Callable[..., Variant]) -> None:
    def drop(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        return [(k, v) for k, v in headers if k.lower() != b"x-ratelimit-remaining"]

    variant = serve(lambda app: Rewrite(app, headers=drop))
    report = run_against(variant, "schema")
    _failed_with_curl(report, "schema.response_headers_conformance")
    failure = report.failed()[0].findings[0].message
    assert "X-RateLimit-Remaining" in failure


def test_an_image_one_pixel_too_wide_fails_the_size_check(serve: Callable[..., Variant]) -> None:
    variant = serve()
    plan = variant.backend.outputs.plan

    def wider(*args: Any, **kwargs: Any) -> OutputPlan:
        planned = plan(*args, **kwargs)
        return replace(planned, width=planned.width + 1)

    variant.backend.outputs.plan = wider  # type: ignore[method-assign]
    report = run_against(variant, "lifecycle")
    _failed_with_curl(report, "outputs.pixel_size")
    assert report.status_of("outputs.format") is Status.PASS
    assert "/files/" in (report.named("outputs.pixel_size")[0].curl or "")


def test_an_unsigned_callback_fails_the_signature_check(serve: Callable[..., Variant]) -> None:
    variant = serve()
    variant.backend.config.webhook_secret = None  # the harness is still told the secret
    report = run_against(variant, "callbacks")
    _failed_with_curl(report, "callbacks.signature")
    assert "unsigned" in report.named("callbacks.signature")[0].message
    assert report.status_of("callbacks.body_matches_get") is Status.PASS
