"""A LEGEND cycle run (the example dataflow, raw → dsp → hit with Snakemake) through the gateway while processes
are killed with SIGKILL:

1. cycle-runner dies mid-run: after its restart the run is ``interrupted`` (announced as failed), no Snakemake
   process of it is left, and the next run of the same target finishes the tier from where it stopped;
2. during that second run the gateway and then the CouchDB-API server die: the run still succeeds.

Afterwards the hit tier is right (peaks within 1 keV of the generated lines) and the SSE client that
reconnected with ``Last-Event-ID`` got every event stored in that time exactly once.
"""

from __future__ import annotations

import collections
import json
import sys
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from faults.fault_support import ResumingEventClient, crash, event_ids, running_system, tolerant
from prodflow_cli.runner import EmbeddedSystem
from prodflow_cycle_runner.examples import make_example_repositories
from system_support import wait_for

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "services" / "cycle-runner" / "tests"))
from cycle_runner_support import ENV_STORE, hit_peaks  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.timeout(900)]
TARGET = "all-l200-p03-hit.gen"
LINES = [583.191, 1460.822, 2614.511]
FINAL = {"succeeded", "failed", "cancelled", "interrupted"}


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedSystem]:
    # The cycle's software comes from the repository's environment store, built once by the first session.
    env = {
        "CYCLE_RUNNER_ENV_STORE": str(ENV_STORE),
        "CYCLE_RUNNER_PROGRESS_INTERVAL_S": "0.5",
        # The manager builds its cycle from example repositories made under this session's temporary folder.
        "CYCLE_RUNNER_REPOSITORIES": json.dumps([tmp_path_factory.getbasetemp().as_uri() + "/"]),
    }
    with running_system(tmp_path_factory.mktemp("faults-cycle"), env) as running:
        yield running


def _manager(system: EmbeddedSystem) -> httpx.Client:
    admin = {"Authorization": f"Bearer {system.admin_token()}"}
    made = httpx.post(
        f"{system.gateway_url}/api/auth/tokens",
        headers=admin,
        json={"user": "lena", "experiments": ["legend"], "roles": ["manager"]},
        timeout=30,
    )
    assert made.status_code == 201, made.text
    token = made.json()["token"]
    return httpx.Client(base_url=system.gateway_url, headers={"Authorization": f"Bearer {token}"}, timeout=60)


def _run(client: httpx.Client, rid: str) -> dict[str, Any] | None:
    body = tolerant(lambda: client.get(f"/api/cycles/faulty/runs/{rid}").json())
    return body if isinstance(body, dict) and "state" in body else None


def _start(client: httpx.Client) -> str:
    resp = client.post("/api/cycles/faulty/runs", json={"targets": [TARGET], "cores": 2})
    assert resp.status_code == 202, resp.text
    return str(resp.json()["id"])


def _progressed(client: httpx.Client, rid: str, steps: int) -> dict[str, Any] | None:
    run = _run(client, rid)
    assert run is None or run["state"] in {"queued", "running"}, run
    return run if run and run["state"] == "running" and run["progress"].get("done", 0) >= steps else None


def _final(client: httpx.Client, rid: str) -> dict[str, Any] | None:
    run = _run(client, rid)
    return run if run and run["state"] in FINAL else None


def _snakemake_of(folder: Path) -> list[int]:
    """Pids of processes running in the cycle's folder (Snakemake and its jobs)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if Path(proc / "cwd").resolve() == folder and "snakemake" in (proc / "cmdline").read_text():
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


def test_cycle_run_survives_crashes(system: EmbeddedSystem, tmp_path: Path) -> None:
    assert system.couch is not None
    repos = make_example_repositories(tmp_path / "repos")
    client = ResumingEventClient(system.gateway_url, system.admin_token() or "")
    client.start()
    assert client.connected.wait(30)
    time.sleep(1.0)
    before = event_ids(system.couch.url)
    timeline: list[str] = []
    with _manager(system) as lena:
        body = {"name": "faulty", "dataflow": {"url": repos["dataflow"], "ref": "main"},
                "metadata": {"url": repos["metadata"], "ref": "main"}}  # fmt: skip
        created = lena.post("/api/cycles", json=body)
        assert created.status_code == 201, created.text
        folder = Path(created.json()["path"]).resolve()
        install = lena.post("/api/cycles/faulty/software", json={})
        assert install.status_code == 202, install.text
        installed = wait_for(lambda: _final(lena, install.json()["id"]), 900, "the software install")
        assert installed["state"] == "succeeded", installed["message"]

        first = _start(lena)
        at = wait_for(lambda: _progressed(lena, first, 3), 300, "three steps of the first run", every_s=0.2)
        timeline.append(
            f"cycle-runner killed at step {at['progress']['done']}, away {crash(system, 'cycle-runner'):.1f} s"
        )
        interrupted = wait_for(lambda: _final(lena, first), 60, "the first run to be final")
        assert interrupted["state"] == "interrupted", interrupted
        assert not _snakemake_of(folder), "Snakemake of the interrupted run still runs"

        second = _start(lena)
        for name, steps in (("gateway", 2), ("couchdb", 4)):
            at = wait_for(partial(_progressed, lena, second, steps), 300, f"{steps} steps", every_s=0.2)
            timeline.append(f"{name} killed at step {at['progress']['done']}, away {crash(system, name, 2.0):.1f} s")
        done = wait_for(lambda: _final(lena, second), 600, "the second run to be final")
        log = lena.get(f"/api/cycles/faulty/runs/{second}/log").text
        assert done["state"] == "succeeded", log[-3000:]
        assert done["progress"]["total"] < 15, "the second run redid steps the first one had finished"
    time.sleep(3.0)
    client.stop()
    print("\n".join(timeline))

    peaks = hit_peaks(
        folder / "software" / "python" / "install" / "bin" / "python", folder / "generated/tier/hit", LINES
    )
    assert len(peaks) == 4
    for name, found in peaks.items():
        for line in [LINES[0], LINES[2]] if "-cal-" in name else [LINES[1]]:
            assert abs(found[str(line)] - line) < 1.0, (name, line, found)

    received = [e["id"] for e in client.events]
    assert len(received) == len(set(received)), "an event was delivered twice"
    missing = (event_ids(system.couch.url) - before) - set(received)
    assert not missing, f"{len(missing)} events never reached the reconnecting client"
    runs = collections.defaultdict(list)
    for event in client.events:
        if event["type"].startswith("org.prodflow.cycle.run."):
            runs[event["subject"]].append(event["type"].removeprefix("org.prodflow.cycle.run."))
    assert runs[first][0] == "started" and runs[first][-1] == "failed", runs[first]
    assert runs[second][0] == "started" and runs[second][-1] == "finished", runs[second]
