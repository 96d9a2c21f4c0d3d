"""The label list a page at a time (``GET /api/labels``): every label once, in order, each page read from where
the one before stopped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prodflow_core.counts import JobCounter, count_tables
from prodflow_core.sql import create_tables, make_engine
from prodflow_monitor.summary import label_page

DATABASES = ["data-production", "data-processing"]  # the monitor's order, not the names'
LABELS = {
    ("data-production", "snoplus"): [f"S{n}" for n in range(7)],
    ("data-production", "legend"): ["G0", "G1", "G2"],
    ("data-processing", "snoplus"): ["P0", "P1"],
}


def _docs(experiment: str, label: str) -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for run, status in enumerate(("completed", "running", "completed")):
        doc_id = f"job:{label}:M:{run}:0:p1"
        docs.append((doc_id, {"_id": doc_id, "_rev": "1-a", "type": "job", "experiment": experiment,
                              "label": label, "module": "M", "status": status, "site": "s", "campaign_id": "c",
                              "events": 1}))  # fmt: skip
    return docs


async def test_pages_walk_every_label_once_in_order(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'counts.sqlite'}")
    await create_tables(engine, count_tables())
    counter = JobCounter(engine, "monitor-0")
    for (database, experiment), labels in LABELS.items():
        await counter.apply(database, [doc for label in labels for doc in _docs(experiment, label)])
    expected = [(database, experiment, label) for database in DATABASES for experiment in ("legend", "snoplus")
                for label in LABELS.get((database, experiment), [])]  # fmt: skip

    whole, last = await label_page(engine, DATABASES, ["snoplus", "legend"], limit=1000)
    assert [(i["database"], i["experiment"], i["label"]) for i in whole] == expected and last is None
    assert whole[0]["counts"] == {"completed": 2, "running": 1} and whole[0]["jobs"] == 3
    for limit in (1, 2, 5):
        seen: list[tuple[str, str, str]] = []
        position = None
        while True:
            items, position = await label_page(engine, DATABASES, ["legend", "snoplus"], limit=limit, after=position)
            assert len(items) <= limit
            seen += [(i["database"], i["experiment"], i["label"]) for i in items]
            if position is None:
                break
            assert len(items) == limit and position == seen[-1]
        assert seen == expected, limit
    scoped, _ = await label_page(engine, DATABASES, ["snoplus"], limit=1000)
    assert [i["label"] for i in scoped] == [*LABELS[DATABASES[0], "snoplus"], "P0", "P1"]
    with pytest.raises(ValueError):
        await label_page(engine, DATABASES, ["snoplus"], limit=5, after=("elsewhere", "snoplus", "S1"))
    await engine.dispose()
