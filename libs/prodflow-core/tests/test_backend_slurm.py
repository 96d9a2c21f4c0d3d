"""The slurm backend against a real single-node Slurm (slurm-wlm) started by the ``slurm`` fixture."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from prodflow_core.backends import BackendJob, BackendState, BackendStatus, SlurmBackend, make_backend
from prodflow_core.backends.slurm import parse_record, slurm_state
from prodflow_core.backends.slurm_cluster import SlurmCluster

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _backend(slurm: SlurmCluster, tmp_path: Path, array_min: int = 10) -> SlurmBackend:
    backend = make_backend(
        "slurm",
        {"work_dir": str(tmp_path / "slurm-work"), "slurm_conf": str(slurm.conf),
         "jobcomp_log": str(slurm.jobcomp_log), "partition": "debug", "array_min": array_min},
    )  # fmt: skip
    assert isinstance(backend, SlurmBackend)
    return backend


async def _wait_final(backend: SlurmBackend, ids: list[str], timeout_s: float = 60) -> dict[str, BackendState]:
    deadline = time.monotonic() + timeout_s
    while True:
        states = await backend.status(ids)
        if all(s.state.is_final for s in states.values()):
            return states
        assert time.monotonic() < deadline, states
        await asyncio.sleep(0.5)


async def test_single_jobs_run_to_completion_with_exit_codes(slurm: SlurmCluster, tmp_path: Path) -> None:
    backend = _backend(slurm, tmp_path)
    jobs = [
        BackendJob(name="job:L:M:1:0:p1:a1", command="echo $MY_VAR > out.txt", output_dir=tmp_path / "o1",
                   env={"MY_VAR": "hi there"}),
        BackendJob(name="job:L:M:2:0:p1:a1", command="exit 7", output_dir=tmp_path / "o2"),
    ]  # fmt: skip
    ids = await backend.submit(jobs)
    assert all(i.isdigit() for i in ids)
    states = await _wait_final(backend, ids)
    assert states[ids[0]].state == BackendStatus.COMPLETED and states[ids[0]].exit_code == 0
    assert states[ids[1]].state == BackendStatus.FAILED and states[ids[1]].exit_code == 7
    assert states[ids[0]].finished_at and states[ids[0]].finished_at.endswith("Z")
    assert (tmp_path / "o1" / "out.txt").read_text() == "hi there\n"
    assert await backend.submit(jobs) == ids  # re-sending the same names submits nothing new
    assert await backend.lookup([jobs[0].name, "other"]) == {jobs[0].name: ids[0]}


async def test_large_batch_goes_as_one_job_array(slurm: SlurmCluster, tmp_path: Path) -> None:
    backend = _backend(slurm, tmp_path, array_min=5)
    jobs = [
        BackendJob(name=f"job:L:A:{i}:0:p1:a1", command=f"echo {i} > n.txt", output_dir=tmp_path / f"a{i}")
        for i in range(12)
    ]
    ids = await backend.submit(jobs)
    array_id = ids[0].split("_")[0]
    assert ids == [f"{array_id}_{i}" for i in range(12)]
    states = await _wait_final(backend, ids)
    assert {s.state for s in states.values()} == {BackendStatus.COMPLETED}
    assert [(tmp_path / f"a{i}" / "n.txt").read_text() for i in range(12)] == [f"{i}\n" for i in range(12)]


async def test_cancel_and_unknown_ids(slurm: SlurmCluster, tmp_path: Path) -> None:
    backend = _backend(slurm, tmp_path)
    ids = await backend.submit([BackendJob(name="job:L:C:1:0:p1:a1", command="sleep 60", output_dir=tmp_path / "c")])
    await backend.cancel(ids)
    states = await _wait_final(backend, ids, 30)
    assert states[ids[0]].state == BackendStatus.CANCELLED
    await backend.cancel(ids)  # cancelling again is harmless
    assert (await backend.status(["999999"]))["999999"].state == BackendStatus.MISSING


def test_state_names_and_records() -> None:
    assert slurm_state("CANCELLED by 0") == BackendStatus.CANCELLED
    assert slurm_state("OUT_OF_MEMORY") == BackendStatus.FAILED
    assert slurm_state("WEIRD") == BackendStatus.UNKNOWN
    record = parse_record(
        "JobId=3 UserId=root(0) Name=wrap JobState=FAILED StartTime=2026-11-25T13:04:20 "
        "EndTime=2026-11-25T13:04:21 ArrayJobId=2 ArrayTaskId=4 ExitCode=0:9"
    )
    assert record is not None
    backend_id, state = record
    assert backend_id == "2_4" and state.state == BackendStatus.FAILED and state.exit_code == 137
    assert parse_record("JobId=2 ArrayJobId=2 ArrayTaskId=1-9 JobState=PENDING") is None
