"""Outputs to a real XRootD storage element (Debian's xrootd-server on loopback), and the grabber over root://."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import fsspec  # type: ignore[import-untyped]
import httpx
import pytest
from prodflow_core.backends import make_backend
from prodflow_core.couch import CouchClient
from prodflow_core.identity import IDENTITY_HEADER, Identity, sign_identity
from prodflow_core.testing import serving
from prodflow_monitor.app import create_app
from prodflow_monitor.download import download_manifest
from prodflow_monitor.settings import MonitorSettings
from prodflow_monitor.storage import copy_to_storage, file_adler32

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

N_JOBS = 40


def test_copy_to_xrootd_is_verified_by_the_server_checksum(xrootd_se: str, tmp_path: Path) -> None:
    source = tmp_path / "f.root"
    source.write_bytes(b"\x00\x01payload" * 5000)
    record = copy_to_storage(source, f"{xrootd_se}/unit/f.root")
    assert (record.size, record.adler32) == file_adler32(source)
    fs, path = fsspec.core.url_to_fs(record.url)
    assert fs.checksum(path, "adler32") == ("adler32", record.adler32)
    copy_to_storage(source, f"{xrootd_se}/unit/f.root")  # a second copy (a retried transfer) replaces the first


async def test_jobs_register_outputs_on_xrootd_and_the_manifest_downloads(
    couch: CouchClient, monitor_settings: MonitorSettings, sites_api: Any, kit: Any, tmp_path: Path, xrootd_se: str
) -> None:
    settings, label = monitor_settings, "2026-11_N16_xrootd"
    site = kit.local_site("local-xrootd", tmp_path / "work", tmp_path / "outputs", f"{xrootd_se}/mc")
    sites_api.sites[site["name"]] = site
    backend = make_backend("local", site["options"])
    header = {
        IDENTITY_HEADER: sign_identity(
            Identity("bob", frozenset({"snoplus"}), frozenset({"reader"})), settings.identity_secret, ttl_s=600
        )
    }
    with serving(create_app(settings)) as url:
        db = couch.db(settings.databases[0])
        docs = [kit.job_doc(label, "WaterN16", 100 + i, site["name"]) for i in range(N_JOBS)]
        await db.bulk_docs(docs)
        command = "head -c 20000 /dev/urandom > n16.root; echo done > n16.log"
        await kit.submit_jobs(db, backend, docs, tmp_path / "outputs", lambda d: command)
        async with httpx.AsyncClient(base_url=url, headers=header, timeout=30) as http:

            async def done() -> bool:
                return bool((await http.get(f"/api/labels/{label}/summary")).json()["complete"])

            await kit.wait_until(done, 90, "the label to complete", every_s=0.5)
            manifest = (await http.get(f"/api/grab/{label}")).json()
            exactly = (await http.get(f"/api/grab/{label}/exactly")).text

    assert manifest["count"] == 2 * N_JOBS and manifest["total_size"] == N_JOBS * (20000 + 5)
    assert exactly.splitlines()[0] == "WaterN16 100 1" and len(exactly.splitlines()) == N_JOBS
    for entry in manifest["files"][:10]:
        assert entry["url"].startswith(xrootd_se + "/mc/" + label + "/WaterN16/")
        fs, path = fsspec.core.url_to_fs(entry["url"])
        assert fs.checksum(path, "adler32") == ("adler32", entry["adler32"])
        source = tmp_path / "outputs" / label / "WaterN16" / f"{entry['run']}_0_p1" / entry["name"]
        assert file_adler32(source) == (entry["size"], entry["adler32"])
    report = await asyncio.to_thread(download_manifest, manifest, tmp_path / "grabbed", False)
    assert report.ok and len(report.downloaded) == 2 * N_JOBS
    grabbed = tmp_path / "grabbed" / "WaterN16" / "100_0_p1" / "n16.log"
    assert grabbed.read_text() == "done\n"
