"""The example dataflow end to end through the service: install, run to hit, progress, log, reprocess, cancel.

Needs the cycle's real environment (snakemake 9, pygama, dspeed, legend-lh5io). It is built once into the
repository's ``.local/cycle-runner/envs`` store, keyed by the hash of its pins, and reused by later sessions.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Service, cycle_body
from cycle_runner_support import hit_peaks, wait_run, wait_until
from prodflow_core.checksums import file_adler32
from prodflow_core.couch.client import CouchClient
from rocrate.rocrate import ROCrate  # type: ignore[import-untyped]

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
LINES = [583.191, 1460.822, 2614.511]


async def _installed(client: httpx.AsyncClient, name: str, repos: dict[str, str]) -> dict[str, Any]:
    created = await client.post("/api/cycles", json=cycle_body(name, repos))
    assert created.status_code == 201, created.text
    install = await client.post(f"/api/cycles/{name}/software", json={})
    assert install.status_code == 202, install.text
    done = await wait_run(client, name, install.json()["id"], timeout_s=900)
    assert done["state"] == "succeeded", (done["message"], (await client.get(done["links"]["log"])).text)
    cycle: dict[str, Any] = (await client.get(f"/api/cycles/{name}")).json()
    assert cycle["state"] == "ready"
    return cycle


async def _sse(client: httpx.AsyncClient, url: str) -> tuple[str, list[str]]:
    """Read a run's log as Server-Sent Events until ``event: end``; returns the text and the event names."""
    text, names = [], []
    async with client.stream("GET", url, headers={"Accept": "text/event-stream"}, timeout=600) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        async for line in resp.aiter_lines():
            if line.startswith("event: "):
                names.append(line[7:])
            elif line.startswith("data: "):
                text.append(line[6:])
    return "\n".join(text), names


def _mtimes(cycle: Path, sub: str) -> dict[str, int]:
    return {str(p.relative_to(cycle)): p.stat().st_mtime_ns for p in (cycle / sub).rglob("*") if p.is_file()}


async def _events(couch_url: str, subject_prefix: str) -> list[dict[str, Any]]:
    async with CouchClient(couch_url) as couch:
        docs, _ = await couch.db("prodflow-events").find(
            {"subject": {"$gte": subject_prefix, "$lt": subject_prefix + "\ufff0"}}, limit=10000
        )
    return sorted(docs, key=lambda d: d["id"])


async def test_example_to_hit_then_reprocess_one_run(
    client: httpx.AsyncClient, example_repos: dict[str, str], service: Service
) -> None:
    cycle = await _installed(client, "example", example_repos)
    software = (await client.get("/api/cycles/example/software")).json()
    assert software["packages"]["pygama"] == "2.6.2"
    assert software["packages"]["dspeed"] == "2.4.3"
    assert software["packages"]["snakemake"].startswith("9.")
    assert "snakemake-executor-plugin-slurm" in software["packages"]
    assert "snakemake-logger-plugin-prodflow" in software["packages"]
    folder = Path(cycle["path"])
    assert (folder / "software" / "python" / "install" / "bin" / "snakemake").exists()

    resp = await client.post("/api/cycles/example/runs", json={"targets": ["all-l200-p03-hit.gen"], "cores": 2})
    assert resp.status_code == 202, resp.text
    run = resp.json()
    log_text, sse_events = await _sse(client, run["links"]["log"])
    done = await wait_run(client, "example", run["id"])
    assert done["state"] == "succeeded", log_text[-3000:]
    assert sse_events[-1] == "end" and "log" in sse_events
    assert "15 of 15 steps (100%) done" in log_text
    progress = done["progress"]
    assert (progress["done"], progress["total"], progress["failed"]) == (15, 15, 0)
    assert progress["rules"]["build_dsp"] == {"total": 4, "done": 4}
    assert progress["rules"]["par_hit"] == {"total": 2, "done": 2}
    plain = await client.get(run["links"]["log"])
    assert plain.text.startswith("$ ") and "build_hit" in plain.text

    events = await _events(service.settings.couchdb_url, run["id"])
    types = [e["type"].removeprefix("org.prodflow.") for e in events]
    assert types[0] == "cycle.run.started" and types[-1] == "cycle.run.finished"
    assert 1 <= types.count("cycle.run.progress") < 15 * 3  # throttled: far fewer than the plugin's events
    assert events[-1]["data"]["progress"]["done"] == 15
    assert events[-1]["experiment"] == "legend"

    tier_hit = folder / "generated" / "tier" / "hit"
    peaks = hit_peaks(folder / "software" / "python" / "install" / "bin" / "python", tier_hit, LINES)
    assert len(peaks) == 4
    for name, found in peaks.items():
        expected = [LINES[0], LINES[2]] if "-cal-" in name else [LINES[1]]
        for line in expected:
            assert abs(found[str(line)] - line) < 1.0, (name, line, found)

    before = _mtimes(folder, "generated/tier") | _mtimes(folder, "generated/par")
    selection = {"tier": "dsp", "period": "p03", "run": "r001"}
    plan = (await client.post("/api/cycles/example/invalidate", json=selection)).json()
    assert plan["dry_run"] is True
    doomed = {f["path"] for f in plan["files"]}
    assert doomed == {
        "generated/tier/dsp/cal/p03/r001/l200-p03-r001-cal-20230408T000000Z-tier_dsp.lh5",
        "generated/tier/dsp/phy/p03/r001/l200-p03-r001-phy-20230408T010000Z-tier_dsp.lh5",
        "generated/tier/hit/cal/p03/r001/l200-p03-r001-cal-20230408T000000Z-tier_hit.lh5",
        "generated/tier/hit/phy/p03/r001/l200-p03-r001-phy-20230408T010000Z-tier_hit.lh5",
        "generated/par/hit/cal/p03/r001/l200-p03-r001-cal-20230408T000000Z-par_hit.json",
        "all-l200-p03-hit.gen",
    }
    assert all((folder / p).exists() for p in doomed)
    applied = (await client.post("/api/cycles/example/invalidate", json={**selection, "dry_run": False})).json()
    assert applied["count"] == 6 and applied["trash"].startswith("generated/tmp/trash/inv-")
    assert not any((folder / p).exists() for p in doomed)
    assert (folder / applied["trash"] / "generated/tier/dsp/cal/p03/r001").is_dir()

    rerun = (
        await client.post("/api/cycles/example/runs", json={"targets": ["all-l200-p03-hit.gen"], "cores": 2})
    ).json()
    redone = await wait_run(client, "example", rerun["id"])
    assert redone["state"] == "succeeded", redone["message"]
    assert redone["progress"]["total"] == 6  # 2 dsp + 1 par_hit + 2 hit + the .gen marker
    after = _mtimes(folder, "generated/tier") | _mtimes(folder, "generated/par")
    changed = {path for path, mtime in after.items() if before.get(path) != mtime}
    assert changed == {p for p in doomed if p.startswith("generated/")}  # exactly the invalidated files
    assert set(after) == set(before)
    invalidated = await _events(service.settings.couchdb_url, "example")
    assert "cycle.invalidated" in [e["type"].removeprefix("org.prodflow.") for e in invalidated]
    await _check_provenance(client, folder, run["id"], rerun["id"], changed)


HIT = "generated/tier/hit/cal/p03/r001/l200-p03-r001-cal-20230408T000000Z-tier_hit.lh5"
DSP = "generated/tier/dsp/cal/p03/r001/l200-p03-r001-cal-20230408T000000Z-tier_dsp.lh5"
RAW = "generated/tier/raw/cal/p03/r001/l200-p03-r001-cal-20230408T000000Z-tier_raw.lh5"
SIMULATION = "inputs/dataprod/config/simulation.json"


async def _check_provenance(
    client: httpx.AsyncClient, folder: Path, first_run: str, rerun: str, remade: set[str]
) -> None:
    """A remade hit file traces through its dsp file to its raw file and the raw's config, each as on disk; the
    rerun's RO-Crate lists every file it made, its actions and its instrument."""
    resp = await client.get("/api/cycles/files/provenance", params={"path": str(folder / HIT)})
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert (answer["kind"], answer["experiment"], answer["file"]["path"]) == ("cycle-file", "legend", HIT)
    cycle = answer["cycle_file"]["cycle"]
    assert cycle["name"] == "example"
    assert cycle["config_sha256"] == hashlib.sha256((folder / "config.json").read_bytes()).hexdigest()
    pins = {p["name"]: p for p in cycle["pins"]}
    assert pins["dataflow"]["kind"] == "git" and len(pins["dataflow"]["commit"]) == 40
    assert (pins["pygama"]["kind"], pins["pygama"]["version"], pins["pygama"]["source"]) == (
        "package",
        "2.6.2",
        "pygama==2.6.2",
    )
    nodes = {n["file"]["path"]: n for n in answer["cycle_file"]["files"]}
    assert answer["cycle_file"]["files"][0]["file"]["path"] == HIT
    assert len(nodes) == len(answer["cycle_file"]["files"])  # each file once
    assert DSP in nodes[HIT]["inputs"] and RAW in nodes[DSP]["inputs"] and nodes[RAW]["inputs"] == [SIMULATION]
    assert (nodes[HIT]["made_by"]["rule"], nodes[HIT]["made_by"]["run_id"]) == ("build_hit", rerun)
    assert (nodes[DSP]["made_by"]["rule"], nodes[DSP]["made_by"]["run_id"]) == ("build_dsp", rerun)
    assert (nodes[RAW]["made_by"]["rule"], nodes[RAW]["made_by"]["run_id"]) == ("build_raw", first_run)
    assert nodes[RAW]["made_by"]["wildcards"]["run"] == "r001"
    assert nodes[SIMULATION]["made_by"] is None and nodes[SIMULATION]["inputs"] == []
    for path, node in nodes.items():
        size, adler32 = file_adler32(folder / path)
        assert (node["file"]["size"], node["file"]["adler32"]) == (size, adler32), path

    _size, adler32 = file_adler32(folder / HIT)
    by_sum = await client.get(
        "/api/cycles/files/provenance", params={"name": HIT.rsplit("/", 1)[1], "adler32": adler32}
    )
    assert by_sum.status_code == 200 and by_sum.json()["cycle_file"]["files"] == answer["cycle_file"]["files"]
    relative = await client.get("/api/cycles/files/provenance", params={"path": HIT, "cycle": "example"})
    assert relative.json()["file"] == answer["file"]
    missing = await client.get("/api/cycles/files/provenance", params={"path": str(folder / "generated/nothing")})
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    for bad in ({}, {"path": HIT}, {"name": "x.lh5"}, {"path": HIT, "cycle": "example", "adler32": "00000001"}):
        assert (await client.get("/api/cycles/files/provenance", params=bad)).status_code == 422, bad

    crate_resp = await client.get(f"/api/cycles/example/runs/{rerun}/ro-crate")
    assert crate_resp.status_code == 200 and crate_resp.headers["content-type"] == "application/zip"
    zip_path = folder / "generated" / "tmp" / "crate.zip"
    zip_path.write_bytes(crate_resp.content)
    crate = ROCrate(zip_path)
    assert crate.mainEntity.id == "workflow/Snakefile" and "ComputationalWorkflow" in crate.mainEntity.type
    actions = {a.id: a for a in crate.get_by_type("CreateAction")}
    main = actions[f"#{rerun}"]
    assert main["instrument"].id == "workflow/Snakefile" and main["agent"]["name"] == "alice"
    assert len(actions) == 1 + 6  # the run and its six jobs
    results = {r["alternateName"]: r for r in main["result"]}
    assert set(results) == {p for p in remade} | {"all-l200-p03-hit.gen"}
    for path, entity in results.items():
        size, adler32 = file_adler32(folder / path)
        assert (entity["contentSize"], entity["adler32"]) == (str(size), adler32), path
        assert entity.id == (folder / path).as_uri()
    assert RAW in {o.get("alternateName") for o in main["object"]}
    assert {a["instrument"]["name"] for a in actions.values() if a.id != main.id} == {
        "build_dsp", "par_hit", "build_hit", "autogen_output",
    }  # fmt: skip


async def test_cancel_a_running_run(client: httpx.AsyncClient, example_repos: dict[str, str]) -> None:
    await _installed(client, "cancelled", example_repos)
    run = (await client.post("/api/cycles/cancelled/runs", json={"targets": ["all-l200-p03-hit.gen"]})).json()
    await wait_until(client, "cancelled", run["id"], lambda r: r["state"] == "running" and r["progress"].get("running"))
    resp = await client.post(f"/api/cycles/cancelled/runs/{run['id']}/cancel")
    assert resp.status_code == 200
    done = await wait_run(client, "cancelled", run["id"], timeout_s=60)
    assert done["state"] == "cancelled"
    assert done["progress"]["done"] < 15
    # the next run of the cycle starts cleanly (no stale lock) and a dry run plans what is left
    dry = (
        await client.post(
            "/api/cycles/cancelled/runs",
            json={"targets": ["all-l200-p03-hit.gen"], "options": ["dry-run", "rerun-incomplete"]},
        )
    ).json()
    planned = await wait_run(client, "cancelled", dry["id"])
    assert planned["state"] == "succeeded", (await client.get(planned["links"]["log"])).text[-2000:]


async def test_runs_of_a_cycle_queue(client: httpx.AsyncClient, example_repos: dict[str, str]) -> None:
    await _installed(client, "queued", example_repos)
    body = {"targets": ["all-l200-p03-r000-dsp.gen"], "options": ["dry-run"]}
    first = (await client.post("/api/cycles/queued/runs", json=body)).json()
    second = (await client.post("/api/cycles/queued/runs", json=body)).json()
    third = (await client.post("/api/cycles/queued/runs", json=body)).json()
    assert (await client.get(f"/api/cycles/queued/runs/{second['id']}")).json()["state"] == "queued"
    await client.post(f"/api/cycles/queued/runs/{third['id']}/cancel")
    runs = [await wait_run(client, "queued", r["id"]) for r in (first, second, third)]
    assert [r["state"] for r in runs] == ["succeeded", "succeeded", "cancelled"]
    assert runs[1]["started_at"] >= runs[0]["finished_at"]
    assert runs[2]["started_at"] is None
    assert runs[0]["progress"]["total"] == 5  # dry run: 2 raw + 2 dsp + marker
    patch = {"setups": {"l200": {"pkg_versions": {"pygama": "pygama==2.6.1"}}}}
    assert (await client.patch("/api/cycles/queued", json=patch)).status_code == 200
    assert (await client.get("/api/cycles/queued/software")).json()["state"] == "outdated"
    stale = (await client.post("/api/cycles/queued/runs", json=body)).json()
    refused = await wait_run(client, "queued", stale["id"])
    assert refused["state"] == "failed" and "pins changed; reinstall" in refused["message"]
