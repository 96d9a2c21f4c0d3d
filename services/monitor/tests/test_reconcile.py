"""Deciding job moves from backend states: plain functions over plain data."""

from __future__ import annotations

import pytest
from prodflow_core.backends import BackendState, BackendStatus
from prodflow_core.jobdocs import InvalidTransition
from prodflow_monitor.reconcile import Move, after_part_fail, apply_moves, decide, is_retry, parse_time
from prodflow_monitor.sites import RetryPolicy

NOW = parse_time("2026-11-25T12:00:00Z") or 0.0
POLICY = RetryPolicy(max_attempts=3, retry_exit_codes=frozenset({137, 143}))


def _doc(status: str = "running", attempt: int = 1, updated_at: str = "2026-11-25T11:00:00Z") -> dict[str, object]:
    return {
        "_id": "job:L1x:Mod:1:0:p1",
        "type": "job",
        "status": status,
        "attempt": attempt,
        "updated_at": updated_at,
        "backend": {"name": "local", "id": "b1"},
        "history": [{"status": "waiting", "at": "2026-11-25T10:00:00Z", "reason": ""}],
    }


def _state(state: BackendStatus, exit_code: int | None = None, started_at: str | None = None) -> BackendState:
    return BackendState(backend_id="b1", state=state, exit_code=exit_code, started_at=started_at)


def test_running_at_backend_moves_a_submitted_job_to_running() -> None:
    decision = decide(_doc("submitted"), _state(BackendStatus.RUNNING), POLICY, NOW)
    assert decision.moves == (Move("running", "running at the backend"),)
    assert not decide(_doc("running"), _state(BackendStatus.RUNNING), POLICY, NOW)
    assert not decide(_doc("submitted"), _state(BackendStatus.PENDING), POLICY, NOW)
    assert not decide(_doc("submitted"), None, POLICY, NOW)


def test_finished_job_goes_to_transferring_never_straight_to_completed() -> None:
    decision = decide(_doc("running"), _state(BackendStatus.COMPLETED, 0), POLICY, NOW)
    assert [m.status for m in decision.moves] == ["transferring"]


def test_failure_with_a_retry_exit_code_is_retried_while_attempts_remain() -> None:
    retried = decide(_doc("running", attempt=1), _state(BackendStatus.FAILED, 137), POLICY, NOW)
    assert [m.status for m in retried.moves] == ["failed", "waiting"]
    new = apply_moves(_doc("running"), retried.moves, "2026-11-25T12:00:00Z", _state(BackendStatus.FAILED, 137))
    assert new["status"] == "waiting" and new["attempt"] == 2 and new["backend"] is None
    assert is_retry(new)
    assert [h["status"] for h in new["history"]][-2:] == ["failed", "waiting"]
    exhausted = decide(_doc("running", attempt=3), _state(BackendStatus.FAILED, 137), POLICY, NOW)
    assert [m.status for m in exhausted.moves] == ["failed"]
    other_code = decide(_doc("running"), _state(BackendStatus.FAILED, 1), POLICY, NOW)
    assert [m.status for m in other_code.moves] == ["failed"] and "exit code 1" in other_code.moves[0].reason


def test_lost_job_is_sent_again_as_a_new_attempt_or_failed_when_attempts_are_used() -> None:
    lost = decide(_doc("running", attempt=2), _state(BackendStatus.MISSING), POLICY, NOW)
    assert lost.moves[0].status == "waiting" and lost.moves[0].new_attempt
    new = apply_moves(_doc("running", attempt=2), lost.moves, "2026-11-25T12:00:00Z")
    assert new["attempt"] == 3 and new["backend"] is None
    final = decide(_doc("running", attempt=3), _state(BackendStatus.MISSING), POLICY, NOW)
    assert [m.status for m in final.moves] == ["failed"] and "attempts exhausted" in final.moves[0].reason
    no_retry = decide(_doc("running"), _state(BackendStatus.MISSING), RetryPolicy(retry_lost=False), NOW)
    assert [m.status for m in no_retry.moves] == ["failed"]


def test_missing_right_after_submission_is_given_a_grace_period() -> None:
    fresh = _doc("submitted", updated_at="2026-11-25T11:59:50Z")
    assert not decide(fresh, _state(BackendStatus.MISSING), POLICY, NOW, lost_grace_s=60)
    assert decide(fresh, _state(BackendStatus.MISSING), POLICY, NOW, lost_grace_s=5)


def test_a_claim_its_backend_never_got_goes_back_to_waiting_without_using_a_try() -> None:
    claimed = {**_doc("submitted", attempt=2, updated_at="2026-11-25T11:59:50Z"),
               "backend": {"name": "local", "id": "b1", "state": "SUBMITTING"}}  # fmt: skip
    assert not decide(claimed, _state(BackendStatus.MISSING), POLICY, NOW, lost_grace_s=60)  # still on its way
    decision = decide(claimed, _state(BackendStatus.MISSING), POLICY, NOW, lost_grace_s=5)
    assert decision.moves == (Move("waiting", "the backend never received it"),)
    new = apply_moves(claimed, decision.moves, "2026-11-25T12:00:00Z", _state(BackendStatus.MISSING))
    assert new["status"] == "waiting" and new["attempt"] == 2 and new["backend"] is None and not is_retry(new)
    seen = {**claimed, "backend": {"name": "local", "id": "b1", "state": "PENDING"}}  # seen at the backend once
    assert decide(seen, _state(BackendStatus.MISSING), POLICY, NOW, lost_grace_s=5).moves[0].new_attempt


def test_job_past_the_site_walltime_is_cancelled_and_failed() -> None:
    state = _state(BackendStatus.RUNNING, started_at="2026-11-25T10:00:00Z")
    decision = decide(_doc("running"), state, POLICY, NOW, max_walltime_s=3600)
    assert decision.cancel_at_backend and [m.status for m in decision.moves] == ["failed"]
    assert "limit of 3600 s" in decision.moves[0].reason
    assert not decide(_doc("running"), state, POLICY, NOW, max_walltime_s=86400)


def test_cancelled_at_backend_and_part_fail_policy() -> None:
    assert [m.status for m in decide(_doc(), _state(BackendStatus.CANCELLED), POLICY, NOW).moves] == ["cancelled"]
    assert [m.status for m in after_part_fail(_doc(attempt=1), "bad", POLICY)] == ["partFail", "waiting"]
    assert [m.status for m in after_part_fail(_doc(attempt=3), "bad", POLICY)] == ["partFail", "failed"]


def test_moves_the_state_machine_forbids_raise() -> None:
    with pytest.raises(InvalidTransition):
        apply_moves(_doc("completed"), [Move("running")], "2026-11-25T12:00:00Z")
