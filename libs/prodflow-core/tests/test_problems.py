"""Every error of a service is an RFC 9457 problem document."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import APIRouter
from fastapi.testclient import TestClient
from prodflow_core.couch.server import free_port
from prodflow_core.logs import REQUEST_ID_HEADER
from prodflow_core.problems import FieldError, Problem
from prodflow_core.service import create_service_app
from prodflow_core.settings import ServiceSettings
from prodflow_core.strict import StrictModel
from pydantic import Field
from sqlalchemy.exc import DataError

PROBLEM = "application/problem+json"


class Body(StrictModel):
    label: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{2,63}$")
    events: int = Field(gt=0)


def _client() -> TestClient:
    router = APIRouter()

    @router.post("/things")
    async def make(body: Body) -> dict[str, Any]:
        if body.label == "taken":
            raise Problem(
                409,
                "Label in use",
                "label 'taken' belongs to req-1",
                kind="label-in-use",
                errors=[FieldError(field="label", message="already used")],
                owner="req-1",
            )
        return body.model_dump()

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    @router.get("/runs/{run}")
    async def run(run: int) -> None:
        if run >= 2**63:  # what sqlite3 does with an integer it cannot bind
            raise OverflowError("Python int too large to convert to SQLite INTEGER")
        raise DataError("SELECT", {"run": run}, ValueError("value out of int32 range"))

    @router.get("/upstream")
    async def upstream() -> None:
        async with httpx.AsyncClient() as http:  # nothing listens there: connection refused
            await http.get(f"http://127.0.0.1:{free_port()}/")

    @asynccontextmanager
    async def lifespan(_app: Any) -> Any:
        yield

    app = create_service_app(
        name="t", title="t", settings=ServiceSettings(log_json=False), lifespan=lifespan, routers=[router]
    )
    return TestClient(app, raise_server_exceptions=False)


def test_validation_lists_each_bad_and_unknown_field() -> None:
    answer = _client().post("/things", json={"label": "x", "events": 0, "colour": "red"})
    assert answer.status_code == 422 and answer.headers["content-type"] == PROBLEM
    body = answer.json()
    assert body["type"].endswith("/validation") and body["title"] == "Validation failed"
    fields = {e["field"]: e["type"] for e in body["errors"]}
    assert fields == {"label": "string_pattern_mismatch", "events": "greater_than", "colour": "extra_forbidden"}


def test_raised_problem_keeps_extension_members() -> None:
    answer = _client().post("/things", json={"label": "taken", "events": 1})
    assert answer.status_code == 409
    assert answer.json() == {
        "type": "https://prodflow.dev/problems/label-in-use",
        "title": "Label in use",
        "status": 409,
        "detail": "label 'taken' belongs to req-1",
        "instance": "/things",
        "errors": [{"field": "label", "message": "already used", "type": "invalid"}],
        "owner": "req-1",
    }


def test_unexpected_errors_hide_internals_and_echo_the_request_id() -> None:
    answer = _client().get("/boom", headers={REQUEST_ID_HEADER: "abc"})
    assert answer.status_code == 500 and answer.headers["content-type"] == PROBLEM
    assert "secret" not in answer.text
    assert answer.headers[REQUEST_ID_HEADER] == "abc"


def test_malformed_json_and_wrong_method_are_problems() -> None:
    client = _client()
    bad = client.post("/things", content=b"{not json", headers={"Content-Type": "application/json"})
    assert bad.status_code == 422 and bad.headers["content-type"] == PROBLEM
    wrong = client.put("/things", json={})
    assert wrong.status_code == 405 and wrong.headers["content-type"] == PROBLEM


def test_a_value_the_database_cannot_store_is_a_422_problem() -> None:
    client = _client()
    for run in (2**63, 2**31):
        answer = client.get(f"/runs/{run}")
        assert answer.status_code == 422 and answer.headers["content-type"] == PROBLEM
        assert answer.json()["type"].endswith("/out-of-range") and answer.json()["status"] == 422


def test_an_unreachable_dependency_is_a_503_problem() -> None:
    answer = _client().get("/upstream")
    assert answer.status_code == 503 and answer.headers["content-type"] == PROBLEM
    assert answer.headers["retry-after"] == "5" and answer.json()["type"].endswith("/unavailable")
