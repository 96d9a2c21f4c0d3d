"""The example's raw tier through Snakemake's Slurm executor, on a real single-node Slurm (slurm-wlm)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import httpx
import pytest
from conftest import cycle_body
from cycle_runner_support import ENV_STORE, identity_headers, wait_run
from prodflow_core.backends.slurm_cluster import SlurmCluster
from prodflow_core.testing import serving
from prodflow_cycle_runner.app import create_app
from prodflow_cycle_runner.settings import CycleRunnerSettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


@pytest.fixture
async def slurm_client(
    slurm: SlurmCluster, couch_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[httpx.AsyncClient]:
    data = tmp_path_factory.mktemp("cycle-runner-slurm")
    settings = CycleRunnerSettings(
        couchdb_url=couch_url, data_dir=data, env_store=ENV_STORE, log_json=False,
        run_env={"SLURM_CONF": str(slurm.conf)},
    )  # fmt: skip
    with serving(create_app(settings)) as url:
        headers = identity_headers(settings.identity_secret)
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:
            yield http


@pytest.mark.skipif(
    os.environ.get("PRODFLOW_TEST_SLURM_EXECUTOR") != "1",
    reason="opt-in (PRODFLOW_TEST_SLURM_EXECUTOR=1): snakemake-executor-plugin-slurm-jobstep drops SLURM_CONF before "
    "its nested srun, so on a Slurm whose config is not at the compiled-in path (the test cluster's) every job "
    "fails with 'Could not establish a configuration source'; sbatch submission itself works",
)
async def test_raw_tier_through_slurm(slurm_client: httpx.AsyncClient, example_repos: dict[str, str]) -> None:
    http = slurm_client
    assert (await http.post("/api/cycles", json=cycle_body("on-slurm", example_repos))).status_code == 201
    install = (await http.post("/api/cycles/on-slurm/software", json={})).json()
    assert (await wait_run(http, "on-slurm", install["id"], timeout_s=900))["state"] == "succeeded"
    body = {
        "targets": ["all-l200-p03-r000-cal-raw.gen"],
        "cores": 2,
        "executor": "slurm",
        "options": [
            "slurm-no-account",
            "slurm-status-command=squeue",
            "slurm-init-seconds-before-status-checks=1",
            "default-resources=slurm_partition=debug,runtime=10,mem_mb=500",
            "latency-wait=5",
        ],
    }
    run = (await http.post("/api/cycles/on-slurm/runs", json=body)).json()
    done = await wait_run(http, "on-slurm", run["id"], timeout_s=400)
    log = (await http.get(run["links"]["log"])).text
    assert done["state"] == "succeeded", log[-4000:]
    assert "--executor slurm" in log
    assert "sbatch" in log.lower() or "slurm" in log.lower()
    assert done["progress"]["done"] == done["progress"]["total"] == 2
