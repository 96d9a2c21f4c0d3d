"""Filling command templates."""

from __future__ import annotations

from pathlib import Path

from prodflow_core.command_template import fill
from prodflow_submitter.command_template import job_values

DOC = {"_id": "job:L:M:7:1:p2", "experiment": "snoplus", "label": "L", "module": "M", "run": 7, "chunk": 1, "pass": 2,
       "events": 1000, "seed": 42, "rat_v": "7.0.15", "ratdb_tag": None, "template": {"radius": 7250.5}}  # fmt: skip


def test_fill_uses_job_fields_template_values_and_quotes() -> None:
    values = job_values(DOC, {"t_run": None}, Path("/out dir/L"))
    command = fill("rat -s {seed} -r {run} -N {events} -x r={radius} -o {output_dir}/f_{pass}.root {ratdb_tag}", values)
    assert command == "rat -s 42 -r 7 -N 1000 -x r=7250.5 -o '/out dir/L'/f_2.root "


def test_by_time_values_come_from_the_module_entry() -> None:
    values = job_values({**DOC, "events": None}, {"t_run": 365.0, "t_format": "day"}, Path("/o"))
    assert fill("-T {t_run}{t_format} -N {events}", values) == "-T 365day -N "


def test_shell_metacharacters_in_values_are_quoted() -> None:
    values = job_values({**DOC, "template": {"radius": "1; rm -rf /"}}, {}, Path("/o"))
    assert fill("x {radius}", values) == "x '1; rm -rf /'"
