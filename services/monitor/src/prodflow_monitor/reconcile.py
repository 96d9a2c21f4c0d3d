"""What a job's backend state means for its document: plain functions, no I/O.

``decide`` turns (job document, backend state, retry policy, time) into the status moves to apply, in order;
``apply_moves`` applies them through :func:`prodflow_core.jobdocs.transition` (history and ``updated_at``
included). Run on a freshly read document, a decision is never applied to a state it was not made for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prodflow_core.backends import BackendState, BackendStatus
from prodflow_core.jobdocs import (
    CANCELLED,
    CLAIMED,
    FAILED,
    PART_FAIL,
    RUNNING,
    SUBMITTED,
    TRANSFERRING,
    WAITING,
    transition,
)

from prodflow_monitor.sites import RetryPolicy

POLLED_STATUSES = frozenset({SUBMITTED, RUNNING})
"""Statuses in which monitor asks the backend about a job (``transferring`` is monitor's own work)."""

RETRY_PREFIX = "retry"


@dataclass(frozen=True)
class Move:
    """One status move with its reason."""

    status: str
    reason: str = ""
    new_attempt: bool = False  # a loss counts as a try: the job is sent again as attempt + 1


@dataclass(frozen=True)
class Decision:
    """The moves for one job, and whether its backend job must be cancelled first (ran past its limit)."""

    moves: tuple[Move, ...] = ()
    cancel_at_backend: bool = False

    def __bool__(self) -> bool:
        return bool(self.moves)


NOTHING = Decision()


def parse_time(text: str | None) -> float | None:
    """Seconds since the epoch of an RFC 3339 time, or ``None``."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _started_at(doc: Mapping[str, Any], state: BackendState) -> float | None:
    started = parse_time(state.started_at)
    if started is not None:
        return started
    for entry in reversed(doc.get("history") or []):
        if entry.get("status") == RUNNING:
            return parse_time(entry.get("at"))
    return None


def retry_or_fail(reason: str, attempt: int, retried: bool, policy: RetryPolicy) -> tuple[Move, ...]:
    """``failed`` then, if ``retried``, ``waiting`` again as the next attempt."""
    if not retried:
        return (Move(FAILED, reason),)
    return (Move(FAILED, reason), Move(WAITING, f"{RETRY_PREFIX} {attempt + 1}/{policy.max_attempts}: {reason}"))


def decide(
    doc: Mapping[str, Any],
    state: BackendState | None,
    policy: RetryPolicy,
    now: float,
    *,
    max_walltime_s: float | None = None,
    lost_grace_s: float = 60.0,
) -> Decision:
    """The moves that bring ``doc`` (``submitted`` or ``running``) in line with its backend ``state``."""
    status = doc.get("status")
    if state is None or status not in POLLED_STATUSES:
        return NOTHING
    attempt = int(doc.get("attempt", 1))
    backend_state = state.state
    if backend_state == BackendStatus.RUNNING:
        started = _started_at(doc, state)
        if max_walltime_s and started is not None and now - started > max_walltime_s:
            reason = f"ran past the site's limit of {max_walltime_s:.0f} s"
            return Decision(retry_or_fail(reason, attempt, False, policy), cancel_at_backend=True)
        return Decision((Move(RUNNING, "running at the backend"),)) if status == SUBMITTED else NOTHING
    if backend_state == BackendStatus.COMPLETED:
        return Decision((Move(TRANSFERRING, "finished at the backend with exit code 0"),))
    if backend_state == BackendStatus.FAILED:
        reason = f"exit code {state.exit_code}" + (f" ({state.reason})" if state.reason else "")
        if state.native_state:
            reason += f" [{state.native_state}]"
        return Decision(retry_or_fail(reason, attempt, policy.retries_failure(state.exit_code, attempt), policy))
    if backend_state == BackendStatus.CANCELLED:
        return Decision((Move(CANCELLED, "cancelled at the backend"),))
    if backend_state == BackendStatus.MISSING:
        since = parse_time(doc.get("updated_at"))
        if since is not None and now - since < lost_grace_s:
            return NOTHING
        if (doc.get("backend") or {}).get("state") == CLAIMED:
            # claimed with its id, never seen at the backend: the submission did not get there (the submitter's
            # reconcile decides the same), so it used no try
            return Decision((Move(WAITING, "the backend never received it"),))
        reason = "lost by the backend" + (f": {state.reason}" if state.reason else "")
        if policy.retries_loss(attempt):
            return Decision(
                (Move(WAITING, f"{RETRY_PREFIX} {attempt + 1}/{policy.max_attempts}: {reason}", new_attempt=True),)
            )
        return Decision((Move(FAILED, f"{reason}; attempts exhausted ({attempt}/{policy.max_attempts})"),))
    return NOTHING  # pending or unknown: nothing to do yet


def after_part_fail(doc: Mapping[str, Any], reason: str, policy: RetryPolicy) -> tuple[Move, ...]:
    """``partFail`` (outputs missing or bad), then a retry while attempts remain, else ``failed``."""
    attempt = int(doc.get("attempt", 1))
    if attempt < policy.max_attempts:
        return (Move(PART_FAIL, reason), Move(WAITING, f"{RETRY_PREFIX} {attempt + 1}/{policy.max_attempts}: {reason}"))
    return (Move(PART_FAIL, reason), Move(FAILED, f"{reason}; attempts exhausted ({attempt}/{policy.max_attempts})"))


def apply_moves(
    doc: Mapping[str, Any], moves: Sequence[Move], at: str, state: BackendState | None = None
) -> dict[str, Any]:
    """A copy of ``doc`` after ``moves`` (``InvalidTransition`` if one is not allowed), backend state noted."""
    new = dict(doc)
    if state is not None and isinstance(new.get("backend"), Mapping):
        new["backend"] = {
            **new["backend"],
            "state": state.native_state or state.state.value,
            "exit_code": state.exit_code,
            "checked_at": at,
        }
    for move in moves:
        new = transition(new, move.status, at, move.reason)
        if move.new_attempt:
            new["attempt"] = int(new.get("attempt", 1)) + 1
            new["history"][-1] = {**new["history"][-1], "attempt": new["attempt"]}
    return new


def is_retry(doc: Mapping[str, Any]) -> bool:
    """True if the job's last move was a retry by monitor (``waiting`` again as a new attempt)."""
    history = doc.get("history") or []
    return (
        doc.get("status") == WAITING and bool(history) and str(history[-1].get("reason", "")).startswith(RETRY_PREFIX)
    )
