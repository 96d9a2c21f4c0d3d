"""Each attempt of a job, read back from the history entries the state machine writes."""

from __future__ import annotations

from typing import Any

from prodflow_core import jobdocs
from prodflow_core.provenance.attempts import attempts_of


def _job() -> dict[str, Any]:
    doc_id = jobdocs.job_id("L1", "Mod", 7, 0, 1)
    return {"_id": doc_id, "status": "waiting", "attempt": 1, "site": "s1", "backend": None,
            "history": [{"status": "waiting", "at": "t0", "reason": "created"}]}  # fmt: skip


def _at_backend(doc: dict[str, Any], backend_id: str, at: str) -> dict[str, Any]:
    doc = jobdocs.transition(doc, "submitted", at, "to site s1")
    return {**doc, "backend": {"name": "local", "id": backend_id, "state": "PENDING"}}


def _exit(doc: dict[str, Any], code: int) -> dict[str, Any]:
    return {**doc, "backend": {**doc["backend"], "exit_code": code}}


def test_a_retried_job_has_two_attempts_with_their_backend_ids_exit_codes_and_times() -> None:
    doc = _at_backend(_job(), "b-1", "t1")
    doc = jobdocs.transition(doc, "running", "t2")
    doc = jobdocs.transition(_exit(doc, 3), "failed", "t3", "exit code 3")
    doc = jobdocs.transition(doc, "waiting", "t4", "retry 2/3: exit code 3")
    doc = _at_backend(doc, "b-2", "t5")
    doc = jobdocs.transition(doc, "running", "t6")
    doc = jobdocs.transition(_exit(doc, 0), "transferring", "t7")
    doc = jobdocs.transition(doc, "completed", "t8", "1 outputs registered")

    first, second = attempts_of(doc)
    assert (first.attempt, first.backend_id, first.exit_code, first.outcome) == (1, "b-1", 3, "failed")
    assert (first.submitted_at, first.started_at, first.finished_at) == ("t1", "t2", "t3")
    assert (second.attempt, second.backend_id, second.exit_code, second.outcome) == (2, "b-2", 0, "completed")
    assert (second.submitted_at, second.started_at, second.finished_at) == ("t5", "t6", "t7")
    assert second.backend == "local" and first.site == "s1"


def test_a_job_its_backend_lost_ends_that_attempt_as_lost() -> None:
    doc = jobdocs.transition(_at_backend(_job(), "b-1", "t1"), "running", "t2")
    doc = jobdocs.transition(doc, "waiting", "t3", "retry 2/3: lost by the backend")
    doc = {**doc, "attempt": 2, "history": [*doc["history"][:-1], {**doc["history"][-1], "attempt": 2}]}
    first, second = attempts_of(doc)
    assert (first.outcome, first.finished_at, first.reason) == ("lost", "t3", "retry 2/3: lost by the backend")
    assert (second.attempt, second.outcome) == (2, "waiting")


def test_history_written_before_attempts_were_recorded_is_read_by_its_retries() -> None:
    history = [
        {"status": s, "at": f"t{i}", "reason": ""}
        for i, s in enumerate(["waiting", "submitted", "running", "failed", "waiting", "submitted", "completed"])
    ]
    doc = {"_id": "job:L:M:1:0:p1", "attempt": 2, "history": history, "backend": {"name": "slurm", "id": "99"}}
    first, second = attempts_of(doc)
    assert (first.attempt, first.outcome, first.backend_id) == (1, "failed", None)
    assert (second.attempt, second.outcome, second.backend_id) == (2, "completed", "99")
