"""The gateway's memory for its window of the event stream, while a 1,000,000-job label completes.

The window (``prodflow_gateway.events.EventWindow``, as the gateway's settings make it) is filled in-process with
the events the monitor announces for a label whose jobs all complete with one output each: its own
``announce.job_events`` over feed batches of 1,000 job documents (a ``job.completed`` and an
``output.registered`` event per batch, each listing the batch's jobs). Baseline: the same window filled with
10,000 one-job events, as many as it holds. Each fill runs in a fresh process; the figure is the growth of its
resident memory (``VmRSS``), after a garbage collection, once the window is full.

Run: uv run python bench/bench_event_window.py [--json] [--label-jobs 1000000]
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from figures import Figure, print_table
from prodflow_core import jobdocs
from prodflow_core.couch.changes import Change
from prodflow_core.events import make_event
from prodflow_gateway.events import EventWindow
from prodflow_gateway.settings import GatewaySettings
from prodflow_monitor.announce import job_events

LABEL = "2026-12_WindowBench_v1"
FEED_BATCH = 1000
"""Job documents per batch of the monitor's feed (``MONITOR_CHANGES_BATCH``): one event of each type per batch."""
ONE_JOB_EVENTS = 10_000


def rss_bytes() -> int:
    """This process's resident memory now (``VmRSS``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def _completed_job(i: int) -> dict[str, Any]:
    module, run = f"Module{i % 10}", 200000 + i // 10
    doc_id = jobdocs.job_id(LABEL, module, run, 0, 1)
    name = f"{module}_r{run}_s0.dat"
    at = "2026-12-05T12:00:00+00:00"
    return {
        "_id": doc_id, "type": "job", "experiment": "snoplus", "label": LABEL, "module": module, "run": run,
        "pass": 1, "attempt": 1, "status": "completed",
        "history": [{"status": "running", "at": at}, {"status": "completed", "at": at}],
        "outputs": [{"name": name, "url": f"root://se.example.org//snoplus/{LABEL}/{module}/{name}", "size": 1024,
                     "adler32": f"{(i * 2654435761) & 0xFFFFFFFF:08x}"}],
    }  # fmt: skip


def label_events(jobs: int) -> Iterator[dict[str, Any]]:
    """The event documents the monitor announces as ``jobs`` jobs of one label complete, a feed batch at a time."""
    for first in range(0, jobs, FEED_BATCH):
        docs = [_completed_job(i) for i in range(first, min(jobs, first + FEED_BATCH))]
        for event in job_events("data-production", docs):
            yield event.document()


def one_job_events(count: int) -> Iterator[dict[str, Any]]:
    """``count`` events of one job each."""
    for i in range(count):
        doc = _completed_job(i)
        yield make_event("job.completed", "/services/monitor", subject=doc["_id"], experiment="snoplus",
                         data={"label": LABEL, "job_ids": [doc["_id"]], "count": 1}).document()  # fmt: skip


def fill(kind: str, jobs: int) -> dict[str, int]:
    """Fill a window as the gateway's settings make it; its memory growth, frames and entries held."""
    settings = GatewaySettings()
    gc.collect()
    before = rss_bytes()
    window = EventWindow(settings.sse_window, settings.sse_window_bytes)
    window.start("0")
    events = label_events(jobs) if kind == "label" else one_job_events(ONE_JOB_EVENTS)
    for n, doc in enumerate(events, start=1):
        window.extend([Change(id=doc["_id"], seq=f"{n}-g1AAAAAAAA", deleted=False, doc=doc)])
    gc.collect()
    return {"rss": rss_bytes() - before, "entries": len(window), "frames": window.frame_bytes}


def _in_fresh_process(kind: str, jobs: int) -> dict[str, int]:
    command = [sys.executable, __file__, "--fill", kind, "--label-jobs", str(jobs)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout.splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--label-jobs", type=int, default=1_000_000)
    parser.add_argument("--fill", choices=("label", "one-job"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fill:
        print(json.dumps(fill(args.fill, args.label_jobs)))
        return
    small = _in_fresh_process("one-job", args.label_jobs)
    big = _in_fresh_process("label", args.label_jobs)
    mib = 1 << 20
    figures = [
        Figure(f"gateway event window, {args.label_jobs:,}-job label completed", big["rss"] / mib, "MiB",
               f"{ONE_JOB_EVENTS:,} one-job events", small["rss"] / mib),
        Figure("  its SSE frames held", big["frames"] / mib, "MiB", "one-job events' frames", small["frames"] / mib),
        Figure("  events held", big["entries"], "", "one-job events held", small["entries"]),
    ]  # fmt: skip
    print_table(figures, as_json=args.json)


if __name__ == "__main__":
    main()
