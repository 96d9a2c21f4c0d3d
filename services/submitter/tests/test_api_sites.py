"""``/api/sites`` and the sites file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from submitter_support import ADMIN, MANAGER, READER, Api, make_settings, running

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


async def test_embedded_local_site_and_admin_edits(api: Api) -> None:
    sites = (await api.client.get("/api/sites", headers=READER)).json()
    assert [s["name"] for s in sites] == ["local"] and sites[0]["backend"] == "local"
    assert sites[0]["options"]["work_dir"].endswith("backends/local")
    assert sites[0]["options"]["output_root"].endswith("outputs/local")

    body = {"backend": "slurm", "storage_element": "root://se.example//snoplus/mc", "max_running": 500,
            "max_attempts": 3, "retry_exit_codes": [137, 143], "max_walltime_s": 86400,
            "options": {"partition": "debug"}, "queue_order": ["runlevel"]}  # fmt: skip
    created = await api.client.put("/api/sites/sfu-slurm", json=body, headers=ADMIN)
    assert created.status_code == 201
    site = created.json()
    assert site["options"]["partition"] == "debug" and "work_dir" in site["options"]
    assert site["queue_order"] == ["runlevel"] and site["retry_exit_codes"] == [137, 143]
    await api.client.post("/api/sites/sfu-slurm/drain", headers=MANAGER)
    replaced = await api.client.put("/api/sites/sfu-slurm", json={**body, "max_running": 10}, headers=ADMIN)
    assert replaced.status_code == 200 and replaced.json()["max_running"] == 10 and replaced.json()["drained"] is True

    assert (await api.client.put("/api/sites/x", json=body, headers=MANAGER)).status_code == 403
    bad = await api.client.put("/api/sites/x", json={**body, "backend": "lsf"}, headers=ADMIN)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "backend"
    unknown = await api.client.put("/api/sites/x", json={**body, "speed": "fast"}, headers=ADMIN)
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "speed"
    local = {**body, "backend": "local", "options": {"max_running": 0}}  # a backend that could not run: refused now
    unusable = await api.client.put("/api/sites/x", json=local, headers=ADMIN)
    assert unusable.status_code == 422 and unusable.json()["errors"][0]["field"] == "options"
    assert "max_running" in unusable.json()["detail"]
    order = await api.client.put("/api/sites/x", json={**body, "queue_order": ["random"]}, headers=ADMIN)
    assert order.status_code == 422
    for field, value in (("max_walltime_s", 2**31), ("retry_exit_codes", [137, -(2**31) - 1])):
        beyond = await api.client.put("/api/sites/x", json={**body, field: value}, headers=ADMIN)  # past SQL INTEGER
        assert beyond.status_code == 422 and beyond.json()["errors"][0]["field"].startswith(field)

    assert (await api.client.delete("/api/sites/sfu-slurm", headers=ADMIN)).status_code == 204
    assert (await api.client.get("/api/sites/sfu-slurm", headers=READER)).status_code == 404


async def test_sites_file_is_loaded(
    tmp_path: Path, couch_url: str, request_api: tuple[str, dict[str, bytes], list[str]]
) -> None:
    sites_file = tmp_path / "sites.json"
    sites_file.write_text(json.dumps({"sites": [
        {"name": "grid", "backend": "dirac", "storage_element": "root://se//x", "options": {"site": "LCG.SFU.ca"}},
        {"name": "pool", "backend": "htcondor", "storage_element": "file:///data", "max_running": 20},
    ]}))  # fmt: skip
    async with running(make_settings(tmp_path, couch_url, request_api[0], sites_file=sites_file)) as api:
        sites = {s["name"]: s for s in (await api.client.get("/api/sites", headers=READER)).json()}
    assert set(sites) == {"grid", "pool"}  # no embedded local site when sites are configured
    assert sites["grid"]["source"] == "file" and sites["grid"]["options"]["site"] == "LCG.SFU.ca"
    assert sites["pool"]["max_running"] == 20
