"""The CouchDB-API server a benchmark runs against: ``--couch`` or ``PRODFLOW_BENCH_COUCH``, one helper for all.

- ``pouchdb`` (default): PouchDB Server, in memory, on loopback (:class:`~prodflow_core.couch.server.LocalCouchServer`);
- ``couchdb``: Apache CouchDB 3.5 from ``<repo root>/../shared/couchdb`` (or ``PRODFLOW_COUCHDB3_DIST``), in a
  temporary data folder (:class:`~prodflow_core.couch.couchdb3.LocalCouchDB3Server`; its URL carries the generated
  admin password as userinfo, which is never printed: :attr:`BenchServer.description` names the server only);
- ``url``: the server ``PRODFLOW_COUCHDB_URL`` names (must be on loopback).

``bench/run.py --couch=...`` exports ``PRODFLOW_BENCH_COUCH`` to every bench; a bench's own ``--couch`` wins.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from prodflow_core.couch.couchdb3 import LocalCouchDB3Server
from prodflow_core.couch.server import LocalCouchServer, wait_until_up

COUCH_ENV = "PRODFLOW_BENCH_COUCH"
KINDS = ("pouchdb", "couchdb", "url")
LOOPBACK = "127.0.0.1"


def default_kind() -> str:
    """``PRODFLOW_BENCH_COUCH`` if set (checked), else ``pouchdb``."""
    kind = os.environ.get(COUCH_ENV, "").strip().lower() or "pouchdb"
    if kind not in KINDS:
        raise SystemExit(f"{COUCH_ENV}={kind!r}: use one of {', '.join(KINDS)}")
    return kind


def add_couch_option(parser: argparse.ArgumentParser) -> None:
    """``--couch {pouchdb,couchdb,url}``, defaulting to ``PRODFLOW_BENCH_COUCH`` (else ``pouchdb``)."""
    parser.add_argument(
        "--couch",
        choices=KINDS,
        default=default_kind(),
        help=f"CouchDB-API server to run against (default: ${COUCH_ENV} or pouchdb)",
    )


@dataclass(frozen=True)
class BenchServer:
    """A running server: its URL (maybe with credentials: never print it) and what it is (safe to print)."""

    kind: str
    url: str
    description: str

    def __str__(self) -> str:
        return self.description


def describe(kind: str, url: str, where: str | None = None) -> str:
    """What answers at ``url`` (product and version from ``GET /``), without the URL's credentials."""
    try:
        welcome = httpx.get(url, timeout=10, trust_env=False).json()
    except (httpx.HTTPError, ValueError):
        welcome = {}
    version = welcome.get("version", "?")
    if "couchdb" in welcome:
        product = f"Apache CouchDB {version}"
    elif "express-pouchdb" in welcome or "pouchdb-server" in welcome:
        product = f"PouchDB Server (express-pouchdb {version})"
    else:
        product = f"unknown server {version}"
    if where is None:
        where = {"pouchdb": "in memory", "couchdb": "local release, temporary data folder"}.get(kind, "from URL")
    return f"{kind}: {product}, {where}"


@contextlib.contextmanager
def bench_couch(kind: str | None = None, *, data_dir: Path | None = None) -> Iterator[BenchServer]:
    """Start (or, for ``url``, find) the chosen server for the block; stopped afterwards by its own PID."""
    kind = kind or default_kind()
    if kind == "url":
        url = os.environ.get("PRODFLOW_COUCHDB_URL")
        if not url:
            raise SystemExit("--couch=url needs PRODFLOW_COUCHDB_URL")
        if urlsplit(url).hostname != LOOPBACK:
            raise SystemExit(f"benches load only {LOOPBACK}: PRODFLOW_COUCHDB_URL is elsewhere")
        wait_until_up(url)
        yield BenchServer(kind, url, describe(kind, url))
        return
    server: LocalCouchServer | LocalCouchDB3Server
    if kind == "pouchdb":
        server = LocalCouchServer(data_dir=data_dir, in_memory=True)
    elif kind == "couchdb":
        server = LocalCouchDB3Server(data_dir=data_dir)
    else:
        raise SystemExit(f"--couch={kind!r}: use one of {', '.join(KINDS)}")
    with server:
        yield BenchServer(kind, server.url, describe(kind, server.url))


@contextlib.contextmanager
def embedded_on(kind: str, work: Path) -> Iterator[tuple[Any, str]]:
    """The embedded system (every service its own process) on a ``kind`` server, started; and that server's
    description. ``pouchdb``: the runner's own PouchDB Server, on disk; otherwise a server from :func:`bench_couch`.
    """
    from prodflow_cli.runner import EmbeddedSystem, free_port_block
    from prodflow_core.couch.server import free_port

    with contextlib.ExitStack() as stack:
        server = "pouchdb: the embedded runner's own PouchDB Server, on disk"
        if kind != "pouchdb":
            couch = stack.enter_context(bench_couch(kind, data_dir=work / "couchdb3"))
            os.environ["PRODFLOW_COUCHDB_URL"] = couch.url
            server = couch.description
        else:
            os.environ.pop("PRODFLOW_COUCHDB_URL", None)
        system = EmbeddedSystem(data_dir=work / "data", port=free_port_block(), couch_port=free_port())
        system.start()
        try:
            if system.couch is not None:
                server = describe("pouchdb", system.couch.url, "on disk, the runner's own")
            yield system, server
        finally:
            system.stop()
