"""API tokens stored in a real PostgreSQL (the docker-compose set-up), not only SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest
from prodflow_core.sql import create_tables, make_engine, session_maker
from prodflow_gateway import models  # noqa: F401  (registers the table)
from prodflow_gateway.tokens import TokenLookup, create_token, ensure_first_admin

pytestmark = pytest.mark.integration


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
