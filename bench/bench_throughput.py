"""State bookkeeping throughput: trivial jobs on the local backend, end to end, in jobs per second.

Starts the embedded system (each service its own process, through the gateway with the admin token) and files
two ``--jobs``-job campaigns of trivial commands (``echo {events} > out.txt``), one after the other, each on its
own local site of ``--slots`` slots; each is timed from ``POST /api/campaigns`` until its label summary says
``complete``:
- the site's ``max_running`` equals its slots: a slot stays empty from its job's end until the monitor has seen
  it, the submitter has seen the monitor's write and a new job has reached the backend. This figure is the
  latency of that loop;
- the site's ``max_running`` is its slots plus ``--queued`` (default: as many again), as a site is run whose
  batch system should never idle: the backend starts a queued job the moment a slot frees, and the services'
  bookkeeping is what is measured (goal, issue 12: >= 200 jobs/s);
- baseline: the same commands through the bare ``LocalBackend`` with the same slots, its status polled every 0.2 s.
In both, the submitter claims, submits and records each job, the monitor polls the backend, moves it through
running, transferring and completed and copies its outputs. Where the time went goes to stderr: campaign
created, first job completed, throughput in the steady part (between 10% and 90% of the jobs final), CPU per job
and the start and a slot's cycle from the job documents; first, what creating a file costs in the work folder
(file_creation.py: on these machines it decides half the figure).

Run: uv run python bench/bench_throughput.py [--json] [--couch pouchdb|couchdb] [--jobs 5000] [--slots 32]
     [--queued 32]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from bisect import bisect_left
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from bench_local_backend import through_backend
from figures import Figure, print_table
from file_creation import create_cost_us
from procs import cpu_snapshot, system_cpu_groups
from servers import add_couch_option, embedded_on

COMMAND = "echo {events} > out.txt"


@dataclass(frozen=True)
class Run:
    """One timed campaign: its label, its site, and how many jobs that site may keep queued beyond its slots."""

    label: str
    site: str
    queued: int


def _site(work: Path, slots: int, queued: int) -> dict[str, Any]:
    return {
        "backend": "local",
        "storage_element": f"file://{work / 'se'}",
        "max_running": slots + queued,
        "options": {"work_dir": str(work / "backend"), "output_root": str(work / "outputs"), "max_running": slots},
    }


def _campaign(run: Run, jobs: int) -> dict[str, Any]:
    modules = [{"module": "ThroughputEcho", "n_ev": jobs * 10, "ev_per_run": 10}]
    return {
        "jobs": {"rat_v": "7.0.15", "experiment": "snoplus", "label": run.label, "modules": modules},
        "site": run.site,
        "command_template": COMMAND,
    }


def _track(client: httpx.Client, label: str, jobs: int, start: float, timeout_s: float) -> list[tuple[float, int, int]]:
    """Poll the label summary until it says complete: ``(seconds after start, completed, final)`` per poll."""
    seen: list[tuple[float, int, int]] = []
    deadline = start + timeout_s
    while time.monotonic() < deadline:
        response = client.get(f"/api/labels/{label}/summary", timeout=60)
        if response.status_code == 200:
            summary = response.json()
            seen.append((time.monotonic() - start, summary["counts"].get("completed", 0), summary.get("final", 0)))
            if summary.get("complete") and summary.get("jobs") == jobs:
                return seen
        time.sleep(0.05)
    raise RuntimeError(f"{label} did not complete in {timeout_s:.0f} s (last: {seen[-1:] or 'no summary'})")


def _first(seen: list[tuple[float, int, int]], final_at_least: float) -> float:
    return next(at for at, _completed, final in seen if final >= final_at_least)


def measure(client: httpx.Client, work: Path, run: Run, jobs: int, slots: int, say: Any) -> tuple[float, float]:
    """The end-to-end wall time of ``run``'s ``jobs``-job campaign on its ``slots``-slot local site, and when
    (epoch) it was filed; says where it went."""
    client.put(f"/api/sites/{run.site}", json=_site(work / run.site, slots, run.queued)).raise_for_status()
    start, started_at = time.monotonic(), time.time()
    client.post("/api/campaigns", json=_campaign(run, jobs), timeout=600).raise_for_status()
    created = time.monotonic() - start
    seen = _track(client, run.label, jobs, start, timeout_s=max(600.0, jobs / 5))
    took = seen[-1][0]
    first_done = next(at for at, completed, _final in seen if completed >= 1)
    low, high = _first(seen, 0.1 * jobs), _first(seen, 0.9 * jobs)
    steady = 0.8 * jobs / (high - low) if high > low else float("nan")
    say(f"campaign created {created:.2f} s, first job completed {first_done:.2f} s, all complete {took:.2f} s")
    say(f"steady part (10% -> 90% final, {low:.2f} s -> {high:.2f} s): {steady:.1f} jobs/s; overall {jobs / took:.1f}")
    return took, started_at


def _moves(couch_url: str, label: str) -> list[dict[str, float]]:
    """Each job of ``label``: its last move to each status (epoch seconds), read straight from CouchDB after
    the run."""
    rows = httpx.get(f"{couch_url}/data-production/_all_docs", params={"include_docs": "true"}, timeout=300,
                     trust_env=False).json()["rows"]  # fmt: skip
    jobs = [doc for row in rows if (doc := row.get("doc") or {}).get("type") == "job" and doc.get("label") == label]
    return [{move["status"]: _epoch(move["at"]) for move in doc.get("history", [])} for doc in jobs]


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _reactions(jobs: list[dict[str, float]], slots: int, queued: int, started_at: float, say: Any) -> None:
    """The start (first claim, first job seen running, first completed) and a slot's cycle, split: the monitor's
    part (claimed -> seen finished; the job itself takes milliseconds) and the submitter's (slot freed -> the
    next claim into it), means over every job."""
    firsts = {status: min((job[status] for job in jobs if status in job), default=math.nan) - started_at
              for status in ("submitted", "running", "completed")}  # fmt: skip
    say("after the POST: " + ", ".join(f"first {status} {at:.3f} s" for status, at in firsts.items()))
    claims = sorted(job["submitted"] for job in jobs if "submitted" in job)
    held = [job["transferring"] - job["submitted"] for job in jobs if {"submitted", "transferring"} <= job.keys()]
    freed = sorted(job["transferring"] for job in jobs if "transferring" in job)
    # the next round's first claim after a slot was freed (that round may have filled other slots first)
    idle = [claims[i] - at for at in freed if (i := bisect_left(claims, at)) < len(claims)]
    rounds = 1 + sum(1 for a, b in itertools.pairwise(claims) if b - a > 0.01)
    if held and idle:
        cycle = statistics.mean(held) + statistics.mean(idle)
        bound = f"{slots} slots / cycle: {slots / cycle:.1f} jobs/s" if not queued else "queued jobs wait in it too"
        say(f"{rounds} submission rounds ({len(claims) / rounds:.1f} jobs each); a slot's cycle, mean over jobs: "
            f"claimed -> seen finished {statistics.mean(held):.3f} s (p90 {_p90(held):.3f}), "
            f"freed -> next claim {statistics.mean(idle):.3f} s (p90 {_p90(idle):.3f}); {bound}")  # fmt: skip


def _p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1]


def _cpu_per_job(before: dict[str, float], after: dict[str, float], jobs: int, took: float, say: Any) -> None:
    """Where the CPU went, per job: each service, the CouchDB-API server, the rest (wrappers, jobs, this bench)."""
    used = {name: after[name] - before[name] for name in before}
    machine = used.pop("machine")
    rest = machine - sum(used.values())
    parts = ", ".join(f"{name} {1000 * cpu / jobs:.1f}" for name, cpu in sorted(used.items(), key=lambda i: -i[1]))
    say(f"CPU per job (ms): {parts}, rest {1000 * rest / jobs:.1f}; all {1000 * machine / jobs:.1f} ms "
        f"= {machine / took:.2f} of {os.cpu_count()} cores busy")  # fmt: skip


def _end_to_end(
    args: argparse.Namespace, stack: contextlib.ExitStack, work: Path, say: Any
) -> tuple[dict[Run, float], str]:
    system, server = stack.enter_context(embedded_on(args.couch, work))
    headers = {"Authorization": f"Bearer {system.admin_token()}"}
    couch_url = system.couch.url if system.couch is not None else os.environ["PRODFLOW_COUCHDB_URL"]
    took: dict[Run, float] = {}
    with httpx.Client(base_url=system.gateway_url, headers=headers, timeout=60, trust_env=False) as client:
        groups = system_cpu_groups(system.procs)
        for run in (Run("Throughput", "quick", 0), Run("ThroughputQueued", "queued", args.queued)):
            say(f"-- {run.label}: site max_running {args.slots} slots + {run.queued} queued")
            before = cpu_snapshot(groups)
            took[run], started_at = measure(client, work, run, args.jobs, args.slots, say)
            _cpu_per_job(before, cpu_snapshot(groups), args.jobs, took[run], say)
            _reactions(_moves(couch_url, run.label), args.slots, run.queued, started_at, say)
    return took, server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--slots", type=int, default=32)
    parser.add_argument("--queued", type=int, help="jobs the second site may keep queued beyond its slots (--slots)")
    parser.add_argument("--keep", action="store_true", help="keep the data folder (logs in its data/logs)")
    add_couch_option(parser)
    args = parser.parse_args()
    args.queued = args.slots if args.queued is None else args.queued

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    with contextlib.ExitStack() as stack:
        work = Path(tempfile.mkdtemp(prefix="prodflow-throughput-"))
        if not args.keep:
            stack.callback(shutil.rmtree, work, ignore_errors=True)
        say(
            f"creating a file here costs {create_cost_us(work):.0f} us now (file_creation.py: ~20 on a clean "
            "filesystem; hundreds for minutes after a large delete, and every figure below with it)"
        )
        took, server = _end_to_end(args, stack, work, say)
        bare = asyncio.run(through_backend(work / "bare", args.jobs, args.slots, poll_s=0.2))
        say(f"bare local backend: {bare:.2f} s, {args.jobs / bare:.1f} jobs/s")
        if args.keep:
            say(f"data folder: {work}")
    figures = [
        Figure(f"{args.jobs:,} trivial jobs end to end, {args.slots} slots" + (
                   f" + {run.queued} queued (goal >= 200)" if run.queued else ", none queued (latency-bound)"),
               args.jobs / seconds, "jobs/s", "bare local backend, same slots", args.jobs / bare)
        for run, seconds in took.items()
    ]  # fmt: skip
    print_table(figures, as_json=args.json, server=server)


if __name__ == "__main__":
    main()
