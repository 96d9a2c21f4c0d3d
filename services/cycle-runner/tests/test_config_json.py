"""config.json: legend-prodenv's shape, merge patches and validation."""

from __future__ import annotations

from pathlib import Path

import pytest
from prodflow_cycle_runner import config_json
from prodflow_cycle_runner.confinement import UnsafeInput

PINS = {"pygama": "pygama==2.6.2", "dspeed": "dspeed==2.4.3", "legend-pydataobj": "legend-pydataobj==2.0.3"}


def test_default_config_has_prodenv_shape(tmp_path: Path) -> None:
    config = config_json.default_config("l200", PINS)
    setup = config["setups"]["l200"]
    assert setup["paths"]["tier_dsp"] == "$_/generated/tier/dsp"
    assert setup["paths"]["install"] == "$_/software/python/install"
    assert setup["execenv"] == {"cmd": "", "arg": ""}
    assert setup["pkg_versions"] == PINS
    assert config_json.validate(config, tmp_path) == []
    paths = config_json.paths_of(config, tmp_path)
    assert paths["tier_hit"] == tmp_path.resolve() / "generated" / "tier" / "hit"


def test_write_and_read_round_trip(tmp_path: Path) -> None:
    config = config_json.default_config("l200", PINS)
    config_json.write(tmp_path, config)
    assert config_json.read(tmp_path) == config
    assert not (tmp_path / ".config.json.tmp").exists()


def test_merge_patch_rfc7396() -> None:
    doc = {"a": {"b": 1, "c": 2}, "d": [1, 2]}
    assert config_json.merge_patch(doc, {"a": {"b": None, "e": 3}, "d": [3]}) == {"a": {"c": 2, "e": 3}, "d": [3]}
    assert doc == {"a": {"b": 1, "c": 2}, "d": [1, 2]}


def _fields(problems: list[UnsafeInput]) -> set[str]:
    return {p.field for p in problems}


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"paths": {"tier_dsp": "/etc"}}, "setups.l200.paths.tier_dsp"),
        ({"paths": {"tier_dsp": "$_/../../etc"}}, "setups.l200.paths.tier_dsp"),
        ({"paths": {"log": "$_/log;rm -rf ~"}}, "setups.l200.paths.log"),
        ({"paths": {"log": "$_/$(id)"}}, "setups.l200.paths.log"),
        ({"paths": {"log": 5}}, "setups.l200.paths.log"),
        ({"pkg_versions": {"pygama": "pygama @ https://evil.example/pygama.whl"}}, "setups.l200.pkg_versions.pygama"),
        ({"pkg_versions": {"pygama": "--index-url=https://evil"}}, "setups.l200.pkg_versions.pygama"),
        ({"pkg_versions": {"pygama": "dspeed==1.0"}}, "setups.l200.pkg_versions.pygama"),
        ({"pkg_versions": {"pygama": "pygama=2"}}, "setups.l200.pkg_versions.pygama"),
        ({"execenv": {"cmd": "sh -c 'id'"}}, "setups.l200.execenv.cmd"),
        ({"execenv": {"arg": "x;id"}}, "setups.l200.execenv.arg"),
        ({"execenv": {"LD_PRELOAD": "x"}}, "setups.l200.execenv.LD_PRELOAD"),
    ],
)
def test_validation_names_each_bad_field(tmp_path: Path, patch: dict[str, object], field: str) -> None:
    config = config_json.merge_patch(config_json.default_config("l200", PINS), {"setups": {"l200": patch}})
    assert field in _fields(config_json.validate(config, tmp_path))


def test_validation_refuses_symlinked_escape(tmp_path: Path) -> None:
    cycle = tmp_path / "cycle"
    (cycle / "generated").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (cycle / "generated" / "out").symlink_to(tmp_path / "elsewhere")
    config = config_json.merge_patch(
        config_json.default_config("l200", PINS), {"setups": {"l200": {"paths": {"tier": "$_/generated/out"}}}}
    )
    assert _fields(config_json.validate(config, cycle)) == {"setups.l200.paths.tier"}


def test_validation_of_structure(tmp_path: Path) -> None:
    assert _fields(config_json.validate({}, tmp_path)) == {"setups"}
    assert _fields(config_json.validate({"setups": {"../x": {}}}, tmp_path)) == {"setups.../x"}
    assert _fields(config_json.validate({"setups": {"l200": {"paths": []}}}, tmp_path)) == {"setups.l200.paths"}


def test_execenv_prefix() -> None:
    setup = {"execenv": {"cmd": "apptainer run", "arg": "/data/legend.sif"}}
    assert config_json.execenv_prefix(setup) == ["apptainer", "run", "/data/legend.sif"]
    assert config_json.execenv_prefix({}) == []
