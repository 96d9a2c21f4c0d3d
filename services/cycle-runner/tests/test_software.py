"""Environment plans: pins, checkouts, sharing and the key that names a shared environment."""

from __future__ import annotations

from pathlib import Path

from prodflow_cycle_runner.software import EnvPlan, env_path, is_complete, plan_env

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
