"""Every answer the tests see is checked against `openapi.yaml` here, not by eye.

`check(response)` is installed as a response hook on every test client: an answer that breaks the
spec fails the test that received it.
"""

from __future__ import annotations

import json
from typing import Any

import httpx2

from mock_server.spec import spec

__all__ = ["callback_problems", "check", "problems"]


def problems(method: str, path: str, status: int, headers: Any, body: bytes) -> list[str]:
    """What in one answer disagrees with `openapi.yaml` (empty when it conforms)."""
    if path.startswith("/files/"):
        kind = headers.get("content-type", "")
        ok = status != 200 or kind in {"image/png", "image/jpeg"}
        return [] if ok else [f"GET {path}: content-type {kind!r} is not an image type"]
    if not path.startswith("/v1/"):
        return []
    try:
        data = json.loads(body)
    except ValueError:
        return [f"{method} {path} {status}: body is not JSON"]
    document = spec()
    if document.operation(method, path) is None:
        # No such operation: still HiAPI's error envelope, and only 404 or 405.
        found = document.validate_component("ErrorEnvelope", data)
        if status not in (404, 405):
            found.append(f"{method} {path}: status {status} for an unknown operation")
        return found
    found = document.check_response(method, path, status, headers, data)
    if isinstance(data, dict) and data.get("code") != status:
        found.append(f"{method} {path}: envelope code {data.get('code')} != HTTP {status}")
    return found


def check(response: httpx2.Response) -> None:
    response.read()
    request = response.request
    found = problems(
        request.method, request.url.path, response.status_code, response.headers, response.content
    )
    if found:
        raise AssertionError("answer does not conform to openapi.yaml:\n  " + "\n  ".join(found))


def callback_problems(body: bytes) -> list[str]:
    """What in a delivered callback body disagrees with `createTask`'s `callbacks` in the spec."""
    document = spec()
    operation = document.document["paths"]["/v1/tasks"]["post"]
    for expression in operation["callbacks"].values():
        for item in expression.values():
            schema = item["post"]["requestBody"]["content"]["application/json"]["schema"]
            return document.validate_ref(schema["$ref"], json.loads(body))
    return ["openapi.yaml describes no callback"]
