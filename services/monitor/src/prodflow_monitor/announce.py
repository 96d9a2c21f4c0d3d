"""Which ``job.*`` events a changed job document announces, grouped into one event per label and type.

Events are derived from the ``_changes`` feed (not from the cycle that wrote the change), so a monitor that
dies between writing documents and publishing still announces them after its restart: the feed's checkpoint
only moves after the events are stored. Event ids are derived from their content, so a batch handled twice
publishes the same ids, which the event store ignores. While the feed is behind other labels' documents, its
lookahead (``prodflow_monitor.lookahead``) announces a small label's states first; the feed then skips them.
After a restart the feed announces them again, grouped as its batches group them: the same states, under other
ids when the groups differ (every consumer handles an event twice anyway).
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prodflow_core.events import EVENT_ID_PREFIX, CloudEvent, make_event
from prodflow_core.jobdocs import COMPLETED, FAILED, RUNNING

from prodflow_monitor.reconcile import is_retry

SOURCE = "/services/monitor"
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def stable_event_id(*parts: Any) -> str:
    """An event id (``evt-`` and 26 Crockford base32 digits) that depends only on ``parts``."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, separators=(",", ":")).encode()).digest()
    value = int.from_bytes(digest[:17], "big") >> 6  # 130 bits = 26 base32 digits
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return EVENT_ID_PREFIX + "".join(reversed(chars))


def announced_types(doc: Mapping[str, Any]) -> list[str]:
    """The short event types the current state of a job document announces."""
    status = doc.get("status")
    if status == RUNNING:
        return ["job.running"]
    if status == COMPLETED:
        return ["job.completed", "output.registered"] if doc.get("outputs") else ["job.completed"]
    if status == FAILED:
        return ["job.failed"]
    if is_retry(doc):
        return ["job.retried"]
    return []


def _reason(doc: Mapping[str, Any]) -> str:
    history = doc.get("history") or []
    return str(history[-1].get("reason", "")) if history else ""


@dataclass
class _Group:
    experiment: str | None
    docs: list[Mapping[str, Any]] = field(default_factory=list)


def job_events(database: str, docs: Iterable[Mapping[str, Any]]) -> list[CloudEvent]:
    """One event per (type, label) for ``docs``: ``data`` lists the jobs (and their outputs or reasons)."""
    groups: dict[tuple[str, str], _Group] = defaultdict(lambda: _Group(None))
    for doc in docs:
        for short_type in announced_types(doc):
            group = groups[(short_type, str(doc.get("label")))]
            group.experiment = group.experiment or doc.get("experiment")
            group.docs.append(doc)
    events = []
    for (short_type, label), group in sorted(groups.items()):
        members = sorted(group.docs, key=lambda d: str(d["_id"]))
        keys = [(str(d["_id"]), len(d.get("history") or [])) for d in members]
        data: dict[str, Any] = {
            "label": label,
            "database": database,
            "job_ids": [key[0] for key in keys],
            "count": len(keys),
        }
        if short_type in {"job.running", "job.completed", "job.failed", "job.retried"}:
            data["status"] = members[0].get("status")
        if short_type in {"job.failed", "job.retried"}:
            data["reasons"] = {str(d["_id"]): _reason(d) for d in members}
            data["attempts"] = {str(d["_id"]): int(d.get("attempt", 1)) for d in members}
            data["sites"] = {str(d["_id"]): str(d.get("site") or "") for d in members}
        if short_type == "output.registered":
            data["outputs"] = [{"job_id": str(d["_id"]), **o} for d in members for o in d.get("outputs") or []]
        events.append(
            make_event(
                short_type,
                SOURCE,
                subject=keys[0][0] if len(keys) == 1 else label,
                experiment=group.experiment,
                data=data,
                event_id=stable_event_id(short_type, database, keys),
            )
        )
    return events


class SeenStates:
    """Bounded memory of the newest state (history length) of each job that this process announced.

    Two readers announce job states: the job feed and, while the feed is behind, its lookahead. A batch the feed
    read before the lookahead saw a newer state of one of its jobs must not announce the older one after it
    (``job.running`` after ``job.completed``): a state is new only if it is newer than every one announced.
    A job's history only grows; a job id used again after its document was deleted is :meth:`forget`-ten first.
    """

    def __init__(self, capacity: int = 200_000) -> None:
        self.capacity = capacity
        self._newest: OrderedDict[str, int] = OrderedDict()

    def is_new(self, doc: Mapping[str, Any]) -> bool:
        """True if this state of the job is newer than any this process announced."""
        return len(doc.get("history") or []) > self._newest.get(str(doc.get("_id")), -1)

    def remember(self, docs: Iterable[Mapping[str, Any]]) -> None:
        """Note these states as announced (after their events were stored)."""
        for doc in docs:
            job_id, state = str(doc.get("_id")), len(doc.get("history") or [])
            self._newest[job_id] = max(state, self._newest.get(job_id, -1))
            self._newest.move_to_end(job_id)
        while len(self._newest) > self.capacity:
            self._newest.popitem(last=False)

    def forget(self, job_id: str) -> None:
        """Forget the job (its document was deleted: a new one with its id starts a new history)."""
        self._newest.pop(job_id, None)


def label_completed_event(
    database: str, label: str, experiment: str | None, counts: Mapping[str, int], generation: int
) -> CloudEvent:
    """``label.completed`` for ``label``; its id is fixed by (database, label, generation)."""
    return make_event(
        "label.completed",
        SOURCE,
        subject=label,
        experiment=experiment,
        data={"label": label, "database": database, "counts": dict(counts)},
        event_id=stable_event_id("label.completed", database, label, generation),
    )
