"""The delivery queries enter the outbox by subscription: their cost follows the subscriptions, not the backlog."""

from __future__ import annotations

from pathlib import Path

from prodflow_core.sql import create_tables, make_engine
from prodflow_notifier import delivery
from prodflow_notifier.models import TABLES
from sqlalchemy import text
from sqlalchemy.sql.expression import Executable


async def _plan(tmp_path: Path, query: Executable) -> str:
    engine = make_engine(f"sqlite:///{tmp_path / 'plan.sqlite'}")
    try:
        await create_tables(engine, TABLES)
        sql = str(query.compile(engine.sync_engine, compile_kwargs={"literal_binds": True}))
        async with engine.connect() as conn:
            rows = (await conn.execute(text(f"EXPLAIN QUERY PLAN {sql}"))).all()
        return "\n".join(str(row[-1]) for row in rows)
    finally:
        await engine.dispose()


async def test_each_subscriptions_head_is_one_index_seek(tmp_path: Path) -> None:
    plan = await _plan(tmp_path, delivery.heads_query())
    assert "SEARCH webhook_outbox USING INDEX ix_webhook_outbox_line (subscription_id=? AND delivered_at=?)" in plan
    assert "SCAN webhook_outbox" not in plan, plan


async def test_a_workers_next_rows_are_read_from_its_own_line(tmp_path: Path) -> None:
    plan = await _plan(tmp_path, delivery.next_rows_query("wh-0000000000000000"))
    assert "ix_webhook_outbox_line (subscription_id=? AND delivered_at=?)" in plan, plan
    assert "SCAN webhook_outbox" not in plan, plan
