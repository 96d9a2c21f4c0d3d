"""Columns and indexes a model gains after its table exists are added in place (columns filled with their default)."""

from __future__ import annotations

from pathlib import Path

import pytest
from prodflow_core.sql import create_tables, make_engine
from sqlalchemy import Boolean, Column, Index, Integer, MetaData, String, Table, inspect, text


async def test_new_columns_are_added_with_their_defaults(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    old = Table("site", MetaData(), Column("name", String, primary_key=True))
    await create_tables(engine, [old])
    async with engine.begin() as conn:
        await conn.execute(text("INSERT INTO site (name) VALUES ('snolab')"))
    new = Table(
        "site",
        MetaData(),
        Column("name", String, primary_key=True),
        Column("allow", Boolean, nullable=False, default=False),
        Column("limit", Integer, nullable=False, default=7),
        Column("note", String, nullable=True),
    )
    await create_tables(engine, [new])
    await create_tables(engine, [new])  # a second start adds nothing
    async with engine.connect() as conn:
        row = (await conn.execute(text('SELECT name, allow, "limit", note FROM site'))).one()
    await engine.dispose()
    assert tuple(row) == ("snolab", 0, 7, None)


async def test_a_required_column_without_a_default_is_refused(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    await create_tables(engine, [Table("t", MetaData(), Column("id", Integer, primary_key=True))])
    grown = Table("t", MetaData(), Column("id", Integer, primary_key=True), Column("x", String, nullable=False))
    with pytest.raises(RuntimeError, match="NOT NULL without a scalar default"):
        await create_tables(engine, [grown])
    await engine.dispose()


async def test_new_indexes_are_created_on_a_table_made_before_them(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    columns = ("id", "experiment", "label")
    await create_tables(engine, [Table("r", MetaData(), *(Column(c, String, primary_key=c == "id") for c in columns))])
    grown = Table(
        "r",
        MetaData(),
        *(Column(c, String, primary_key=c == "id") for c in columns),
        Index("ix_r_experiment_label", "experiment", "label", "id"),
    )
    await create_tables(engine, [grown])
    await create_tables(engine, [grown])  # a second start adds nothing
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda sync: [ix["name"] for ix in inspect(sync).get_indexes("r")])
    await engine.dispose()
    assert names == ["ix_r_experiment_label"]
