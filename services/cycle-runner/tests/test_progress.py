"""Run progress from the logger plugin's events."""

from __future__ import annotations

import json
from pathlib import Path

from prodflow_cycle_runner.progress import EventsTail, RunProgress

EVENTS = [
    {"event": "workflow_started", "workflow_id": "w"},
    {"event": "run_info", "stats": {"build_raw": 2, "build_dsp": 2, "autogen_output": 1, "total": 5}},
    {"event": "job_started", "jobs": [1, 2]},
    {"event": "job_info", "jobid": 1, "rule_name": "build_raw", "wildcards": {"run": "r000"}},
    {"event": "job_info", "jobid": 2, "rule_name": "build_raw", "wildcards": {"run": "r001"}},
    {"event": "job_finished", "jobid": 1},
    {"event": "progress", "done": 1, "total": 5},
    {"event": "job_info", "jobid": 3, "rule_name": "build_dsp", "wildcards": {"run": "r000"}},
    {"event": "job_error", "jobid": 2, "rule_name": "build_raw", "wildcards": {"run": "r001"}, "log": ["x.log"]},
    {"event": "error", "exception": "WorkflowError", "message": "At least one job did not complete successfully."},
]


def test_progress_counts_rules_and_failures() -> None:
    progress = RunProgress()
    for event in EVENTS:
        progress.feed(event)
    snap = progress.snapshot()
    assert (snap["done"], snap["total"], snap["percent"]) == (1, 5, 20.0)
    assert snap["rules"]["build_raw"] == {"total": 2, "done": 1}
    assert snap["rules"]["build_dsp"] == {"total": 2, "done": 0}
    assert snap["running"] == ["build_dsp"]
    assert snap["failed"] == 1
    assert snap["failures"][0] == {
        "jobid": 2,
        "rule": "build_raw",
        "wildcards": {"run": "r001"},
        "output": [],
        "log": ["x.log"],
    }
    assert snap["errors"] == ["WorkflowError: At least one job did not complete successfully."]
    json.dumps(snap)


def test_later_stats_do_not_replace_the_plan() -> None:
    progress = RunProgress()
    progress.feed({"event": "run_info", "stats": {"a": 3, "total": 3}})
    progress.feed({"event": "run_info", "stats": {"a": 1, "total": 1}})
    assert progress.snapshot()["total"] == 3


def test_unknown_events_are_ignored() -> None:
    progress = RunProgress()
    progress.feed({"event": "shellcmd"})
    progress.feed({"nothing": 1})
    assert progress.version == 0
    assert progress.snapshot()["percent"] == 0.0


def test_tail_reads_only_complete_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    tail = EventsTail(path)
    assert tail.read() == []
    with path.open("w") as out:
        out.write('{"event": "progress", "done": 1, "total": 2}\n{"event": "prog')
    assert tail.read() == [{"event": "progress", "done": 1, "total": 2}]
    with path.open("a") as out:
        out.write('ress", "done": 2, "total": 2}\nnot json\n')
    assert tail.read() == [{"event": "progress", "done": 2, "total": 2}]
    assert tail.read() == []
