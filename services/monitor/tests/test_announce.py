"""Which events job documents announce, grouped per label and type with stable ids."""

from __future__ import annotations

from typing import Any

from prodflow_monitor.announce import SeenStates, job_events, label_completed_event, stable_event_id


def _job(n: int, status: str, label: str = "L1x", **extra: Any) -> dict[str, Any]:
    history = [{"status": "submitted", "at": "t", "reason": ""}, {"status": status, "at": "t", "reason": "why"}]
    return {
        "_id": f"job:{label}:M:{n}:0:p1",
        "type": "job",
        "label": label,
        "experiment": "snoplus",
        "status": status,
        "attempt": 1,
        "history": history,
        **extra,
    }


def test_bulk_changes_are_one_event_per_label_and_type() -> None:
    out = {"name": "f.root", "url": "file:///se/f.root", "size": 3, "adler32": "00000001"}
    docs = [_job(i, "completed", outputs=[out]) for i in range(5)] + [
        _job(9, "failed", site="ral"),
        _job(7, "running", "L2x"),
    ]
    events = job_events("data-production", docs)
    by_type = {(e.short_type, e.data["label"]): e for e in events}
    assert set(by_type) == {
        ("job.completed", "L1x"),
        ("output.registered", "L1x"),
        ("job.failed", "L1x"),
        ("job.running", "L2x"),
    }
    completed = by_type[("job.completed", "L1x")]
    assert completed.data["count"] == 5 and completed.subject == "L1x" and completed.experiment == "snoplus"
    assert len(by_type[("output.registered", "L1x")].data["outputs"]) == 5
    failed = by_type[("job.failed", "L1x")]
    assert failed.subject == "job:L1x:M:9:0:p1" and failed.data["reasons"] == {"job:L1x:M:9:0:p1": "why"}
    assert failed.data["sites"] == {"job:L1x:M:9:0:p1": "ral"}  # the digests group failures per site
    assert [e.id for e in job_events("data-production", docs)] == [e.id for e in events]  # same batch, same ids


def test_waiting_jobs_announce_only_retries() -> None:
    retried = _job(1, "waiting")
    retried["history"][-1]["reason"] = "retry 2/3: exit code 137"
    events = job_events("data-production", [retried, _job(2, "waiting"), _job(3, "submitted")])
    assert [e.short_type for e in events] == ["job.retried"]


def test_seen_states_and_stable_ids() -> None:
    seen = SeenStates(capacity=2)
    doc = _job(1, "running")
    assert seen.is_new(doc)
    seen.remember([doc])
    assert not seen.is_new(doc)
    seen.remember([_job(2, "running"), _job(3, "running")])
    assert seen.is_new(doc)  # evicted: the memory is bounded
    assert stable_event_id("a", 1).startswith("evt-") and len(stable_event_id("a", 1)) == 30
    assert stable_event_id("a", 1) == stable_event_id("a", 1) != stable_event_id("a", 2)
    first = label_completed_event("db", "L", "snoplus", {"completed": 2}, 1)
    assert first.id == label_completed_event("db", "L", "snoplus", {"completed": 2}, 1).id
    assert first.data == {"label": "L", "database": "db", "counts": {"completed": 2}}


def test_a_state_older_than_one_announced_is_not_new() -> None:
    seen = SeenStates()
    running, completed = _job(1, "running"), _job(1, "completed")
    completed["history"] = [*running["history"], {"status": "completed", "at": "t", "reason": ""}]
    seen.remember([completed])
    assert not seen.is_new(running)  # read before the newer state was announced: announcing it now would mislead
    seen.remember([running])
    assert not seen.is_new(completed)  # remembering an older state does not forget the newer one
    seen.forget(running["_id"])  # its document was deleted: a document made anew with its id starts over
    assert seen.is_new(running)
