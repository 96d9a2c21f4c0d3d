"""The jobs.json format (FORMATS.md): event modes of module entries, job counts and canonical bytes.

request-api writes jobs.json, submitter reads it; both count jobs with the same rules, so they live here.
Everything is pure: plain dicts in, plain values out.

A module entry's **event mode** is fixed by the fields it carries:

- ``by_time``: ``t_run`` (live time per job, in ``t_format`` units) and ``n_runs`` jobs;
- ``by_events``: ``n_ev`` in total, ``ev_per_run`` per job, so ⌈n_ev / ev_per_run⌉ jobs;
- ``run_by_run``: ``run_numbers`` (or a run list given at submission), ``n_runs`` jobs per run (default 1);
- ``run_by_run_events``: ``run_numbers`` and ``n_ev`` per run split into ``ev_per_run`` jobs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any, Final

FORMAT: Final = "prodflow.jobs/1"
"""The value of the top-level ``format`` field prodflow writes."""


class EventMode(StrEnum):
    """How a module entry says how much to simulate."""

    BY_TIME = "by_time"
    BY_EVENTS = "by_events"
    RUN_BY_RUN = "run_by_run"
    RUN_BY_RUN_EVENTS = "run_by_run_events"

    @property
    def uses_runs(self) -> bool:
        """True for the modes that simulate real detector runs."""
        return self in (EventMode.RUN_BY_RUN, EventMode.RUN_BY_RUN_EVENTS)


class AmbiguousEventMode(ValueError):
    """A module entry whose fields do not name exactly one event mode."""


def event_mode(entry: Mapping[str, Any], *, has_run_list: bool = False) -> EventMode:
    """The event mode of a module entry, from the fields it carries.

    ``has_run_list`` says that runs come from outside the entry (``production_submit.py -L runs.txt``), so an
    entry without ``run_numbers`` and without ``t_run``/``n_ev`` is run-by-run.
    """
    by_time = "t_run" in entry
    by_events = "n_ev" in entry
    runs = "run_numbers" in entry
    if by_time and by_events:
        raise AmbiguousEventMode("an entry carries either t_run (by time) or n_ev (by events), not both")
    if by_time:
        if runs:
            raise AmbiguousEventMode("t_run (by time) does not combine with run_numbers")
        return EventMode.BY_TIME
    if by_events:
        return EventMode.RUN_BY_RUN_EVENTS if runs else EventMode.BY_EVENTS
    if runs or has_run_list:
        return EventMode.RUN_BY_RUN
    raise AmbiguousEventMode("an entry needs t_run (by time), n_ev (by events) or run_numbers (run-by-run)")


def module_job_count(entry: Mapping[str, Any], run_list: Sequence[int] | None = None) -> int:
    """How many jobs one module entry makes (``run_list``: runs given at submission, if any)."""
    mode = event_mode(entry, has_run_list=run_list is not None)
    runs = entry.get("run_numbers")
    n_real_runs = len(runs) if runs is not None else len(run_list or ())
    if mode is EventMode.BY_TIME:
        return int(entry["n_runs"])
    if mode is EventMode.BY_EVENTS:
        return math.ceil(int(entry["n_ev"]) / int(entry["ev_per_run"]))
    if mode is EventMode.RUN_BY_RUN:
        return n_real_runs * int(entry.get("n_runs", 1))
    return n_real_runs * math.ceil(int(entry["n_ev"]) / int(entry["ev_per_run"]))


def count_jobs(jobs: Mapping[str, Any], run_list: Sequence[int] | None = None) -> int:
    """How many jobs a whole jobs.json makes, following FORMATS.md's rules for each module entry."""
    return sum(module_job_count(entry, run_list) for entry in jobs.get("modules", ()))


def dumps(jobs: Mapping[str, Any]) -> bytes:
    """The canonical bytes of a jobs.json: UTF-8, sorted keys, compact separators, one trailing newline.

    Module order and run order are the caller's (they are data); keys are sorted at every level, so the same
    content always gives the same bytes and the same SHA-256.
    """
    text = json.dumps(jobs, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.encode() + b"\n"
