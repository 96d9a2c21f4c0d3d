"""Which events a subscription receives: type globs, experiments and labels. Plain functions over plain data."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from prodflow_core.events import CloudEvent


@dataclass(frozen=True)
class Filter:
    """A subscription's filter. Empty ``experiments`` means every experiment (admins only); empty ``labels`` every
    label. An event without an experiment reaches every subscription, as the gateway's event stream shows it to
    every caller."""

    event_types: tuple[str, ...]
    experiments: frozenset[str]
    labels: frozenset[str]

    def matches(self, event: CloudEvent) -> bool:
        """True if ``event`` is one the subscription asked for."""
        if not any(fnmatch.fnmatchcase(event.type, pattern) for pattern in self.event_types):
            return False
        if self.experiments and event.experiment is not None and event.experiment not in self.experiments:
            return False
        if self.labels:
            label = event.data.get("label")
            return isinstance(label, str) and label in self.labels
        return True


def make_filter(event_types: list[str], experiments: list[str], labels: list[str]) -> Filter:
    """The filter of a subscription row's fields."""
    return Filter(tuple(event_types), frozenset(experiments), frozenset(labels))
