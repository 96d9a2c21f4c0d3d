"""The request state machine."""

from __future__ import annotations

import pytest
from prodflow_request_api import states


def test_formats_transitions() -> None:
    for open_state in (states.DRAFT, states.SUBMITTED, states.APPROVED):
        states.check_transition(open_state, states.CANCELLED)
    states.check_transition(states.SUBMITTED, states.APPROVED)
    states.check_transition(states.IN_PRODUCTION, states.FAILED)
    assert all(not states.TRANSITIONS[s] for s in (states.REJECTED, states.COMPLETED, states.FAILED, states.CANCELLED))


def test_illegal_transition_names_the_allowed_ones() -> None:
    with pytest.raises(states.IllegalTransition) as caught:
        states.check_transition(states.DRAFT, states.APPROVED)
    assert caught.value.allowed == ["submitted", "cancelled"]
    assert "allowed from draft: submitted, cancelled" in str(caught.value)
    with pytest.raises(states.IllegalTransition, match="none"):
        states.check_transition(states.COMPLETED, states.CANCELLED)


def test_labels_are_given_back_only_before_production() -> None:
    assert states.releases_label(states.SUBMITTED, states.REJECTED)
    assert states.releases_label(states.DRAFT, states.CANCELLED)
    assert not states.releases_label(states.APPROVED, states.CANCELLED)
