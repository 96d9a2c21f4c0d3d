"""``last_used_at`` of tokens: noted in memory on each call, written in batches every so often, off the request path."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from sqlalchemy import bindparam, or_, update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from prodflow_gateway.models import ApiToken

_log = logging.getLogger("prodflow.gateway.tokens")
_table = ApiToken.__table__  # type: ignore[attr-defined]
# Never moves a time back: several gateway replicas write the same tokens.
_WRITE = (
    update(_table)
    .where(_table.c.id == bindparam("tid"))
    .where(or_(_table.c.last_used_at.is_(None), _table.c.last_used_at < bindparam("at")))
    .values(last_used_at=bindparam("at"))
)


class LastUsed:
    """When each token was last used, kept in memory and written every ``every_s`` seconds (one row per token)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], every_s: float) -> None:
        self._sessions = sessions
        self._every_s = every_s
        self._pending: dict[str, datetime] = {}

    def touch(self, token_id: str) -> None:
        """Note a use of ``token_id`` now (a dict write: no I/O)."""
        self._pending[token_id] = datetime.now(UTC)

    async def flush(self) -> None:
        """Write what was noted since the last flush; on failure (or cancellation) keep it for the next one."""
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        rows = [{"tid": tid, "at": at} for tid, at in pending.items()]
        try:
            async with self._sessions() as session:
                await (await session.connection()).execute(_WRITE, rows)
                await session.commit()
        except asyncio.CancelledError:
            self._keep(pending)  # stopped mid-write: the flush at shutdown writes them (again, at worst)
            raise
        except Exception:
            _log.warning("could not write last_used_at of %d tokens; will try again", len(rows), exc_info=True)
            self._keep(pending)

    def _keep(self, pending: dict[str, datetime]) -> None:
        for tid, at in pending.items():
            self._pending.setdefault(tid, at)

    async def follow(self, stop: asyncio.Event) -> None:
        """Flush every ``every_s`` seconds until ``stop`` is set, then once more."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._every_s)
            await self.flush()
