"""Each attempt of a job, read from its document's ``history`` (the entries ``jobdocs.history_entry`` writes)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prodflow_core import jobdocs
from prodflow_core.provenance.schema import Attempt

_FINISHING = frozenset({jobdocs.TRANSFERRING, jobdocs.COMPLETED, jobdocs.FAILED, jobdocs.PART_FAIL, jobdocs.CANCELLED})


def attempts_of(doc: Mapping[str, Any]) -> list[Attempt]:
    """The attempts of a job document, first to last, with backend id, exit code, times and outcome.

    Entries written before attempts were recorded carry no ``attempt``: a ``waiting`` after ``failed`` or
    ``partFail`` (a retry) then starts the next one, as the state machine does.
    """
    attempts: dict[int, Attempt] = {}
    number, previous = 1, ""
    for entry in doc.get("history") or []:
        status = str(entry.get("status", ""))
        if entry.get("attempt") is not None:
            number = int(entry["attempt"])
        elif status == jobdocs.WAITING and previous in jobdocs.RETRYABLE_STATUSES:
            number += 1
        previous = status
        if number not in attempts and (number - 1) in attempts:
            _ended(attempts[number - 1], entry)
        attempt = attempts.setdefault(number, Attempt(attempt=number, outcome=status, site=doc.get("site")))
        _apply(attempt, entry, status)
    current = attempts.get(int(doc.get("attempt", number)))
    backend = doc.get("backend")
    if current is not None and isinstance(backend, Mapping):
        current.backend = current.backend or (str(backend["name"]) if backend.get("name") else None)
        current.backend_id = current.backend_id or (str(backend["id"]) if backend.get("id") else None)
        if current.exit_code is None and backend.get("exit_code") is not None:
            current.exit_code = int(backend["exit_code"])
    return [attempts[n] for n in sorted(attempts)]


def _ended(attempt: Attempt, next_entry: Mapping[str, Any]) -> None:
    """An attempt left while still at its backend: the backend lost it (the next attempt's entry says so)."""
    if attempt.outcome in (jobdocs.SUBMITTED, jobdocs.RUNNING):
        attempt.outcome = "lost"
        attempt.reason = str(next_entry.get("reason", ""))
        attempt.finished_at = attempt.finished_at or (str(next_entry.get("at", "")) or None)


def _apply(attempt: Attempt, entry: Mapping[str, Any], status: str) -> None:
    at = str(entry.get("at", "")) or None
    attempt.outcome = status
    attempt.reason = str(entry.get("reason", ""))
    if status == jobdocs.SUBMITTED:
        attempt.submitted_at = attempt.submitted_at or at
    elif status == jobdocs.RUNNING:
        attempt.started_at = attempt.started_at or at
    if status in _FINISHING and attempt.finished_at is None:
        attempt.finished_at = at
    if entry.get("backend_id"):
        attempt.backend_id = str(entry["backend_id"])
    if entry.get("exit_code") is not None:
        attempt.exit_code = int(entry["exit_code"])
