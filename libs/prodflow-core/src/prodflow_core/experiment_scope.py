"""Listings fixed to a caller's experiments at the index: one query per experiment, merged in order.

A single ``experiment IN (...)`` next to other filters lets a database enter any index it likes (the label's, the
state's) and drop other experiments' rows only after reading them. One query per experiment, each with
``experiment = ?``, is entered on an index that starts with the experiment (a table keeps one for each filter a
listing has), so a caller's listing never reads another experiment's row; the pages are merged in Python.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import Any, TypeVar

from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from prodflow_core.identity import Identity

Row = TypeVar("Row")


def readable_experiments(identity: Identity, experiment: str | None = None) -> list[str] | None:
    """What a listing for ``identity`` reads: ``[experiment]`` if one is asked for (403 unless the caller may),
    else the caller's experiments (``None`` = every experiment)."""
    if experiment is not None:
        identity.require_experiment(experiment)
        return [experiment]
    return None if "*" in identity.experiments else sorted(identity.experiments)


def scoped(query: SelectOfScalar[Row], column: Any, experiments: Sequence[str] | None) -> list[SelectOfScalar[Row]]:
    """``query`` once per experiment of ``experiments`` (``column`` = that experiment), or once for all."""
    if experiments is None:
        return [query]
    return [query.where(col(column) == experiment) for experiment in experiments]


async def newest_first(
    session: AsyncSession,
    queries: Sequence[SelectOfScalar[Row]],
    newest: Any,
    *,
    limit: int | None,
    offset: int = 0,
) -> list[Row]:
    """Rows ``offset`` to ``offset + limit`` (``None``: all) of ``queries`` together, by ``newest`` (a column)
    descending."""
    end = None if limit is None else offset + limit
    pages = [list((await session.exec(query.order_by(col(newest).desc()).limit(end))).all()) for query in queries]
    name = str(newest.key)
    merged = heapq.merge(*pages, key=lambda row: _Descending(getattr(row, name)))
    return list(merged)[offset:end]


class _Descending:
    """Orders values backwards (numbers, strings or times alike)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __lt__(self, other: _Descending) -> bool:
        return bool(self.value > other.value)
