"""Reprocessing plans: what goes when a tier of a selection is invalidated."""

from __future__ import annotations

from pathlib import Path

import pytest
from prodflow_cycle_runner import config_json, invalidation
from prodflow_cycle_runner.targets import Selection

RUNS = {"r000": ["20230401T000000Z"], "r001": ["20230408T000000Z"]}


def _tree(cycle: Path) -> dict[str, Path]:
    """A cycle with raw, dsp and hit files, hit pars and .gen markers for two runs."""
    config = config_json.default_config("l200", {})
    config_json.write(cycle, config)
    paths = config_json.paths_of(config, cycle)
    for run, stamps in RUNS.items():
        for ts in stamps:
            for datatype in ("cal", "phy"):
                name = f"l200-p03-{run}-{datatype}-{ts}"
                for tier in ("raw", "dsp", "hit"):
                    f = paths[f"tier_{tier}"] / datatype / "p03" / run / f"{name}-tier_{tier}.lh5"
                    f.parent.mkdir(parents=True, exist_ok=True)
                    f.write_bytes(b"x" * 10)
            for tier in ("dsp", "hit"):
                par = paths["par"] / tier / "cal" / "p03" / run / f"l200-p03-{run}-cal-{ts}-par_{tier}.json"
                par.parent.mkdir(parents=True, exist_ok=True)
                par.write_text("{}")
    for marker in (
        "all-l200-p03-hit.gen",
        "all-l200-p03-r000-raw.gen",
        "all-l200-p03-r001-dsp.gen",
        "all-l200-p03-r000-hit.gen",
    ):
        (cycle / marker).write_text("")
    return paths


def test_plan_for_one_run_dsp(tmp_path: Path) -> None:
    paths = _tree(tmp_path)
    plan = invalidation.plan(paths, tmp_path, "dsp", Selection(period="p03", run="r001"))
    names = sorted(d.path.name for d in plan.files)
    assert plan.tiers == ["dsp", "hit"]
    assert names == sorted(
        [
            "l200-p03-r001-cal-20230408T000000Z-tier_dsp.lh5",
            "l200-p03-r001-phy-20230408T000000Z-tier_dsp.lh5",
            "l200-p03-r001-cal-20230408T000000Z-tier_hit.lh5",
            "l200-p03-r001-phy-20230408T000000Z-tier_hit.lh5",
            "l200-p03-r001-cal-20230408T000000Z-par_hit.json",
            "all-l200-p03-hit.gen",
            "all-l200-p03-r001-dsp.gen",
        ]
    )
    assert plan.size == 4 * 10 + 2 + 0


def test_apply_moves_to_trash_and_keeps_the_rest(tmp_path: Path) -> None:
    paths = _tree(tmp_path)
    plan = invalidation.plan(paths, tmp_path, "hit", Selection(run="r000"))
    trash = tmp_path / "generated" / "tmp" / "trash" / "inv-1"
    assert invalidation.apply(plan, tmp_path, trash) == len(plan.files)
    assert not any(d.path.exists() for d in plan.files)
    moved = trash / "generated" / "tier" / "hit" / "cal" / "p03" / "r000"
    assert (moved / "l200-p03-r000-cal-20230401T000000Z-tier_hit.lh5").exists()
    assert (paths["tier_dsp"] / "cal" / "p03" / "r000" / "l200-p03-r000-cal-20230401T000000Z-tier_dsp.lh5").exists()
    assert (tmp_path / "all-l200-p03-r000-raw.gen").exists()
    assert invalidation.plan(paths, tmp_path, "hit", Selection(run="r000")).files == []


def test_apply_deletes_without_trash(tmp_path: Path) -> None:
    paths = _tree(tmp_path)
    plan = invalidation.plan(paths, tmp_path, "raw", Selection())
    assert invalidation.apply(plan, tmp_path, None) == len(plan.files) == 12 + 4 + 4
    assert invalidation.plan(paths, tmp_path, "raw", Selection()).files == []


def test_unknown_tier(tmp_path: Path) -> None:
    paths = _tree(tmp_path)
    with pytest.raises(ValueError, match="unknown tier"):
        invalidation.plan(paths, tmp_path, "evt", Selection())


def test_symlinked_file_is_unlinked_not_followed(tmp_path: Path) -> None:
    paths = _tree(tmp_path)
    outside = tmp_path.parent / f"{tmp_path.name}-outside.lh5"
    outside.write_text("precious")
    link = paths["tier_dsp"] / "cal" / "p03" / "r000" / "l200-p03-r000-cal-20230401T010000Z-tier_dsp.lh5"
    link.symlink_to(outside)
    plan = invalidation.plan(paths, tmp_path, "dsp", Selection(run="r000"))
    invalidation.apply(plan, tmp_path, None)
    assert not link.is_symlink()
    assert outside.read_text() == "precious"
