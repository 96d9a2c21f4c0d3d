"""The state machine of a production request (FORMATS.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

DRAFT: Final = "draft"
SUBMITTED: Final = "submitted"
APPROVED: Final = "approved"
REJECTED: Final = "rejected"
IN_PRODUCTION: Final = "submitted-to-production"
COMPLETED: Final = "completed"
FAILED: Final = "failed"
CANCELLED: Final = "cancelled"

STATES: Final = (DRAFT, SUBMITTED, APPROVED, REJECTED, IN_PRODUCTION, COMPLETED, FAILED, CANCELLED)

TRANSITIONS: Final[Mapping[str, tuple[str, ...]]] = {
    DRAFT: (SUBMITTED, CANCELLED),
    SUBMITTED: (APPROVED, REJECTED, CANCELLED),
    APPROVED: (IN_PRODUCTION, CANCELLED),
    IN_PRODUCTION: (COMPLETED, FAILED),
    REJECTED: (),
    COMPLETED: (),
    FAILED: (),
    CANCELLED: (),
}
"""Allowed moves. ``submitted-to-production``, ``completed`` and ``failed`` follow the submitter's and monitor's
events; the others are asked for over the API."""

LABEL_RELEASED: Final = frozenset({(SUBMITTED, REJECTED), (DRAFT, CANCELLED), (SUBMITTED, CANCELLED)})
"""Moves after which the request gives its label back: no job can carry it, so another request may use it."""


class IllegalTransition(Exception):
    """A state change the machine does not allow from the current state."""

    def __init__(self, current: str, wanted: str) -> None:
        self.current = current
        self.wanted = wanted
        self.allowed = list(TRANSITIONS[current])
        allowed = ", ".join(self.allowed) or "none (final state)"
        super().__init__(f"a {current} request cannot become {wanted}; allowed from {current}: {allowed}")


def check_transition(current: str, wanted: str) -> None:
    """Raise :class:`IllegalTransition` unless ``current → wanted`` is allowed."""
    if wanted not in TRANSITIONS[current]:
        raise IllegalTransition(current, wanted)


def releases_label(current: str, wanted: str) -> bool:
    """True if the move frees the request's label for other requests."""
    return (current, wanted) in LABEL_RELEASED
