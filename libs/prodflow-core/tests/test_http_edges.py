"""The HTTP edge of every service: ``405`` with the path's whole ``Allow``, ``nosniff``, strict body values."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from prodflow_core.service import create_service_app
from prodflow_core.settings import ServiceSettings
from prodflow_core.strict import (
    StrictBool,
    StrictDatetime,
    StrictInt,
    StrictModel,
    StrictPositiveFloat,
    StrictPositiveInt,
)

PROBLEM = "application/problem+json"


class Body(StrictModel):
    replace: StrictBool = False
    priority: StrictInt = 0
    n_ev: StrictPositiveInt | None = None
    t_run: StrictPositiveFloat | None = None
    expires_at: StrictDatetime | None = None


def _client() -> TestClient:
    things = APIRouter(prefix="/things")

    @things.get("")
    async def list_things() -> list[str]:
        return []

    @things.delete("/{name}")
    async def delete_thing(name: str) -> dict[str, str]:
        return {"deleted": name}

    makers = APIRouter()  # a second router serves another method of the same path

    @makers.post("/things")
    async def make(body: Body) -> dict[str, Any]:
        return body.model_dump()

    @makers.post("/things/special")
    async def special() -> dict[str, str]:
        return {}

    @makers.post("/things/{name}/cancel")
    async def cancel(name: str) -> dict[str, str]:
        return {"cancelled": name}

    @asynccontextmanager
    async def lifespan(_app: Any) -> Any:
        yield

    app = create_service_app(
        name="t", title="t", settings=ServiceSettings(log_json=False), lifespan=lifespan, routers=[things, makers]
    )
    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/things", "GET, POST"),  # methods of two routers, not only the first one's
        ("OPTIONS", "/things", "GET, POST"),
        ("TRACE", "/things", "GET, POST"),
        ("HEAD", "/things", "GET, POST"),  # FastAPI serves no HEAD of its own
        ("GET", "/things/x/cancel", "POST"),
        ("PATCH", "/things/x", "DELETE"),
        ("PUT", "/things/special", "POST"),  # its own path's methods, not also those of /things/{name}
        ("POST", "/healthz", "GET"),
    ],
)
def test_a_method_the_path_lacks_is_a_405_problem_naming_the_paths_methods(method: str, path: str, allow: str) -> None:
    answer = _client().request(method, path)
    assert answer.status_code == 405 and answer.headers["content-type"] == PROBLEM
    assert answer.headers["allow"] == allow
    if method != "HEAD":  # an answer to HEAD has no body
        assert answer.json()["status"] == 405 and answer.json()["type"].endswith("/method-not-allowed")


def test_an_unknown_path_stays_a_404() -> None:
    assert _client().put("/nothing-here").status_code == 404


def test_every_answer_says_nosniff() -> None:
    client = _client()
    for answer in (client.get("/things"), client.put("/things"), client.get("/nowhere"), client.get("/healthz")):
        assert answer.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("replace", 0),
        ("replace", "true"),
        ("replace", "false"),
        ("priority", "3"),
        ("priority", 3.5),
        ("priority", True),
        ("n_ev", "5"),
        ("t_run", "1.5"),
        ("t_run", True),
        ("expires_at", 0),
        ("expires_at", 1.5e9),
    ],
)
def test_a_look_alike_body_value_is_a_422_problem(field: str, value: Any) -> None:
    answer = _client().post("/things", json={field: value})
    assert answer.status_code == 422 and answer.headers["content-type"] == PROBLEM
    assert [e["field"] for e in answer.json()["errors"]] == [field]


def test_body_values_of_their_own_type_pass() -> None:
    sent = {"replace": True, "priority": -2, "n_ev": 5.0, "t_run": 2, "expires_at": "2027-01-31T12:00:00Z"}
    answer = _client().post("/things", json=sent)  # 5.0 is an integer to JSON Schema, so to us
    assert answer.status_code == 200
    assert answer.json() == {**sent, "n_ev": 5, "t_run": 2.0}
