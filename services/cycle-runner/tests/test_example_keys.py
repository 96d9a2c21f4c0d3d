"""The example dataflow's own key and target parsing (workflow/lib/keys.py), loaded as the Snakefile does."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

import pytest
from prodflow_cycle_runner.examples import EXAMPLE_DIR
from prodflow_cycle_runner.targets import parse_target


def _keys() -> ModuleType:
    spec = importlib.util.spec_from_file_location("example_keys", EXAMPLE_DIR / "dataflow" / "lib" / "keys.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


RUNINFO = {"p03": {"r000": {"cal": ["20230401T000000Z"], "phy": ["20230401T010000Z"]},
                   "r001": {"cal": ["20230408T000000Z"]}}}  # fmt: skip


def test_labels_select_like_the_service_parses_them() -> None:
    keys = _keys()
    all_keys = keys.keys_of(RUNINFO, "l200")
    assert [k.name for k in all_keys] == [
        "l200-p03-r000-cal-20230401T000000Z",
        "l200-p03-r000-phy-20230401T010000Z",
        "l200-p03-r001-cal-20230408T000000Z",
    ]
    for label, expected in [("all-l200", 3), ("all-l200-p03-r000", 2), ("all-l200-p03-r000-phy", 1),
                            ("all-l200-p04", 0)]:  # fmt: skip
        assert len(keys.select(all_keys, label)) == expected
        target = parse_target(f"{label}-dsp.gen")
        assert target is not None and target.label == label


def test_file_paths_follow_legend_names() -> None:
    keys = _keys()
    key = keys.FileKey("l200", "p03", "r001", "phy", "20230408T010000Z")
    paths = {"tier_dsp": "/c/generated/tier/dsp", "par": "/c/generated/par"}
    assert key.tier_path(paths, "dsp") == (
        "/c/generated/tier/dsp/phy/p03/r001/l200-p03-r001-phy-20230408T010000Z-tier_dsp.lh5"
    )
    assert key.par_path(paths, "hit").endswith("/par/hit/phy/p03/r001/l200-p03-r001-phy-20230408T010000Z-par_hit.json")


def test_substitute_and_bad_labels() -> None:
    keys = _keys()
    assert keys.substitute({"a": ["$_/x", 1]}, "/cycle") == {"a": ["/cycle/x", 1]}
    with pytest.raises(ValueError, match="not a production label"):
        keys.parse_label("everything")
