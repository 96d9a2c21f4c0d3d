"""The audit log: one entry per state-changing call through the gateway, read back by admins only."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway_stack import ADMIN_TOKEN, Stack
from prodflow_core.identity import Identity
from prodflow_core.sql import create_tables, make_engine, session_maker
from prodflow_gateway.audit import AuditedCall, target_of
from prodflow_gateway.audit_log import AuditLog, audit_page

pytestmark = pytest.mark.integration


def _client(stack: Stack, token: str = ADMIN_TOKEN) -> httpx.Client:
    return httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def _token(stack: Stack, user: str, roles: list[str], experiments: list[str]) -> dict[str, Any]:
    with _client(stack) as admin:
        made = admin.post("/api/auth/tokens", json={"user": user, "roles": roles, "experiments": experiments})
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    return body


def _entries(stack: Stack, **params: Any) -> list[dict[str, Any]]:
    with _client(stack) as admin:
        page = admin.get("/api/audit", params={"limit": 1000, **params})
    assert page.status_code == 200, page.text
    items: list[dict[str, Any]] = page.json()["items"]
    return items


def _of_request(stack: Stack, request_id: str, expected: int = 1) -> list[dict[str, Any]]:
    """The entries of one call (by its request id), once the writer has written ``expected`` of them."""
    deadline = time.monotonic() + 5
    while True:
        found = [e for e in _entries(stack) if e["request_id"] == request_id]
        if len(found) >= expected or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def _rid() -> str:
    return uuid.uuid4().hex


def test_a_proxied_write_leaves_one_entry_with_who_what_and_how(stack: Stack) -> None:
    bob = _token(stack, "bob", ["requester"], ["snoplus"])
    rid = _rid()
    with _client(stack, bob["token"]) as client:
        answer = client.post("/api/requests/echo?experiment=snoplus", json={"x": 1}, headers={"X-Request-ID": rid})
    assert answer.status_code == 200, answer.text
    [entry] = _of_request(stack, rid)
    assert entry["user"] == "bob" and entry["token_id"] == bob["id"] and entry["roles"] == ["requester"]
    assert (entry["method"], entry["path"], entry["status"]) == ("POST", "/api/requests/echo", 200)
    assert entry["experiment"] == "snoplus" and entry["target"] == "echo" and entry["client"] == "127.0.0.1"
    assert abs(datetime.fromisoformat(entry["at"]).replace(tzinfo=UTC) - datetime.now(UTC)) < timedelta(seconds=10)


def test_the_experiment_is_taken_from_the_body_when_the_query_has_none(stack: Stack) -> None:
    rid = _rid()
    with _client(stack) as admin:
        admin.post("/api/requests/echo", json={"experiment": "legend", "title": "t"}, headers={"X-Request-ID": rid})
    [entry] = _of_request(stack, rid)
    assert entry["experiment"] == "legend"


def test_reads_and_unauthenticated_calls_leave_nothing_refused_writes_do(stack: Stack) -> None:
    reader = _token(stack, "rita", ["reader"], ["*"])
    read, anonymous, refused, unknown = _rid(), _rid(), _rid(), _rid()
    with _client(stack, reader["token"]) as rita, _client(stack, "pf_not-a-token") as stranger:
        assert rita.get("/api/requests/echo", headers={"X-Request-ID": read}).status_code == 200
        assert stranger.post("/api/requests/echo", json={}, headers={"X-Request-ID": anonymous}).status_code == 401
        assert rita.post("/api/requests/echo", json={}, headers={"X-Request-ID": refused}).status_code == 403
    with _client(stack) as admin:
        assert admin.delete("/api/nothing-here", headers={"X-Request-ID": unknown}).status_code == 404
    [forbidden] = _of_request(stack, refused)
    assert forbidden["user"] == "rita" and forbidden["status"] == 403
    [missing] = _of_request(stack, unknown)
    assert missing["method"] == "DELETE" and missing["status"] == 404
    assert _of_request(stack, read, expected=0) == [] and _of_request(stack, anonymous, expected=0) == []


def test_token_changes_each_leave_one_entry_naming_the_token(stack: Stack) -> None:
    created, rotated, revoked = _rid(), _rid(), _rid()
    with _client(stack) as admin:
        made = admin.post(
            "/api/auth/tokens",
            json={"user": "tess", "roles": ["reader"], "experiments": ["snoplus"]},
            headers={"X-Request-ID": created},
        ).json()
        admin.post(f"/api/auth/tokens/{made['id']}/rotate", headers={"X-Request-ID": rotated}).raise_for_status()
        admin.delete(f"/api/auth/tokens/{made['id']}", headers={"X-Request-ID": revoked}).raise_for_status()
        me = admin.get("/api/auth/whoami").json()
    path = f"/api/auth/tokens/{made['id']}"
    expected = {
        created: ("POST", "/api/auth/tokens", 201),
        rotated: ("POST", f"{path}/rotate", 200),
        revoked: ("DELETE", path, 200),
    }
    for rid, (method, where, status) in expected.items():
        [entry] = _of_request(stack, rid)
        assert (entry["method"], entry["path"], entry["status"], entry["target"]) == (method, where, status, made["id"])
        assert (entry["user"], entry["token_id"], entry["roles"]) == ("admin", me["token_id"], ["admin"])
    newest_first = [e["request_id"] for e in _entries(stack, path="/api/auth/tokens") if e["request_id"] in expected]
    assert newest_first == [revoked, rotated, created]


@pytest.mark.parametrize("role", ["reader", "manager"])
def test_only_admins_read_the_audit_log(stack: Stack, role: str) -> None:
    made = _token(stack, "rudy", [role], ["*"])
    with _client(stack, made["token"]) as rudy:
        answer = rudy.get("/api/audit")
    assert answer.status_code == 403 and answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["required_role"] == "admin"


def test_filters_and_pages_newest_first(stack: Stack) -> None:
    ulla = _token(stack, "ulla", ["requester"], ["*"])
    rids = [_rid() for _ in range(5)]
    started = datetime.now(UTC)
    with _client(stack, ulla["token"]) as client:
        for rid in rids:
            client.post("/api/requests/echo", json={}, headers={"X-Request-ID": rid})
    _of_request(stack, rids[-1])
    mine = _entries(stack, user="ulla")
    assert [e["request_id"] for e in mine] == rids[::-1]
    assert [e["request_id"] for e in _entries(stack, user="ulla", since=started.isoformat())] == rids[::-1]
    assert _entries(stack, user="ulla", until=started.isoformat()) == []
    assert _entries(stack, user="ulla", path="/api/auth") == []
    assert len(_entries(stack, user="ulla", path="/api/requests/ec")) == 5
    with _client(stack) as admin:
        first = admin.get("/api/audit", params={"user": "ulla", "limit": 3}).json()
        second = admin.get("/api/audit", params={"user": "ulla", "limit": 3, "cursor": first["next"]}).json()
        bad = admin.get("/api/audit", params={"cursor": "x"})
        other_query = admin.get("/api/audit", params={"user": "someone", "limit": 3, "cursor": first["next"]})
    assert [e["request_id"] for e in first["items"] + second["items"]] == rids[::-1]
    assert first["count"] == 3 and second["count"] == 2 and second["next"] is None
    assert not first["next"].isdigit()  # opaque: the entry id is sealed in it
    assert bad.status_code == 400 and bad.json()["type"].endswith("bad-cursor")
    assert other_query.status_code == 400  # bound to the filters it came with


def test_the_target_is_the_last_id_of_the_path() -> None:
    assert target_of("/api/requests/req-7/approve") == "req-7"
    assert target_of("/api/sites/cern%20a") == "cern a"
    assert target_of("/api/cycles/water/runs/run-3/cancel") == "run-3"
    assert target_of("/api/catalog/snoplus/modules/Bi214") == "Bi214"
    assert target_of("/api/catalog/snoplus/runs") == "snoplus"
    assert target_of("/api/campaigns/by-label/L1/cancel") == "L1"
    assert target_of("/api/auth/tokens/tok-1/rotate") == "tok-1"
    assert target_of("/api/requests/preview") is None and target_of("/api/campaigns") is None


async def test_stopping_the_writer_writes_every_call_still_waiting(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'audit.sqlite'}")
    try:
        await create_tables(engine)
        sessions = session_maker(engine)
        log = AuditLog(sessions)
        log.start()
        who = Identity(user="vic", roles=frozenset({"manager"}), experiments=frozenset({"*"}), token_id="tok-v")
        for n in range(1200):  # more than one batch, recorded faster than the writer can have written them
            call = AuditedCall(at=datetime.now(UTC), method="POST", path=f"/api/sites/s{n}", query="", client=None)
            call.status, call.identity, call.request_id = 200, who, f"r{n}"
            log.record(call)
        await log.aclose()
        async with sessions() as session:
            entries = await audit_page(session, user="vic", since=None, until=None, path=None, before=None, limit=2000)
        assert [e.target for e in entries] == [f"s{n}" for n in reversed(range(1200))]
    finally:
        await engine.dispose()
