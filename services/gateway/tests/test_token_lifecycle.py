"""Token lifecycle: default expiry, expired tokens, rotation, revocation across replicas, last use, failed logins."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway_stack import ADMIN_TOKEN, Stack
from prodflow_core.sql import create_tables, make_engine, session_maker
from prodflow_core.testing import serving
from prodflow_gateway.app import create_app
from prodflow_gateway.last_used import LastUsed
from prodflow_gateway.models import ApiToken
from prodflow_gateway.settings import GatewaySettings
from prodflow_gateway.tokens import TokenLookup, create_token, hash_token
from sqlalchemy import text

pytestmark = pytest.mark.integration


def _client(url: str, token: str = ADMIN_TOKEN) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def _create(stack: Stack, user: str, **extra: Any) -> dict[str, Any]:
    body = {"user": user, "roles": ["reader"], "experiments": ["snoplus"], **extra}
    with _client(stack.url) as admin:
        answer = admin.post("/api/auth/tokens", json=body)
    assert answer.status_code == 201, answer.text
    made: dict[str, Any] = answer.json()
    return made


def _listed(stack: Stack, token_id: str) -> dict[str, Any]:
    with _client(stack.url) as admin:
        tokens: list[dict[str, Any]] = admin.get("/api/auth/tokens").json()
        one: dict[str, Any] = admin.get(f"/api/auth/tokens/{token_id}").json()
    listed = next(t for t in tokens if t["id"] == token_id)
    assert {**listed, "last_used_at": None} == {**one, "last_used_at": None}  # it may be written in between
    return listed


def _utc(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def test_a_token_made_without_an_expiry_gets_the_default_lifetime(lifecycle_stack: Stack) -> None:
    made = _create(lifecycle_stack, "dora")
    expected = datetime.now(UTC) + timedelta(days=90)
    assert abs(_utc(made["expires_at"]) - expected) < timedelta(minutes=1)
    assert _utc(_listed(lifecycle_stack, made["id"])["expires_at"]) == _utc(made["expires_at"])
    in_a_day = _create(lifecycle_stack, "dora", expires_in=86_400)
    assert abs(_utc(in_a_day["expires_at"]) - (datetime.now(UTC) + timedelta(days=1))) < timedelta(minutes=1)
    base = {"user": "dora", "roles": ["reader"], "experiments": ["*"]}
    with _client(lifecycle_stack.url) as admin:
        both = admin.post("/api/auth/tokens", json={**base, "expires_in": 60, "expires_at": "2099-01-01T00:00:00Z"})
        past = admin.post("/api/auth/tokens", json={**base, "expires_at": "2020-01-01T00:00:00Z"})
    assert both.status_code == past.status_code == 422


def test_the_first_admin_token_does_not_expire(lifecycle_stack: Stack) -> None:
    with _client(lifecycle_stack.url) as admin:
        me = admin.get("/api/auth/whoami").json()
    assert _listed(lifecycle_stack, me["token_id"])["expires_at"] is None


def test_an_expired_token_is_refused(lifecycle_stack: Stack) -> None:
    made = _create(lifecycle_stack, "erin", expires_in=1)
    with _client(lifecycle_stack.url, made["token"]) as erin:
        assert erin.get("/api/auth/whoami").status_code == 200  # now also in the gateway's cache
        time.sleep(max(0.0, (_utc(made["expires_at"]) - datetime.now(UTC)).total_seconds()) + 0.05)
        refused = erin.get("/api/auth/whoami")
    assert refused.status_code == 401 and "expired" in refused.json()["detail"]


def test_rotation_gives_a_new_secret_and_the_old_one_stops_working(lifecycle_stack: Stack) -> None:
    made = _create(lifecycle_stack, "fred", roles=["requester"], experiments=["legend"])
    with _client(lifecycle_stack.url, made["token"]) as old:
        assert old.get("/api/auth/whoami").status_code == 200
        with _client(lifecycle_stack.url) as admin:
            rotated = admin.post(f"/api/auth/tokens/{made['id']}/rotate")
        assert rotated.status_code == 200, rotated.text
        assert old.get("/api/auth/whoami").status_code == 401
    new = rotated.json()
    assert new["token"] != made["token"] and new["id"] == made["id"] and new["rotated_at"]
    assert (new["user"], new["roles"], new["experiments"], new["expires_at"]) == (
        "fred",
        ["requester"],
        ["legend"],
        made["expires_at"],
    )
    with _client(lifecycle_stack.url, new["token"]) as fred:
        me = fred.get("/api/auth/whoami").json()
        assert (me["user"], me["token_id"], me["roles"]) == ("fred", made["id"], ["requester"])
        # Not an admin: fred rotates the token he calls with, and no other.
        other = _create(lifecycle_stack, "fred")
        assert fred.post(f"/api/auth/tokens/{other['id']}/rotate").status_code == 403
        again = fred.post(f"/api/auth/tokens/{made['id']}/rotate")
        assert again.status_code == 200, again.text
        assert fred.get("/api/auth/whoami").status_code == 401
    with _client(lifecycle_stack.url) as admin:
        assert admin.post("/api/auth/tokens/tok-missing/rotate").status_code == 404
        assert admin.get("/api/auth/tokens/tok-missing").status_code == 404
        admin.delete(f"/api/auth/tokens/{other['id']}")
        assert admin.post(f"/api/auth/tokens/{other['id']}/rotate").status_code == 409


def test_a_revocation_applies_within_a_second_on_another_replica(lifecycle_stack: Stack) -> None:
    made = _create(lifecycle_stack, "gina")
    with serving(create_app(lifecycle_stack.settings.model_copy())) as replica, _client(replica, made["token"]) as gina:
        assert gina.get("/api/auth/whoami").status_code == 200  # the replica remembers the token now
        with _client(lifecycle_stack.url) as admin:
            assert admin.delete(f"/api/auth/tokens/{made['id']}").status_code == 200
        revoked = last_accepted = time.monotonic()
        while True:
            asked = time.monotonic()  # when the request left: a busy machine may take long to answer it
            if gina.get("/api/auth/whoami").status_code != 200:
                break
            last_accepted = asked
            assert asked - revoked < 3.0, "the replica still accepts the revoked token"
            time.sleep(0.02)
    assert last_accepted - revoked <= 1.05, last_accepted - revoked
    with _client(lifecycle_stack.url, made["token"]) as here:
        assert here.get("/api/auth/whoami").status_code == 401  # the gateway that revoked it: at once


def test_last_used_at_is_recorded_and_advances(lifecycle_stack: Stack) -> None:
    made = _create(lifecycle_stack, "hugo")
    assert _listed(lifecycle_stack, made["id"])["last_used_at"] is None

    def last_used_after(moment: datetime | None) -> datetime:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            value = _listed(lifecycle_stack, made["id"])["last_used_at"]
            if value is not None and (moment is None or _utc(value) > moment):
                return _utc(value)
            time.sleep(0.1)
        raise AssertionError("last_used_at did not advance")

    with _client(lifecycle_stack.url, made["token"]) as hugo:
        before = datetime.now(UTC)
        hugo.get("/api/auth/whoami")
        first = last_used_after(None)
        assert before - timedelta(seconds=1) <= first <= datetime.now(UTC)
        time.sleep(0.3)
        hugo.get("/api/auth/whoami")
    assert last_used_after(first) > first


def test_repeated_failed_authentications_are_answered_429_with_retry_after(strict_stack: Stack) -> None:
    with _client(strict_stack.url, "pf_wrong") as stranger, _client(strict_stack.url) as admin:
        assert [stranger.get("/api/auth/whoami").status_code for _ in range(3)] == [401, 401, 401]
        refused = admin.get("/api/auth/whoami")  # the same address: even a good token waits
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        wait_s = int(refused.headers["retry-after"])
        assert 1 <= wait_s <= 2 and refused.json()["retry_after_s"] == wait_s
        time.sleep(wait_s)
        assert admin.get("/api/auth/whoami").status_code == 200


async def test_a_token_table_of_an_older_gateway_gains_the_new_columns(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.sqlite'}")
    try:
        async with engine.begin() as conn:  # api_tokens as the gateway made it before rotation and last use
            await conn.execute(text(OLD_TOKENS_TABLE))
            await conn.execute(
                text("INSERT INTO api_tokens VALUES ('tok-old', 'olga', '[\"*\"]', '[\"reader\"]', :hash, '', NULL, "
                     "'2026-01-01 00:00:00', NULL, NULL)"),
                {"hash": hash_token("pf_old-secret")},
            )  # fmt: skip
        await create_tables(engine)
        lookup = TokenLookup(session_maker(engine), cache_s=0, last_used=LastUsed(session_maker(engine), 60))
        found = await lookup.identity("pf_old-secret")
        assert found is not None and found.token_id == "tok-old"
        async with session_maker(engine)() as session:
            row = await session.get(ApiToken, "tok-old")
        assert row is not None and row.last_used_at is None and row.rotated_at is None
    finally:
        await engine.dispose()


async def test_lookups_that_miss_together_share_one_read(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'tokens.sqlite'}")
    try:
        await create_tables(engine)
        sessions = session_maker(engine)
        async with sessions() as session:
            _token, secret = await create_token(session, user="ulla", experiments=["snoplus"], roles=["reader"])
        reads = 0

        def counted() -> Any:
            nonlocal reads
            reads += 1
            return sessions()

        lookup = TokenLookup(counted, cache_s=1.0)  # type: ignore[arg-type]
        found = await asyncio.gather(*(lookup.identity(secret) for _ in range(50)))
        assert reads == 1 and all(identity is not None and identity.user == "ulla" for identity in found)
        await lookup.identity(secret)
        assert reads == 1  # remembered

        in_flight = asyncio.ensure_future(lookup.identity(secret + "-other"))
        await asyncio.sleep(0)  # its read has begun
        lookup.forget()  # e.g. a revocation: what that read finds must not be remembered
        assert await in_flight is None
        await lookup.identity(secret)
        assert reads == 3  # read again after forget()
    finally:
        await engine.dispose()


OLD_TOKENS_TABLE = """
CREATE TABLE api_tokens (
    id VARCHAR NOT NULL PRIMARY KEY, user VARCHAR NOT NULL, experiments JSON NOT NULL, roles JSON NOT NULL,
    token_hash VARCHAR NOT NULL UNIQUE, description VARCHAR NOT NULL, created_by VARCHAR, created_at DATETIME NOT NULL,
    expires_at DATETIME, revoked_at DATETIME
)
"""


@pytest.mark.parametrize(
    ("value", "ttl"),
    [(None, timedelta(days=90)), ("12h", timedelta(hours=12)), ("3600", timedelta(hours=1)), ("never", None),
     ("0", None)],
)  # fmt: skip
def test_the_default_lifetime_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str | None, ttl: timedelta | None
) -> None:
    if value is not None:
        monkeypatch.setenv("GATEWAY_TOKEN_DEFAULT_TTL", value)
    assert GatewaySettings().token_default_ttl == ttl


def test_a_token_cache_longer_than_a_second_is_refused() -> None:
    with pytest.raises(ValueError, match="token_cache_s"):
        GatewaySettings(token_cache_s=10)
