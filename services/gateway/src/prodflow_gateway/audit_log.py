"""The audit log's writer (batched, off the request path) and its newest-first pages.

A call is handed over once answered (``record``, no I/O) and written with whatever else is waiting in one
transaction: one commit at a time, so under load a commit carries many rows. The rows of calls answered in the
last moments before a ``kill -9`` (those not yet committed, usually a few milliseconds' worth) are lost; a normal
stop writes them first.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from datetime import datetime

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from prodflow_gateway.audit import AuditedCall, entry_of
from prodflow_gateway.models import AuditEntry

BATCH = 500
RETRY_S = 1.0
_log = logging.getLogger("prodflow.gateway.audit")


class AuditLog:
    """Calls waiting to be written, and the task that writes them."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._waiting: deque[AuditedCall] = deque()
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    def record(self, call: AuditedCall) -> None:
        """Queue ``call`` for writing (called once its answer is sent)."""
        self._waiting.append(call)
        self._wake.set()

    def start(self) -> None:
        """Start the writer task."""
        self._task = asyncio.create_task(self._follow(), name="audit-log")

    async def aclose(self) -> None:
        """Let the writer finish its batch (never cancelled mid-commit), then write what is still waiting."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        while self._waiting and await self._write_batch():
            pass
        if self._waiting:
            _log.error("%d audit entries could not be written before the gateway stopped", len(self._waiting))

    async def _follow(self) -> None:
        while not self._closing:
            await self._wake.wait()
            self._wake.clear()
            while self._waiting and not self._closing:
                if not await self._write_batch():
                    await asyncio.sleep(RETRY_S)

    async def _write_batch(self) -> bool:
        batch = [self._waiting.popleft() for _ in range(min(BATCH, len(self._waiting)))]
        rows = []
        for call in batch:
            try:
                rows.append(entry_of(call))
            except Exception:
                _log.exception("audit entry of %s %s could not be made", call.method, call.path)
        if not rows:
            return True
        try:
            async with self._sessions() as session:
                await (await session.connection()).execute(insert(AuditEntry), rows)
                await session.commit()
            return True
        except Exception:
            _log.warning("could not write %d audit entries; will try again", len(batch), exc_info=True)
            self._waiting.extendleft(reversed(batch))
            return False


async def audit_page(
    session: AsyncSession,
    *,
    user: str | None,
    since: datetime | None,
    until: datetime | None,
    path: str | None,
    before: int | None,
    limit: int,
) -> list[AuditEntry]:
    """Entries newest first, filtered; ``path`` is a prefix, ``before`` an entry id (the previous page's last)."""
    query = select(AuditEntry).order_by(col(AuditEntry.id).desc()).limit(limit)
    if user is not None:
        query = query.where(AuditEntry.user == user)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    if until is not None:
        query = query.where(AuditEntry.at < until)
    if path is not None:
        query = query.where(col(AuditEntry.path).startswith(path, autoescape=True))
    if before is not None:
        query = query.where(col(AuditEntry.id) < before)
    return list((await session.exec(query)).all())
