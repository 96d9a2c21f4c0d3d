"""The local Apache CouchDB 3.5 of the tests: credentials in the URL, stopped by PID, epmd left alone while used."""

from __future__ import annotations

import asyncio
import socket
import uuid
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx
import pytest
from prodflow_core.couch import CouchClient, CouchError
from prodflow_core.couch.couchdb3 import LocalCouchDB3Server, couchdb3_dist, epmd_running
from prodflow_core.jobdocs import ensure_job_databases
from prodflow_core.settings import ServiceSettings

pytestmark = pytest.mark.integration


async def test_services_authenticate_with_the_url_userinfo(couchdb3_url: str) -> None:
    parts = urlsplit(couchdb3_url)
    anonymous = f"http://{parts.hostname}:{parts.port}"
    async with CouchClient(anonymous) as client:  # admin party is off on CouchDB 3
        with pytest.raises(CouchError) as refused:
            await client.db("no-credentials").ensure()
        assert refused.value.status == 401
    # A password with characters that must be percent-encoded in a URL: httpx decodes the userinfo for Basic auth.
    name, password = "pf-special", "p@ss:w/rd %?#"
    async with CouchClient(couchdb3_url) as admin:
        await admin.request("PUT", f"_node/_local/_config/admins/{name}", json_body=password)
    try:
        async with CouchClient(f"http://{name}:{quote(password, safe='')}@{parts.hostname}:{parts.port}") as client:
            for _ in range(100):  # CouchDB hashes a new admin's password in the background
                session = await client.request("GET", "_session", ok_statuses=(401,))
                if session.get("userCtx"):
                    break
                await asyncio.sleep(0.1)
            assert session["userCtx"]["name"] == name
    finally:
        async with CouchClient(couchdb3_url) as admin:
            await admin.request("DELETE", f"_node/_local/_config/admins/{name}")


def test_a_second_server_stops_by_pid_and_leaves_the_shared_epmd(
    couchdb3_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ERL_FLAGS", "+zdbbl 65536")  # the caller's own flags are kept
    server = LocalCouchDB3Server(data_dir=tmp_path / "second")
    url = server.start()
    assert server.proc is not None
    pid = server.proc.pid
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()  # start.sh execs the Erlang VM: this is its PID
        assert server.password.encode() not in cmdline  # the password is in local.ini, not in the process table
        for flag in ("-zdbbl\x0065536", "-sbwt\x00none", "-sbwtdcpu\x00none", "-sbwtdio\x00none"):
            assert flag.encode() in cmdline  # schedulers sleep instead of spinning (NO_BUSY_WAIT_FLAGS)
        assert server.password not in repr(server)
        assert httpx.get(f"{url}/_up", timeout=5).json()["status"] == "ok"
    finally:
        server.stop()
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[-1][:3]
    with socket.socket() as sock:  # its port is free again
        sock.bind(("127.0.0.1", server.port))
    # The session's CouchDB 3 still runs and is registered with epmd: it must not have been stopped.
    assert epmd_running()
    assert httpx.get(f"{couchdb3_url}/_up", timeout=5).status_code == 200


def test_release_location_can_be_overridden(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PRODFLOW_COUCHDB3_DIST", str(tmp_path))
    assert couchdb3_dist() is None  # no start.sh there
    (tmp_path / "start.sh").write_text("#!/bin/sh\n")
    assert couchdb3_dist() == tmp_path


async def test_job_databases_have_one_shard_unless_set(couchdb3_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PRODFLOW_COUCHDB_JOB_SHARDS", raising=False)
    prefix = f"q-{uuid.uuid4().hex[:8]}-"
    async with CouchClient(couchdb3_url) as client:
        databases = await ensure_job_databases(client, prefix=prefix, shards=ServiceSettings().couchdb_job_shards)
        for db in databases.values():
            layout = await client.request("GET", f"{db.name}/_shards")
            assert len(layout["shards"]) == 1
            await db.drop()


async def test_job_databases_take_the_configured_shards(couchdb3_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRODFLOW_COUCHDB_JOB_SHARDS", "4")
    shards = ServiceSettings().couchdb_job_shards
    prefix = f"q-{uuid.uuid4().hex[:8]}-"
    async with CouchClient(couchdb3_url) as client:
        databases = await ensure_job_databases(client, prefix=prefix, shards=shards)
        for db in databases.values():
            layout = await client.request("GET", f"{db.name}/_shards")
            assert len(layout["shards"]) == 4
            await db.drop()
