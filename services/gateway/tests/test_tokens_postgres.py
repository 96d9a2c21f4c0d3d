"""API tokens and the audit log stored in a real PostgreSQL (the docker-compose set-up), not only SQLite."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prodflow_core.sql import create_tables, make_engine, session_maker
from prodflow_gateway.audit import AuditedCall
from prodflow_gateway.audit_log import AuditLog, audit_page
from prodflow_gateway.last_used import LastUsed
from prodflow_gateway.models import ApiToken
from prodflow_gateway.tokens import TokenLookup, create_token, ensure_first_admin, expiry, rotate_token

pytestmark = pytest.mark.integration
DAY = timedelta(days=1)


async def test_tokens_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    engine = make_engine(postgres_url)
    try:
        await create_tables(engine)
        sessions = session_maker(engine)
        token_file = tmp_path / "admin-token"
        first = await ensure_first_admin(sessions, token_file, bootstrap=None)
        assert first is not None and token_file.read_text().strip() == first
        assert await ensure_first_admin(sessions, token_file, bootstrap=None) is None
        async with sessions() as session:
            _token, secret = await create_token(session, user="pat", experiments=["legend"], roles=["reader"])
        lookup = TokenLookup(sessions, cache_s=0)
        found = await lookup.identity(secret)
        assert found is not None and found.user == "pat" and found.experiments == frozenset({"legend"})
        admin = await lookup.identity(first)
        assert admin is not None and admin.has_role("admin")
        assert await lookup.identity("pf_unknown") is None
    finally:
        await engine.dispose()


async def test_last_use_rotation_and_audit_entries_on_postgresql(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    try:
        await create_tables(engine)
        sessions = session_maker(engine)
        async with sessions() as session:
            made, secret = await create_token(
                session, user="quin", experiments=["*"], roles=["admin"], expires_at=expiry(None, None, DAY)
            )
        last_used = LastUsed(sessions, every_s=60)
        lookup = TokenLookup(sessions, cache_s=0, last_used=last_used)
        identity = await lookup.identity(secret)
        assert identity is not None and identity.token_id == made.id
        await last_used.flush()
        async with sessions() as session:
            row = await session.get(ApiToken, made.id)
            assert row is not None and row.last_used_at is not None and row.expires_at is not None
            new_secret = await rotate_token(session, row)
        assert await lookup.identity(secret) is None
        rotated = await lookup.identity(new_secret)
        assert rotated is not None and rotated.token_id == made.id

        log = AuditLog(sessions)
        since = datetime.now(UTC)
        call = AuditedCall(at=since, method="PUT", path="/api/sites/cern", query="", client="127.0.0.1")
        call.status, call.identity, call.request_id = 201, identity, "rid-pg"
        log.record(call)
        await log.aclose()
        async with sessions() as session:
            entries = await audit_page(
                session, user="quin", since=since, until=None, path="/api/sites/", before=None, limit=10
            )
        assert [(e.target, e.status, e.request_id, e.roles) for e in entries] == [("cern", 201, "rid-pg", ["admin"])]
    finally:
        await engine.dispose()
