"""Listings scoped to a caller's experiments: one indexed query per experiment, merged newest first."""

from __future__ import annotations

from pathlib import Path

import pytest
from prodflow_core.experiment_scope import newest_first, readable_experiments, scoped
from prodflow_core.identity import Identity
from prodflow_core.problems import Problem
from prodflow_core.sql import create_tables, make_engine
from prodflow_core.testing_sql import reads_of
from sqlalchemy import Index
from sqlmodel import Field, SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession


class ScopedThing(SQLModel, table=True):
    """A row of some experiment, found by its label."""

    __tablename__ = "scoped_thing"
    __table_args__ = (Index("ix_scoped_thing_experiment_label", "experiment", "label", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    experiment: str = Field(index=True)
    label: str = Field(index=True)


READER = Identity("rita", frozenset({"legend", "snoplus"}), frozenset({"reader"}))


def test_what_a_listing_reads() -> None:
    assert readable_experiments(READER) == ["legend", "snoplus"]
    assert readable_experiments(READER, "legend") == ["legend"]
    assert readable_experiments(Identity("root", frozenset({"*"}))) is None
    with pytest.raises(Problem) as refused:
        readable_experiments(READER, "cupid")
    assert refused.value.status == 403


async def test_pages_merge_newest_first_and_read_only_the_callers_experiments(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'scope.sqlite'}")
    await create_tables(engine, [ScopedThing.__table__])  # type: ignore[list-item]
    async with AsyncSession(engine) as session:
        for n in range(12):  # ids 1..12 in turn across three experiments, all of label L
            session.add(ScopedThing(experiment=("legend", "snoplus", "cupid")[n % 3], label="L"))
        await session.commit()
        query = select(ScopedThing).where(ScopedThing.label == "L")
        async with reads_of(engine, "scoped_thing") as reads:
            parts = scoped(query, ScopedThing.experiment, readable_experiments(READER))
            everything = await newest_first(session, parts, ScopedThing.id, limit=None)
            second_page = await newest_first(session, parts, ScopedThing.id, limit=3, offset=3)
        plans = await reads.plans()
        everyone = await newest_first(session, scoped(query, ScopedThing.experiment, None), ScopedThing.id, limit=2)
    await engine.dispose()
    assert [t.id for t in everything] == [11, 10, 8, 7, 5, 4, 2, 1]  # no cupid row (3, 6, 9, 12)
    assert [t.id for t in second_page] == [7, 5, 4]
    assert [t.id for t in everyone] == [12, 11]
    assert all("cupid" not in p for p in reads.parameters)
    assert plans and all("ix_scoped_thing_experiment_label (experiment=? AND label=?)" in p for p in plans), plans
