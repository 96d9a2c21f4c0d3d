"""A campaign on site ``slurm``: jobs reach a real single-node Slurm (as one job array) and finish."""

from __future__ import annotations

from pathlib import Path

import pytest
from prodflow_core.backends import BackendStatus, SlurmBackend
from prodflow_core.backends.slurm_cluster import SlurmCluster
from prodflow_core.jobdocs import job_output_dir
from submitter_support import MANAGER, Api, eventually, jobs_file, put_site, unique_label

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def test_slurm_campaign_runs_to_completion(api: Api, slurm: SlurmCluster) -> None:
    options = {"slurm_conf": str(slurm.conf), "jobcomp_log": str(slurm.jobcomp_log), "array_min": 5}
    site = await put_site(api, "slurm", backend="slurm", max_running=100, max_walltime_s=600, options=options)
    label = unique_label("slurm")
    response = await api.client.post("/api/campaigns", json={"jobs": jobs_file(label, runs=4, per_run=2, by_time=2),
                                      "site": "slurm"}, headers=MANAGER)  # fmt: skip
    assert response.status_code == 201, response.text

    async def all_at_slurm() -> bool:
        return all(d["status"] == "submitted" and d["backend"]["id"] for d in await api.jobs(label))

    await eventually(all_at_slurm, timeout_s=30, what="all 10 jobs at Slurm")
    docs = await api.jobs(label)
    ids = [d["backend"]["id"] for d in docs]
    assert len({i.split("_")[0] for i in ids}) == 1 and all("_" in i for i in ids)  # one job array
    backend = SlurmBackend.from_options(site["options"])

    async def all_completed() -> bool:
        return all(s.state == BackendStatus.COMPLETED for s in (await backend.status(ids)).values())

    await eventually(all_completed, timeout_s=60, what="all 10 Slurm jobs completed")
    for doc in docs:
        out = job_output_dir(Path(site["options"]["output_root"]), doc["_id"])
        name = f"{label}_{doc['module']}_r{doc['run']}_s{doc['chunk']}_p1.out"
        assert (out / name).read_text().split()[:2] == [doc["module"], str(doc["run"])]
