"""Environment plans: pins, checkouts, sharing and the key that names a shared environment."""

from __future__ import annotations

from pathlib import Path

import pytest
from prodflow_cycle_runner.bundled import LOGGER_PLUGIN_DIR
from prodflow_cycle_runner.software import EnvPlan, env_path, install, is_complete, plan_env

TOOLS = ["snakemake>=9,<10", "snakemake-executor-plugin-slurm>=1.0", "/srv/plugin"]
PINS = {"pygama": "pygama==2.6.2", "dspeed": "dspeed==2.4.3", "legend_pydataobj": "legend-pydataobj==2.0.3"}


def test_pins_only_is_shared() -> None:
    plan = plan_env(PINS, {}, python="3.11", extra=TOOLS, prefix=[])
    assert plan.shared
    assert plan.requirements == [*PINS.values(), *TOOLS]
    assert plan.pinned_names() == ["dspeed", "legend-pydataobj", "pygama"]
    assert env_path(plan, Path("/store"), Path("/cycle/install")) == Path("/store") / plan.key()


def test_checkouts_replace_their_pins_and_are_private(tmp_path: Path) -> None:
    src = {"pygama": tmp_path / "src" / "pygama"}
    plan = plan_env(PINS, src, python="3.11", extra=TOOLS, prefix=[])
    assert not plan.shared
    assert "pygama==2.6.2" not in plan.requirements
    assert plan.editable == [tmp_path / "src" / "pygama"]
    assert "pygama" in plan.pinned_names()
    assert env_path(plan, Path("/store"), Path("/cycle/install")) == Path("/cycle/install")


def test_key_depends_on_what_goes_in() -> None:
    base = plan_env(PINS, {}, python="3.11", extra=TOOLS, prefix=[])
    reordered = plan_env(dict(reversed(list(PINS.items()))), {}, python="3.11", extra=TOOLS, prefix=[])
    assert base.key() == reordered.key()
    assert base.key() != plan_env({**PINS, "pygama": "pygama==2.6.1"}, {}, python="3.11", extra=TOOLS, prefix=[]).key()
    assert base.key() != plan_env(PINS, {}, python="3.12", extra=TOOLS, prefix=[]).key()
    assert base.key() != plan_env(PINS, {}, python="3.11", extra=TOOLS, prefix=["apptainer", "run", "x.sif"]).key()
    assert len(base.key()) == 20


def test_incomplete_environment(tmp_path: Path) -> None:
    assert not is_complete(tmp_path)
    plan = EnvPlan("3.11", ["a==1"])
    assert plan.pinned_names() == ["a"]


@pytest.mark.integration
async def test_install_share_and_reinstall(tmp_path: Path) -> None:
    """A real ``uv venv`` + ``uv pip install`` of the logger plugin alone (its one dependency comes from uv's cache)."""
    plan = plan_env({}, {}, python="3.11", extra=[str(LOGGER_PLUGIN_DIR)], prefix=[])
    store, log = tmp_path / "store", tmp_path / "install.log"
    first_install, second_install = tmp_path / "c1" / "install", tmp_path / "c2" / "install"
    first = await install(plan, store=store, install_path=first_install, uv="uv", log_path=log, cwd=tmp_path)
    assert first["shared"] and Path(first["path"]) == store / plan.key()
    assert "snakemake-logger-plugin-prodflow" in first["packages"]
    assert first_install.resolve() == Path(first["path"])
    second = await install(plan, store=store, install_path=second_install, uv="uv", log_path=log, cwd=tmp_path)
    assert second["path"] == first["path"] and second["built_at"] == first["built_at"]  # reused, not rebuilt
    again = await install(plan, store=store, install_path=second_install, uv="uv", log_path=log, cwd=tmp_path,
                          reinstall=True)  # fmt: skip
    assert again["path"] != first["path"] and is_complete(Path(again["path"]))
    assert second_install.resolve() == Path(again["path"])
    assert first_install.resolve() == Path(first["path"]) and is_complete(Path(first["path"]))
    assert "reusing the environment" in log.read_text()
