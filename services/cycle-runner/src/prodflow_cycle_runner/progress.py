"""A run's progress from the logger plugin's JSON lines: jobs done / total, per-rule counts, failures.

Pure bookkeeping over plain dicts, fed by :class:`EventsTail`, which reads the plugin's file incrementally.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_FAILURES_KEPT = 200


@dataclass
class RunProgress:
    """What a run has done so far."""

    total: int | None = None
    done: int = 0
    planned: dict[str, int] = field(default_factory=dict)
    finished: dict[str, int] = field(default_factory=dict)
    running: dict[int, str] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _rules: dict[int, str] = field(default_factory=dict)
    version: int = 0

    def feed(self, event: dict[str, Any]) -> None:
        """Apply one plugin event."""
        kind = event.get("event")
        handler = _HANDLERS.get(str(kind))
        if handler is not None:
            handler(self, event)
            self.version += 1

    def snapshot(self) -> dict[str, Any]:
        """The JSON form stored with the run and sent in ``cycle.run.*`` events."""
        rules = {name: {"total": total, "done": self.finished.get(name, 0)} for name, total in self.planned.items()}
        for name, count in self.finished.items():
            rules.setdefault(name, {"total": count, "done": count})
        return {
            "done": self.done,
            "total": self.total,
            "percent": round(100 * self.done / self.total, 1) if self.total else (100.0 if self.total == 0 else 0.0),
            "rules": rules,
            "running": sorted(set(self.running.values())),
            "failed": len(self.failures),
            "failures": self.failures[:MAX_FAILURES_KEPT],
            "errors": self.errors[-5:],
        }

    def summary(self, code: int | None) -> str:
        """One line for the run's message: steps done, failed rules, Snakemake's exit code if it failed."""
        total = self.total if self.total is not None else "?"
        text = f"{self.done} of {total} steps done"
        if self.failures:
            text += f", {len(self.failures)} failed ({', '.join(sorted({str(f['rule']) for f in self.failures}))})"
        if code not in (0, None):
            text += f"; snakemake exited with {code}"
        return text

    def _run_info(self, event: dict[str, Any]) -> None:
        stats = dict(event.get("stats", {}))
        total = stats.pop("total", None)
        if self.total is None:  # the first stats are the plan; later ones (dry run summary) repeat it
            self.planned = {str(k): int(v) for k, v in stats.items()}
            self.total = int(total) if total is not None else sum(self.planned.values())

    def _job_info(self, event: dict[str, Any]) -> None:
        jobid = int(event.get("jobid", -1))
        rule = str(event.get("rule_name", "?"))
        self._rules[jobid] = rule
        self.running[jobid] = rule

    def _job_finished(self, event: dict[str, Any]) -> None:
        jobid = int(event.get("jobid", -1))
        rule = self._rules.get(jobid) or self.running.get(jobid, "?")
        self.running.pop(jobid, None)
        self.finished[rule] = self.finished.get(rule, 0) + 1

    def _progress(self, event: dict[str, Any]) -> None:
        self.done = int(event.get("done", self.done))
        self.total = int(event.get("total", self.total or 0))

    def _job_error(self, event: dict[str, Any]) -> None:
        jobid = int(event.get("jobid", -1))
        self.running.pop(jobid, None)
        self.failures.append(
            {
                "jobid": jobid,
                "rule": event.get("rule_name"),
                "wildcards": event.get("wildcards") or {},
                "output": event.get("output") or [],
                "log": event.get("log") or [],
            }
        )

    def _error(self, event: dict[str, Any]) -> None:
        self.errors.append(f"{event.get('exception', '')}: {event.get('message', '')}".strip(": ")[:1000])


_HANDLERS = {
    "run_info": RunProgress._run_info,
    "job_info": RunProgress._job_info,
    "job_finished": RunProgress._job_finished,
    "progress": RunProgress._progress,
    "job_error": RunProgress._job_error,
    "error": RunProgress._error,
    "group_error": RunProgress._error,
}


def brief(progress: dict[str, Any]) -> dict[str, Any]:
    """A stored progress with its first 20 failures only (for events)."""
    return {k: v for k, v in progress.items() if k != "failures"} | {"failures": progress.get("failures", [])[:20]}


class EventsTail:
    """Reads the complete lines appended to a JSON-lines file since the last call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self._partial = b""

    def read(self) -> list[dict[str, Any]]:
        """New events (a half-written last line waits for the next call)."""
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                chunk = handle.read()
        except FileNotFoundError:
            return []
        self.offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()
        events = []
        for line in lines:
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
        return events
