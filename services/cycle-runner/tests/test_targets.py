"""LEGEND targets and file names."""

from __future__ import annotations

from prodflow_cycle_runner.targets import FileKey, Selection, parse_file_name, parse_target


def test_full_target() -> None:
    target = parse_target("all-l200-p03-r001-phy-dsp.gen")
    assert target is not None
    assert target.selection == "all"
    assert target.tier == "dsp"
    assert target.keys == Selection(experiment="l200", period="p03", run="r001", datatype="phy")
    assert target.label == "all-l200-p03-r001-phy"


def test_missing_trailing_parts_mean_all() -> None:
    target = parse_target("all-l200-p03-hit.gen")
    assert target is not None
    assert target.keys.as_dict() == {"experiment": "l200", "period": "p03"}
    assert target.tier == "hit"


def test_target_with_timestamp() -> None:
    target = parse_target("sel-l200-p03-r001-cal-20230401T000000Z-raw.gen")
    assert target is not None
    assert target.keys.timestamp == "20230401T000000Z"


def test_not_a_production_target() -> None:
    for text in ("build_dsp", "all.gen", "all-dsp.gen", "foo-l200-p03-dsp.gen", "all-l200-p03-dsp.lh5"):
        assert parse_target(text) is None


def test_file_names() -> None:
    key = parse_file_name("l200-p03-r001-phy-20230408T010000Z-tier_dsp.lh5")
    assert key == FileKey("l200", "p03", "r001", "phy", "20230408T010000Z", "tier", "dsp")
    par = parse_file_name("l200-p03-r001-cal-20230408T000000Z-par_hit.json")
    assert par is not None
    assert (par.kind, par.tier) == ("par", "hit")
    assert parse_file_name("notes.txt") is None


def test_selection_matches() -> None:
    key = FileKey("l200", "p03", "r001", "phy", "20230408T010000Z", "tier", "dsp")
    assert Selection().matches(key)
    assert Selection(period="p03", run="r001").matches(key)
    assert not Selection(run="r000").matches(key)
