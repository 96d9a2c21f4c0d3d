"""A small campaign is not slowed by a big one: no hot path waits for what other labels' documents cost.

Starts the embedded system (each service its own process, through the gateway with the admin token), with two
local sites: ``quick`` and ``busy`` (drained). Measures, from ``POST /api/campaigns`` to the label summary saying
``complete``:
- baseline: a 1-job campaign on ``quick`` with nothing else in the system (median of ``--repeat``);
- figure: a 1-job campaign on ``quick`` filed right after a ``--jobs``-job campaign was created on ``busy``
  (whose jobs stay waiting: the site is drained). Goal (issue 12): at most 2 s more than the baseline.
The same two, from the POST to the label's ``job.completed`` at a client of ``/api/events``; and both for a 1-job
campaign filed while the big one is being created (``DURING_S`` after its POST: its documents come in a burst
of the big one's).
The big campaign's documents still have to pass through the submitter's and the monitor's ``_changes`` readers
(counted once each) before the small one's changes do; no view is queried on the way.

Run: uv run python bench/bench_isolation.py [--json] [--couch pouchdb|couchdb] [--jobs 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from figures import Figure, print_table
from servers import add_couch_option, embedded_on

COMMAND = "echo {events} > out.txt"


def _site(work: Path, name: str) -> dict[str, Any]:
    return {
        "backend": "local",
        "storage_element": f"file://{work / 'se'}",
        "max_running": 8,
        "options": {"work_dir": str(work / f"backend-{name}"), "output_root": str(work / "outputs"), "max_running": 8},
    }


def _campaign(label: str, jobs: int, site: str) -> dict[str, Any]:
    modules = [{"module": "IsoEcho", "n_ev": jobs * 10, "ev_per_run": 10}]
    return {
        "jobs": {"rat_v": "7.0.15", "experiment": "snoplus", "label": label, "modules": modules},
        "site": site,
        "command_template": COMMAND,
    }


def _file(client: httpx.Client, label: str, jobs: int, site: str) -> None:
    key = {"Idempotency-Key": f"iso-{label}"}
    deadline = time.monotonic() + 1800
    while True:  # a gateway timeout leaves the submitter working: the same key answers once it is done
        response = client.post("/api/campaigns", json=_campaign(label, jobs, site), headers=key, timeout=600)
        if response.status_code in (200, 201) or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    response.raise_for_status()


def _complete(client: httpx.Client, label: str, timeout_s: float = 900.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        response = client.get(f"/api/labels/{label}/summary", timeout=60)
        if response.status_code == 200 and response.json().get("complete"):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{label} did not complete in {timeout_s:.0f} s")


class _JobCompleted(threading.Thread):
    """An SSE client of ``/api/events`` that notes when the first ``job.completed`` of ``label`` arrives."""

    def __init__(self, client: httpx.Client, label: str) -> None:
        super().__init__(daemon=True)
        self.client, self.label = client, label
        self.connected = threading.Event()
        self.at: float | None = None

    def run(self) -> None:
        params = {"types": "job.completed"}
        with self.client.stream("GET", "/api/events", params=params, timeout=httpx.Timeout(60, read=None)) as stream:
            self.connected.set()
            for line in stream.iter_lines():
                if line.startswith("data: ") and json.loads(line[6:])["data"]["label"] == self.label:
                    self.at = time.monotonic()
                    return


def _one_job(client: httpx.Client, label: str, say: Any = None) -> tuple[float, float]:
    """Seconds from the POST to the summary saying complete, and to the job's ``job.completed`` at an SSE client."""
    watcher = _JobCompleted(client, label)
    watcher.start()
    watcher.connected.wait(30)
    start, wall = time.monotonic(), time.time()
    _file(client, label, 1, "quick")
    _complete(client, label)
    took = time.monotonic() - start
    watcher.join(900)
    if watcher.at is None:
        raise RuntimeError(f"no job.completed of {label} came to the SSE client")
    event = watcher.at - start
    if say is not None:  # where the time went: each move of the job, seconds after the POST
        job = client.get(f"/api/jobs/{client.get('/api/jobs', params={'label': label}).json()['items'][0]['_id']}")
        moves = [(h["status"], datetime.fromisoformat(h["at"].replace("Z", "+00:00")).timestamp() - wall)
                 for h in job.json()["history"]]  # fmt: skip
        say("  " + ", ".join(f"{status} {at:+.2f} s" for status, at in moves)
            + f", summary complete {took:.2f} s, job.completed at an SSE client {event:.2f} s")  # fmt: skip
    return took, event


DURING_S = 5.0
"""How long after the big campaign's POST the 1-job campaign filed during its creation is filed."""


def measure(client: httpx.Client, work: Path, jobs: int, repeat: int, say: Any) -> dict[str, tuple[float, float]]:
    """(summary complete, ``job.completed`` at an SSE client) of a 1-job campaign: alone (medians), filed while
    the big campaign is being created, and right after."""
    for name in ("quick", "busy"):
        client.put(f"/api/sites/{name}", json=_site(work, name)).raise_for_status()
    client.post("/api/sites/busy/drain").raise_for_status()
    _one_job(client, "Iso_warmup")
    runs = [_one_job(client, f"Iso_alone_{i}", say) for i in range(repeat)]
    times = {"alone": (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs))}
    say(f"1-job campaign alone: {times['alone'][0]:.2f} s, its job.completed {times['alone'][1]:.2f} s "
        f"(medians of {repeat})")  # fmt: skip

    def during() -> None:
        time.sleep(DURING_S)
        with httpx.Client(base_url=client.base_url, headers=client.headers, timeout=60, trust_env=False) as own:
            times["during"] = _one_job(own, "Iso_during_big", say)

    filer = threading.Thread(target=during)
    start = time.monotonic()
    filer.start()
    _file(client, "Iso_big", jobs, "busy")
    say(f"{jobs:,}-job campaign created on the drained site in {time.monotonic() - start:.1f} s")
    times["after"] = _one_job(client, "Iso_after_big", say)
    filer.join()
    for name, when in (("during", f"{DURING_S:.0f} s into its creation"), ("after", "right after it")):
        took, alone = times[name], times["alone"]
        say(f"1-job campaign {when}: {took[0]:.2f} s ({took[0] - alone[0]:+.2f} s), "
            f"its job.completed {took[1]:.2f} s ({took[1] - alone[1]:+.2f} s)")  # fmt: skip
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the data folder (logs in its data/logs)")
    add_couch_option(parser)
    args = parser.parse_args()

    def say(line: str) -> None:
        print(line, file=sys.stderr if args.json else sys.stdout, flush=True)

    with contextlib.ExitStack() as stack:
        work = Path(tempfile.mkdtemp(prefix="prodflow-isolation-"))
        if not args.keep:
            stack.callback(shutil.rmtree, work, ignore_errors=True)
        with embedded_on(args.couch, work) as (system, server):
            headers = {"Authorization": f"Bearer {system.admin_token()}"}
            with httpx.Client(base_url=system.gateway_url, headers=headers, timeout=60, trust_env=False) as client:
                times = measure(client, work, args.jobs, args.repeat, say)
        say(f"data folder: {work}" if args.keep else "")
    (alone, alone_event), (after, after_event) = times["alone"], times["after"]
    during, during_event = times["during"]
    figures = [
        Figure(f"1-job campaign after a {args.jobs:,}-job one (goal +2 s)", after, "s", "1-job campaign alone", alone),
        Figure("  its job.completed at an SSE client", after_event, "s", "the same, alone", alone_event),
        Figure(f"1-job campaign filed {DURING_S:.0f} s into the big one's creation", during, "s",
               "1-job campaign alone", alone),
        Figure("  its job.completed at an SSE client", during_event, "s", "the same, alone", alone_event),
    ]  # fmt: skip
    print_table(figures, as_json=args.json, server=server)


if __name__ == "__main__":
    main()
