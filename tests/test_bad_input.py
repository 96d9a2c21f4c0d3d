"""Bad input against every operation of the merged OpenAPI, through the gateway of ``prodflow up``.

Each path and method gets malformed bodies (empty, truncated JSON, wrong types, unknown fields, NUL bytes) in
JSON and in a wrong content type, with hostile path parameters (traversal, shell metacharacters, 3,000 chars)
and bad query values. Nothing may answer 5xx, and every error must be problem+json.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from system_support import System, embedded_system

pytestmark = pytest.mark.integration
BODIES: tuple[bytes | None, ...] = (
    b"",
    b"{",
    b"[]",
    b'"text"',
    b'{"unknown_field": 1}',
    json.dumps({"experiment": "snoplus", "label": "\u0000" * 3, "events": -1, "n": 1e308}).encode(),
)
PATH_VALUES = ("..%2F..%2Fetc%2Fpasswd", "x%3B%20rm%20-rf%20%2F%20%60id%60", "a" * 3000)
WRITE_METHODS = frozenset({"post", "put", "patch"})


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    with embedded_system(tmp_path_factory.mktemp("bad-input")) as running:
        yield running


def _operations(spec: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (method, path)
        for path, item in sorted(spec["paths"].items())
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    ]


def _requests(method: str, path: str, value: str) -> Iterator[dict[str, Any]]:
    url = re.sub(r"\{[^}]+\}", value, path)
    if method not in WRITE_METHODS:
        yield {"method": method.upper(), "url": url, "params": {"limit": "-1", "offset": "x", "since": "zz"}}
        return
    for body in BODIES:
        for content_type in ("application/json", "text/plain"):
            yield {"method": method.upper(), "url": url, "content": body, "headers": {"Content-Type": content_type}}


@pytest.mark.parametrize("value", PATH_VALUES, ids=["traversal", "shell", "long"])
def test_no_operation_answers_5xx_or_a_non_problem_error(system: System, value: str) -> None:
    headers = {"Authorization": f"Bearer {system.token}"}
    with httpx.Client(base_url=system.gateway, headers=headers, timeout=30) as client:
        operations = _operations(client.get("/openapi.json").json())
        assert len(operations) > 50  # every service's operations are in the merged document
        bad, sent = [], 0
        for method, path in operations:
            for request in _requests(method, path, value):
                answer = client.request(**request)
                sent += 1
                is_problem = answer.headers.get("content-type", "").startswith("application/problem+json")
                if answer.status_code >= 500 or (answer.status_code >= 400 and not is_problem):
                    bad.append((method, path, request.get("content"), answer.status_code, answer.text[:200]))
    assert sent > 300
    assert not bad, bad[:10]
