"""The submitter's reads of its kept counts' ledger (one row per job: its database, site, campaign, label, module and
status): what the submission loop loads at start and reconciles, without a CouchDB view."""

from __future__ import annotations

from prodflow_core import jobdocs
from prodflow_core.counts.tables import CountedJob
from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncEngine

_LEDGER: Table = CountedJob.__table__  # type: ignore[attr-defined]


async def waiting(engine: AsyncEngine, database: str) -> list[tuple[str, str, str, str, str]]:
    """``(doc_id, site, campaign_id, label, module)`` of the jobs the ledger counts as waiting in ``database``."""
    c = _LEDGER.c
    query = select(c.doc_id, c.site, c.campaign_id, c.label, c.module).where(
        c.database == database, c.status == jobdocs.WAITING
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [(str(doc_id), str(site), str(campaign), str(label), str(module)) for doc_id, site, campaign, label, module
            in rows]  # fmt: skip


async def ids(engine: AsyncEngine, database: str, site: str, status: str) -> list[str]:
    """Ids of the jobs of ``site`` the ledger counts in ``status`` in ``database``."""
    c = _LEDGER.c
    query = select(c.doc_id).where(c.database == database, c.site == site, c.status == status)
    async with engine.connect() as conn:
        return [str(doc_id) for doc_id in (await conn.execute(query)).scalars()]
