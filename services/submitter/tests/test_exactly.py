"""The .exactly format."""

from __future__ import annotations

import pytest
from prodflow_submitter.exactly import ExactlyError, merge, parse, render


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
