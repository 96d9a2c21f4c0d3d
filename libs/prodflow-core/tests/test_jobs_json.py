"""jobs.json format rules: event modes, job counts, canonical bytes."""

from __future__ import annotations

import json

import pytest
from prodflow_core.jobs_json import (
    AmbiguousEventMode,
    EventMode,
    count_jobs,
    dumps,
    event_mode,
    module_job_count,
)

FORMATS_EXAMPLE = {
    "rat_v": "7.0.15",
    "modules": [
        {"module": "TeLoadedBipo212", "t_run": 365, "t_format": "day", "n_runs": 565},
        {"module": "WaterPmt_Betagammas", "n_ev": 985000000, "ev_per_run": 290000, "template": {"radius": 7250},
         "label": "WaterData_paper"},
        {"module": "WaterBi214Run", "n_runs": 1, "run_numbers": [100151, 100152], "priority": 100},
        {"module": "WaterN16sourceRun", "n_ev": 210000, "ev_per_run": 35000, "run_numbers": [100151, 100152]},
    ],
}  # fmt: skip


def test_event_modes_follow_the_fields() -> None:
    modes = [event_mode(m) for m in FORMATS_EXAMPLE["modules"]]  # type: ignore[attr-defined]
    assert modes == [EventMode.BY_TIME, EventMode.BY_EVENTS, EventMode.RUN_BY_RUN, EventMode.RUN_BY_RUN_EVENTS]


def test_count_of_the_formats_example() -> None:
    # 565 by time + ceil(985e6 / 290e3) = 3397 by events + 2 runs x 1 + 2 runs x ceil(210000 / 35000) = 12
    assert count_jobs(FORMATS_EXAMPLE) == 565 + 3397 + 2 + 12


def test_run_list_given_at_submission() -> None:
    entry = {"module": "WaterBi214Run", "n_runs": 2}
    assert event_mode(entry, has_run_list=True) is EventMode.RUN_BY_RUN
    assert module_job_count(entry, run_list=[1, 2, 3]) == 6
    with pytest.raises(AmbiguousEventMode):
        event_mode(entry)


@pytest.mark.parametrize(
    "entry",
    [
        {"module": "M", "t_run": 1, "n_ev": 5},
        {"module": "M", "t_run": 1, "run_numbers": [1]},
        {"module": "M"},
    ],
)
def test_ambiguous_entries_are_refused(entry: dict[str, object]) -> None:
    with pytest.raises(AmbiguousEventMode):
        event_mode(entry)


def test_dumps_is_canonical() -> None:
    a = {"b": 1, "a": {"z": [3, 1], "y": "é"}}
    b = {"a": {"y": "é", "z": [3, 1]}, "b": 1}
    assert dumps(a) == dumps(b) == '{"a":{"y":"é","z":[3,1]},"b":1}\n'.encode()
    assert json.loads(dumps(a)) == a
