"""Archiving and restoring a finished label of N jobs vs copying the same documents raw (issue 16 item 5).

One run, one CouchDB-API server (``--couch``, bench/servers.py): a job database with a finished label of N jobs
(nine in ten ``completed`` with one output file each, the rest ``failed``), their kept counts in SQLite, then:
- baseline: a raw copy of the label's documents: ``_all_docs?include_docs`` over the label's id range (pages of
  2,000) and ``_bulk_docs`` of each page into a new database;
- figure: archiving the label (as monitor's ``archive_label`` does: gzip JSON-lines members + SQL index + manifest
  on a ``file://`` storage element, then ``_purge`` on CouchDB 3, tombstones + ``_compact`` on PouchDB Server),
  and each of the two steps;
- figure: restoring it (checksums of the files checked, documents written back);
- for information: one archived job read by id (its member decompressed) vs one ``GET`` of a document.
Run: uv run python bench/bench_archive.py [--json] [--couch pouchdb|couchdb] [--jobs 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from figures import Figure, print_table
from jobgen import CHUNK, bulk_write, finished_mix
from prodflow_core.couch import CouchClient, CouchDatabase
from prodflow_core.counts import JobCounter, count_tables
from prodflow_core.events import utc_now
from prodflow_core.sql import create_tables, make_engine
from prodflow_monitor.archive.files import archive_folder
from prodflow_monitor.archive.operation import ArchiveStores, remove_documents, restore_label, write_archive
from prodflow_monitor.archive.reads import archived_job
from prodflow_monitor.archive.tables import ARCHIVED, ARCHIVING, ArchiveRecord, archive_tables, load_archive
from servers import add_couch_option, bench_couch

LABEL = "Bench_Archive"


def _docs(n: int) -> list[dict[str, Any]]:
    docs = list(finished_mix(n, LABEL))
    for doc in docs:
        if doc["status"] == "completed":
            url = f"file:///se/{LABEL}/{doc['module']}/{doc['run']}_0_p1/out.root"
            doc["outputs"] = [{"name": "out.root", "url": url, "size": 123456, "adler32": "0a1b2c3d"}]
    return docs


async def _raw_copy(source: CouchDatabase, target: CouchDatabase) -> float:
    """Seconds to read the label's documents in pages and write each page into ``target``."""
    start = time.perf_counter()
    after: str | None = None
    while True:
        params: dict[str, Any] = {"startkey": f"job:{LABEL}:", "endkey": f"job:{LABEL}:\ufff0", "limit": CHUNK}
        if after is not None:
            params.update(startkey=after, skip=1)
        rows = (await source.all_docs(include_docs=True, **params)).rows
        await bulk_write(target, [{k: v for k, v in row["doc"].items() if k != "_rev"} for row in rows])
        if len(rows) < CHUNK:
            break
        after = rows[-1]["id"]
    return time.perf_counter() - start


async def _one_get(db: CouchDatabase, doc_id: str) -> float:
    start = time.perf_counter()
    for _ in range(20):
        await db.get(doc_id)
    return (time.perf_counter() - start) / 20


async def measure(url: str, n: int, work: Path) -> list[Figure]:
    engine = make_engine(f"sqlite+aiosqlite:///{work / 'monitor.sqlite'}")
    await create_tables(engine, [*count_tables(), *archive_tables()])
    async with CouchClient(url, timeout=7200) as couch:
        suffix = uuid.uuid4().hex[:8]
        db, copy, events = (couch.db(f"{name}-{suffix}") for name in ("bench-archive", "bench-copy", "bench-events"))
        for made in (db, copy, events):
            await made.ensure()
        try:
            docs = _docs(n)
            await bulk_write(db, docs)
            counter = JobCounter(engine, owner="bench")
            for offset in range(0, n, CHUNK):
                part = await db.get_many([doc["_id"] for doc in docs[offset : offset + CHUNK]])
                await counter.apply(db.name, list(part.items()))
            probe = docs[n // 2]["_id"]
            del docs
            print(f"{n:,} finished jobs written and counted", file=sys.stderr)
            baseline = await _raw_copy(db, copy)
            print(f"raw copy: {baseline:.1f} s", file=sys.stderr)
            get_one = await _one_get(db, probe)
            stores = ArchiveStores(engine, [db], events)
            at = utc_now()
            folder = archive_folder((work / "se").as_uri(), LABEL)
            record = ArchiveRecord(LABEL, "snoplus", ARCHIVING, folder, "", 0, 0, "", "bench", at, at)
            start = time.perf_counter()
            await write_archive(stores, record)
            write_s = time.perf_counter() - start
            written = await load_archive(engine, LABEL)
            assert written is not None
            await remove_documents(stores, written)
            archive_s = time.perf_counter() - start
            archived = await load_archive(engine, LABEL)
            assert archived is not None and archived.state == ARCHIVED and archived.done == n, archived
            size = sum(path.stat().st_size for path in (work / "se").rglob("*.gz"))
            print(f"archive ({archived.method}): {archive_s:.1f} s, {size / 1e6:.1f} MB", file=sys.stderr)
            start = time.perf_counter()
            for _ in range(20):
                assert await archived_job(engine, [db.name], probe) is not None
            lookup = (time.perf_counter() - start) / 20
            start = time.perf_counter()
            await restore_label(stores, archived)
            restore_s = time.perf_counter() - start
            back = (await db.all_docs(startkey=f"job:{LABEL}:", endkey=f"job:{LABEL}:\ufff0", limit=0)).total_rows
            print(f"restore: {restore_s:.1f} s ({back} rows in the database)", file=sys.stderr)
        finally:
            for made in (db, copy, events):
                await made.drop()
            await engine.dispose()
    copy_name = f"raw copy of the {n:,} docs"
    return [
        Figure(f"archive a finished label of {n:,} jobs ({archived.method})", archive_s, "s", copy_name, baseline),
        Figure("  of which files, index and manifest written", write_s, "s", copy_name, baseline),
        Figure(f"  of which documents removed ({archived.method})", archive_s - write_s, "s", copy_name, baseline),
        Figure(f"restore it ({n:,} jobs)", restore_s, "s", copy_name, baseline),
        Figure("  (info) one archived job by id", lookup * 1000, "ms", "one GET of a document", get_one * 1000),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--jobs", type=int, default=100_000)
    add_couch_option(parser)
    args = parser.parse_args()
    with bench_couch(args.couch) as server, tempfile.TemporaryDirectory(prefix="bench-archive-") as tmp:
        figures = asyncio.run(measure(server.url, args.jobs, Path(tmp)))
    print_table(figures, as_json=args.json, server=server.description)


if __name__ == "__main__":
    main()
