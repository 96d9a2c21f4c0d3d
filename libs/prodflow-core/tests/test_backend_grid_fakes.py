"""The dirac and htcondor backends against FAKE client commands that record exactly what they were called with.

No DIRAC server or HTCondor pool runs here: the fakes print the documented output formats, so these tests
check the commands we issue and how we read the answers, not the real services.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from prodflow_core.backends import BackendJob, BackendStatus, DiracBackend, HTCondorBackend, make_backend

FAKE_SCRIPT = r'''#!{python}
"""FAKE {name}: records its argv in $FAKE_LOG and prints a canned answer."""
import json, os, re, sys
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(["{name}", *args]) + "\n")
name = "{name}"
if name == "dirac-wms-job-submit":
    for i, _ in enumerate(args):
        print(f"JobID = {{1000 + i}}")
elif name == "dirac-wms-job-status":
    canned = {{"1000": "Done", "1001": "Running", "1002": "Failed"}}
    for job in args:
        if job in canned:
            print(f"JobID={{job}} Status={{canned[job]}}; MinorStatus=Something happened; Site=LCG.Test.org;")
elif name == "condor_submit":
    text = open(args[-1]).read()
    n = len(re.findall(r"^queue$", text, re.M))
    print(f"42.0 - 42.{{n - 1}}")
elif name == "condor_q":
    print("42.1 2 undefined 1764064800 0 undefined")
elif name == "condor_history":
    for job in args:
        if job == "42.0":
            print("42.0 4 0 1764064800 1764064900 undefined")
        if job == "42.2":
            print("42.2 4 3 1764064800 1764064900 undefined")
'''


@pytest.fixture
def fake_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder of FAKE client commands first on PATH; returns the log of their calls (one JSON argv per line)."""
    folder = tmp_path / "fake-bin"
    folder.mkdir()
    names = ("dirac-wms-job-submit", "dirac-wms-job-status", "dirac-wms-job-kill",
             "condor_submit", "condor_q", "condor_history", "condor_rm")  # fmt: skip
    for name in names:
        script = folder / name
        script.write_text(FAKE_SCRIPT.format(python=sys.executable, name=name))
        script.chmod(0o755)
    log = tmp_path / "calls.jsonl"
    log.touch()
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_LOG", str(log))
    return log


def _calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def _text(path: str) -> str:
    return Path(path).read_text()


def _jobs(tmp_path: Path, n: int) -> list[BackendJob]:
    return [
        BackendJob(name=f"job:L:M:{i}:0:p1:a1", command=f"rat -n {i} mac.mac", output_dir=tmp_path / f"o{i}")
        for i in range(n)
    ]


async def test_dirac_submit_status_kill(fake_bin: Path, tmp_path: Path) -> None:
    backend = make_backend("dirac", {"work_dir": str(tmp_path / "dw"), "site": "LCG.SFU.ca", "cpu_time_s": 3600})
    assert isinstance(backend, DiracBackend)
    ids = await backend.submit(_jobs(tmp_path, 3))
    assert ids == ["1000", "1001", "1002"]
    submit = _calls(fake_bin)[0]
    assert submit[0] == "dirac-wms-job-submit" and len(submit) == 4 and all(a.endswith(".jdl") for a in submit[1:])
    jdl = _text(submit[1])
    assert 'JobName = "job:L:M:0:0:p1:a1";' in jdl and 'Site = "LCG.SFU.ca";' in jdl and "CPUTime = 3600;" in jdl
    assert 'OutputSandbox = {"std.out", "std.err"};' in jdl
    assert "rat -n 0 mac.mac" in Path(submit[1]).with_suffix(".sh").read_text()

    assert await backend.submit(_jobs(tmp_path, 3)) == ids  # known names: nothing sent again
    assert len(_calls(fake_bin)) == 1

    states = await backend.status([*ids, "77"])
    assert _calls(fake_bin)[-1] == ["dirac-wms-job-status", "1000", "1001", "1002", "77"]
    assert states["1000"].state == BackendStatus.COMPLETED and states["1000"].exit_code == 0
    assert states["1001"].state == BackendStatus.RUNNING
    assert states["1002"].state == BackendStatus.FAILED and states["1002"].reason == "Something happened"
    assert states["77"].state == BackendStatus.MISSING

    await backend.cancel(["1001"])
    assert _calls(fake_bin)[-1] == ["dirac-wms-job-kill", "1001"]


async def test_htcondor_submit_status_rm(fake_bin: Path, tmp_path: Path) -> None:
    backend = make_backend("htcondor", {"work_dir": str(tmp_path / "cw"), "requirements": 'OpSys == "LINUX"'})
    assert isinstance(backend, HTCondorBackend)
    jobs = [*_jobs(tmp_path, 3)]
    ids = await backend.submit([j.model_copy(update={"walltime_s": 600}) for j in jobs])
    assert ids == ["42.0", "42.1", "42.2"]
    submit = _calls(fake_bin)[0]
    assert submit[:2] == ["condor_submit", "-terse"]
    description = _text(submit[2])
    assert description.count("\nqueue\n") == 3 and '+ProdflowJob = "job:L:M:2:0:p1:a1"' in description
    assert 'requirements = OpSys == "LINUX"' in description and "EnteredCurrentStatus > 600" in description

    states = await backend.status(ids)
    q, history = _calls(fake_bin)[-2:]
    assert q == ["condor_q", "42", "-af:j", "JobStatus", "ExitCode", "JobStartDate", "CompletionDate", "HoldReason"]
    assert history[:3] == ["condor_history", "42.0", "42.2"]
    assert states["42.0"].state == BackendStatus.COMPLETED and states["42.0"].finished_at == "2025-11-25T10:01:40Z"
    assert states["42.1"].state == BackendStatus.RUNNING and states["42.1"].started_at == "2025-11-25T10:00:00Z"
    assert states["42.2"].state == BackendStatus.FAILED and states["42.2"].exit_code == 3

    await backend.cancel(["42.1"])
    assert _calls(fake_bin)[-1] == ["condor_rm", "42.1"]


async def test_unknown_backend_and_missing_options(tmp_path: Path) -> None:
    from prodflow_core.backends import BackendError

    with pytest.raises(BackendError, match="unknown backend 'lsf'"):
        make_backend("lsf", {})
    with pytest.raises(BackendError, match="work_dir"):
        make_backend("dirac", {})
