"""The .exactly format."""

from __future__ import annotations

import pytest
from prodflow_submitter.exactly import ExactlyError, PassEntries, merge, parse, render


def test_render_sorts_by_module_run_pass_and_lists_each_once() -> None:
    text = render([("ScintFit_2p2Tl208", 300001, 1), ("ScintFit_2p2Tl208", 300000, 1), ("Alpha", 9, 2),
                   ("ScintFit_2p2Tl208", 300000, 1)])  # fmt: skip
    assert text == "Alpha 9 2\nScintFit_2p2Tl208 300000 1\nScintFit_2p2Tl208 300001 1\n"


def test_parse_round_trip_and_errors() -> None:
    text = "A 1 1\n\nB 2 3\n"
    assert parse(text) == {("A", 1, 1), ("B", 2, 3)}
    with pytest.raises(ExactlyError, match="line 1"):
        parse("module run pass\n")


def test_merge_appends_like_production_submit_o() -> None:
    assert merge("B 2 1\nA 1 1\n", [("A", 1, 1), ("A", 0, 2)]) == "A 0 2\nA 1 1\nB 2 1\n"


def test_empty() -> None:
    assert render([]) == "" and parse("") == set()


def test_a_pass_entries_gives_what_rendering_its_jobs_entries_would() -> None:
    entries = PassEntries(3)
    jobs = [("B", 7), ("B", 7), ("B", 2), ("A", 9), ("B", 7), ("A", 1)]  # chunks of a run; a module twice
    for module, run in jobs:
        entries.add(module, run)
    text = "".join(entries.lines())
    assert text == render((module, run, 3) for module, run in jobs) == "A 1 3\nA 9 3\nB 2 3\nB 7 3\n"
    assert list(entries) == [("A", 1, 3), ("A", 9, 3), ("B", 2, 3), ("B", 7, 3)] and len(entries) == 4
    assert ("B", 7, 3) in entries and ("B", 7, 2) not in entries and ("C", 7, 3) not in entries
    entries.add("A", 5)  # added after a read: read again in order
    assert [run for module, run, _ in entries if module == "A"] == [1, 5, 9]
