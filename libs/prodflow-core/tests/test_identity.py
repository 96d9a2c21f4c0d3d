"""The signed identity header and the role checks services rely on."""

from __future__ import annotations

import time
from typing import Any

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from prodflow_core.identity import (
    IDENTITY_HEADER,
    Identity,
    IdentityError,
    Manager,
    sign_identity,
    verify_identity,
)
from prodflow_core.service import create_service_app
from prodflow_core.settings import ServiceSettings

SECRET = "s3cret"
ALICE = Identity(user="alice", experiments=frozenset({"snoplus"}), roles=frozenset({"manager"}), token_id="tok-1")


def test_round_trip_keeps_every_claim() -> None:
    assert verify_identity(sign_identity(ALICE, SECRET), SECRET) == ALICE


def test_forged_expired_and_garbled_headers_are_refused() -> None:
    header = sign_identity(ALICE, SECRET, ttl_s=60, now=1000.0)
    with pytest.raises(IdentityError, match="signature"):
        verify_identity(header, "other-secret", now=1000.0)
    with pytest.raises(IdentityError, match="expired"):
        verify_identity(header, SECRET, now=1061.0)
    payload, _, mac = header.partition(".")
    with pytest.raises(IdentityError):
        verify_identity(payload[:-2] + "xx." + mac, SECRET, now=1000.0)
    with pytest.raises(IdentityError):
        verify_identity("nodot", SECRET)


def test_roles_rank_and_experiments_bind() -> None:
    assert ALICE.has_role("reader") and ALICE.has_role("requester") and ALICE.has_role("manager")
    assert not ALICE.has_role("admin")
    assert ALICE.can_access("snoplus") and not ALICE.can_access("legend")
    assert Identity(user="root", experiments=frozenset({"*"})).can_access("legend")


def _app(secret: str = SECRET) -> Any:
    router = APIRouter()

    @router.post("/api/approve")
    async def approve(identity: Manager) -> dict[str, str]:
        identity.require_experiment("snoplus")
        return {"by": identity.user}

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(_app: Any) -> Any:
        yield

    settings = ServiceSettings(identity_secret=secret, log_json=False)
    return create_service_app(name="t", title="t", settings=settings, lifespan=lifespan, routers=[router])


@pytest.mark.parametrize(
    ("identity", "status"),
    [
        (None, 401),
        (Identity(user="r", experiments=frozenset({"snoplus"}), roles=frozenset({"requester"})), 403),
        (Identity(user="m", experiments=frozenset({"legend"}), roles=frozenset({"manager"})), 403),
        (ALICE, 200),
    ],
)
def test_require_role_and_experiment_as_problems(identity: Identity | None, status: int) -> None:
    headers = {IDENTITY_HEADER: sign_identity(identity, SECRET)} if identity else {}
    with TestClient(_app()) as client:
        answer = client.post("/api/approve", headers=headers)
    assert answer.status_code == status
    if status != 200:
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["status"] == status


def test_a_service_reached_without_the_gateway_refuses_a_forged_identity() -> None:
    forged = sign_identity(ALICE, "guessed-secret")
    with TestClient(_app()) as client:
        answer = client.post("/api/approve", headers={IDENTITY_HEADER: forged})
    assert answer.status_code == 401 and "signature" in answer.json()["detail"]


def test_a_header_already_verified_is_refused_once_expired_and_by_a_service_of_another_secret() -> None:
    with TestClient(_app()) as client, TestClient(_app("other-secret")) as other:
        issued = time.time()  # once both apps have started: a start-up may take longer than the header lives
        header = {IDENTITY_HEADER: sign_identity(ALICE, SECRET, ttl_s=1, now=issued)}
        assert client.post("/api/approve", headers=header).status_code == 200
        assert other.post("/api/approve", headers=header).status_code == 401
        while time.time() <= int(issued + 1):
            time.sleep(0.05)
        refused = client.post("/api/approve", headers=header)
    assert refused.status_code == 401 and "expired" in refused.json()["detail"]
