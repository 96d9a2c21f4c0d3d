"""The job state machine, ids and design document of job documents."""

from __future__ import annotations

from pathlib import Path

import pytest
from prodflow_core import jobdocs
from prodflow_core.jobdocs import InvalidTransition, can_transition, transition


def test_job_id_round_trip() -> None:
    doc_id = jobdocs.job_id("2026-11_Tl208_scint_v1", "ScintFit_2p2Tl208", 300000, 0, 1)
    assert doc_id == "job:2026-11_Tl208_scint_v1:ScintFit_2p2Tl208:300000:0:p1"
    assert jobdocs.parse_job_id(doc_id) == ("2026-11_Tl208_scint_v1", "ScintFit_2p2Tl208", 300000, 0, 1)


def test_job_id_refuses_colons_and_parse_refuses_junk() -> None:
    with pytest.raises(ValueError, match="label"):
        jobdocs.job_id("a:b", "M", 1, 0, 1)
    with pytest.raises(ValueError, match="not a job id"):
        jobdocs.parse_job_id("camp-000001")


def test_seed_is_stable_and_differs_between_jobs() -> None:
    a, b = "job:L:M:1:0:p1", "job:L:M:2:0:p1"
    assert jobdocs.job_seed(a) == jobdocs.job_seed(a)
    assert jobdocs.job_seed(a) != jobdocs.job_seed(b)
    assert 0 <= jobdocs.job_seed(a) < 2**31


@pytest.mark.parametrize(
    ("current", "wanted", "allowed"),
    [
        ("waiting", "submitted", True),
        ("submitted", "running", True),
        ("running", "transferring", True),
        ("transferring", "completed", True),
        ("running", "failed", True),
        ("failed", "waiting", True),
        ("partFail", "waiting", True),
        ("running", "waiting", True),
        ("waiting", "cancelled", True),
        ("completed", "waiting", False),
        ("cancelled", "waiting", False),
        ("waiting", "running", False),
        ("completed", "cancelled", False),
    ],
)
def test_transitions(current: str, wanted: str, allowed: bool) -> None:
    assert can_transition(current, wanted) is allowed


def test_every_non_final_status_can_be_cancelled_and_final_ones_are_sinks() -> None:
    for status in jobdocs.STATUSES:
        if status in jobdocs.FINAL_STATUSES:
            continue
        assert can_transition(status, "cancelled"), status
    assert jobdocs.TRANSITIONS["completed"] == frozenset()
    assert set(jobdocs.TRANSITIONS) == set(jobdocs.STATUSES)


def test_retry_increments_attempt_and_appends_history() -> None:
    doc = {"_id": "job:L:M:1:0:p1", "status": "failed", "attempt": 1, "history": [{"status": "waiting"}],
           "backend": {"name": "local", "id": "x"}}  # fmt: skip
    new = transition(doc, "waiting", "2026-11-25T10:00:00Z", "retry")
    assert new["attempt"] == 2 and new["backend"] is None and new["status"] == "waiting"
    assert new["history"][-1] == {"status": "waiting", "at": "2026-11-25T10:00:00Z", "reason": "retry", "attempt": 2}
    assert doc["status"] == "failed" and len(doc["history"]) == 1  # the input is left alone


def test_lost_job_goes_back_to_waiting_with_same_attempt() -> None:
    doc = {"_id": "job:L:M:1:0:p1", "status": "running", "attempt": 2, "history": [], "backend": {"id": "1"}}
    new = transition(doc, "waiting", "t", "missing at backend")
    assert new["attempt"] == 2 and new["backend"] is None
    assert new["history"][-1]["attempt"] == 2 and "backend_id" not in new["history"][-1]


def test_a_move_at_the_backend_names_the_backend_id_and_exit_code_in_history() -> None:
    doc = {"_id": "job:L:M:1:0:p1", "status": "running", "attempt": 1, "history": [],
           "backend": {"name": "slurm", "id": "81234_17", "exit_code": 3}}  # fmt: skip
    entry = transition(doc, "failed", "t", "exit code 3")["history"][-1]
    assert entry == {"status": "failed", "at": "t", "reason": "exit code 3", "attempt": 1, "backend_id": "81234_17",
                     "exit_code": 3}  # fmt: skip


def test_forbidden_transition_raises() -> None:
    with pytest.raises(InvalidTransition, match="'completed' → 'waiting'"):
        transition({"_id": "j", "status": "completed"}, "waiting", "t")


def test_backend_name_and_output_dir() -> None:
    doc = {"_id": "job:L1:Mod:7:2:p3", "attempt": 2}
    assert jobdocs.backend_job_name(doc) == "job:L1:Mod:7:2:p3:a2"
    assert jobdocs.job_output_dir(Path("/out"), doc["_id"]) == Path("/out/L1/Mod/7_2_p3")
