"""Cycle runs through Snakemake's Slurm executor on a real single-node Slurm (slurm-wlm, the ``slurm`` fixture).

The example raw → dsp → hit with the workflow profile's per-rule resources and the cycle's partition; the same
progress events and live log as a local run; a cancel that leaves none of the run's jobs in Slurm.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Service, cycle_body
from cycle_runner_support import ENV_STORE, hit_peaks, identity_headers, wait_run, wait_until
from prodflow_core.backends.slurm_cluster import SlurmCluster
from prodflow_core.couch.client import CouchClient
from prodflow_core.testing import serving
from prodflow_cycle_runner.app import create_app
from prodflow_cycle_runner.settings import CycleRunnerSettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]
OPTIONS = [
    "slurm-status-command=squeue",
    "slurm-init-seconds-before-status-checks=1",
    "seconds-between-status-checks=1",
]
"""``squeue``: this Slurm has no accounting (``sacct`` fails, and the plugin then loses its jobs); first status checks
after a second (the plugin waits 40 s by default: sized for big clusters, not for 10-second jobs)."""
PROFILE = {"build_raw": ("00:05:00", "400M"), "build_dsp": ("00:10:00", "800M"), "build_hit": ("00:08:00", "600M"),
           "par_hit": ("00:06:00", "500M")}  # fmt: skip
"""Time limit and memory of each rule's jobs, as the example's workflow profile sets them."""
LINES = [583.191, 1460.822, 2614.511]


@pytest.fixture(scope="module")
def slurm_service(
    slurm: SlurmCluster, couch_url: str, tmp_path_factory: pytest.TempPathFactory, example_repos: dict[str, str]
) -> Iterator[Service]:
    """cycle-runner whose runs reach the single-node Slurm (``SLURM_CONF`` in their environment)."""
    if not slurm.serves_default_conf:
        pytest.skip(
            f"{slurm.default_conf} is another Slurm's: the jobs' inner srun (slurm-jobstep drops SLURM_CONF) would "
            "read it instead of the test cluster's"
        )
    data = tmp_path_factory.mktemp("cycle-runner-slurm")
    settings = CycleRunnerSettings(
        repositories=[example_repos["dataflow"].rpartition("/")[0] + "/"],
        couchdb_url=couch_url,
        data_dir=data,
        env_store=ENV_STORE,
        events_db="prodflow-events",
        progress_interval_s=0.5,
        cancel_grace_s=10.0,
        log_json=False,
        run_env={"SLURM_CONF": str(slurm.conf)},
    )
    with serving(create_app(settings)) as url:
        yield Service(url, settings)


@pytest.fixture
async def client(slurm_service: Service) -> AsyncIterator[httpx.AsyncClient]:
    headers = identity_headers(slurm_service.settings.identity_secret)
    async with httpx.AsyncClient(base_url=slurm_service.url, headers=headers, timeout=60) as http:
        yield http


async def _installed(client: httpx.AsyncClient, name: str, repos: dict[str, str], **extra: Any) -> dict[str, Any]:
    created = await client.post("/api/cycles", json=cycle_body(name, repos, **extra))
    assert created.status_code == 201, created.text
    install = (await client.post(f"/api/cycles/{name}/software", json={})).json()
    done = await wait_run(client, name, install["id"], timeout_s=900)
    assert done["state"] == "succeeded", (await client.get(done["links"]["log"])).text[-3000:]
    cycle: dict[str, Any] = created.json()
    return cycle


async def _sse_log(client: httpx.AsyncClient, url: str) -> str:
    """The run's log as Server-Sent Events, followed live until ``event: end``."""
    lines = []
    async with client.stream("GET", url, headers={"Accept": "text/event-stream"}, timeout=900) as resp:
        async for line in resp.aiter_lines():
            if line.startswith("data: "):
                lines.append(line[6:])
    return "\n".join(lines)


def _jobs(slurm: SlurmCluster, run_id: str) -> dict[str, dict[str, str]]:
    """The run's jobs that slurmctld still knows (``MinJobAge`` keeps finished ones an hour): id → fields."""
    out = subprocess.run(
        ["scontrol", "--oneliner", "show", "job"], env=slurm.env(), capture_output=True, text=True, timeout=30
    ).stdout
    jobs = {}
    for line in out.splitlines():
        fields = dict(word.split("=", 1) for word in line.split() if "=" in word)
        if fields.get("JobName", "").startswith(f"{run_id}_"):
            jobs[fields["JobId"]] = fields
    return jobs


def _queued(slurm: SlurmCluster, run_id: str) -> list[str]:
    """The run's jobs ``squeue`` shows (pending, running, completing)."""
    out = subprocess.run(
        ["squeue", "--noheader", "--format=%i %j"], env=slurm.env(), capture_output=True, text=True, timeout=30
    ).stdout
    return [line.split()[0] for line in out.splitlines() if line.split()[1].startswith(f"{run_id}_")]


async def _event_types(couch_url: str, run_id: str) -> list[str]:
    async with CouchClient(couch_url) as couch:
        docs, _ = await couch.db("prodflow-events").find({"subject": run_id}, limit=1000)
    return [d["type"].removeprefix("org.prodflow.") for d in sorted(docs, key=lambda d: d["id"])]


async def test_example_to_hit_on_slurm(
    client: httpx.AsyncClient, example_repos: dict[str, str], slurm: SlurmCluster, slurm_service: Service
) -> None:
    cycle = await _installed(client, "on-slurm", example_repos, slurm={"partition": "debug"})
    assert cycle["slurm"] == {"partition": "debug", "account": None}
    body = {"targets": ["all-l200-p03-r000-hit.gen"], "cores": 2, "executor": "slurm", "options": OPTIONS}
    run = (await client.post("/api/cycles/on-slurm/runs", json=body)).json()
    log = await _sse_log(client, run["links"]["log"])
    done = await wait_run(client, "on-slurm", run["id"])
    assert done["state"] == "succeeded", log[-4000:]
    assert f"--executor slurm --slurm-jobname-prefix {run['id']} --slurm-no-account" in log
    assert "--default-resources runtime=15 mem_mb=1000 cpus_per_task=1 slurm_partition='debug'" in log
    assert f"SLURM run ID: {run['id']}_" in log and "has been submitted with SLURM jobid" in log
    assert "8 of 8 steps (100%) done" in log

    # the same progress as a local run: 2 raw, 2 dsp, 1 par_hit, 2 hit, the .gen marker (run on the host)
    progress = done["progress"]
    assert (progress["done"], progress["total"], progress["failed"]) == (8, 8, 0)
    assert progress["rules"]["build_hit"] == {"total": 2, "done": 2}
    types = await _event_types(slurm_service.settings.couchdb_url, run["id"])
    assert types[0] == "cycle.run.started" and types[-1] == "cycle.run.finished"
    assert types.count("cycle.run.progress") >= 1

    jobs = _jobs(slurm, run["id"])
    assert len(jobs) == 7, jobs  # every job but the local rule went through Slurm
    for job in jobs.values():
        rule = job["Comment"].removeprefix("rule_").split("_wildcards_")[0]
        assert (job["JobState"], job["Partition"]) == ("COMPLETED", "debug"), job
        assert (job["TimeLimit"], job["MinMemoryNode"]) == PROFILE[rule], (rule, job)

    folder = Path(slurm_service.settings.root()) / "on-slurm"
    python = folder / "software" / "python" / "install" / "bin" / "python"
    peaks = hit_peaks(python, folder / "generated" / "tier" / "hit", LINES)
    assert len(peaks) == 2, peaks
    for name, found in peaks.items():
        for line in [LINES[0], LINES[2]] if "-cal-" in name else [LINES[1]]:
            assert abs(found[str(line)] - line) < 1.0, (name, line, found)


async def test_cancel_leaves_no_slurm_job(
    client: httpx.AsyncClient, example_repos: dict[str, str], slurm: SlurmCluster
) -> None:
    await _installed(client, "slurm-cancel", example_repos)
    body = {"targets": ["all-l200-p03-hit.gen"], "cores": 2, "executor": "slurm", "options": OPTIONS}
    run = (await client.post("/api/cycles/slurm-cancel/runs", json=body)).json()
    await wait_until(client, "slurm-cancel", run["id"], lambda r: r["progress"].get("running"), timeout_s=300)
    deadline = time.monotonic() + 60
    while not (running := _queued(slurm, run["id"])):
        assert time.monotonic() < deadline, "no job of the run reached Slurm"
        await asyncio.sleep(0.2)
    assert (await client.post(f"/api/cycles/slurm-cancel/runs/{run['id']}/cancel")).status_code == 200
    done = await wait_run(client, "slurm-cancel", run["id"], timeout_s=120)
    assert done["state"] == "cancelled"
    log = (await client.get(run["links"]["log"])).text
    assert "Terminating processes on user request" in log  # Snakemake's own cancel: scancel of its jobs
    assert _queued(slurm, run["id"]) == []  # the run is final only once its jobs have left the queue
    states = {job_id: job["JobState"] for job_id, job in _jobs(slurm, run["id"]).items()}
    assert set(states.values()) <= {"COMPLETED", "CANCELLED"}, states
    assert "CANCELLED" in {states[job_id] for job_id in running}, (running, states)  # a job seen queued was cut
    assert done["progress"]["done"] < 15
