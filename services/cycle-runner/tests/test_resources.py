"""Default resources of a run: the workflow profile's, the cycle's Slurm partition and account, the run's own."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from prodflow_cycle_runner import slurm
from prodflow_cycle_runner.examples import EXAMPLE_DIR
from prodflow_cycle_runner.profile import profile_default_resources, workflow_profile
from prodflow_cycle_runner.snakemake_cli import Invocation, argv

SNAKEMAKE = Path("/env/bin/snakemake")


def _cycle(tmp_path: Path, profile: str, name: str = "config.yaml") -> Path:
    folder = tmp_path / "workflow" / "profiles" / "default"
    folder.mkdir(parents=True)
    (tmp_path / "workflow" / "Snakefile").write_text("")
    (folder / name).write_text(profile)
    return tmp_path


def test_mapping_and_list_forms(tmp_path: Path) -> None:
    mapping = _cycle(tmp_path / "a", "default-resources:\n  mem_mb: 800\n  runtime: 5\n  qos: '12'\n  x: null\n")
    assert profile_default_resources(mapping) == {"mem_mb": "800", "runtime": "5", "qos": "'12'"}
    listing = _cycle(tmp_path / "b", "default-resources:\n  - mem_mb=800\n  - slurm_partition=short\n")
    assert profile_default_resources(listing) == {"mem_mb": "800", "slurm_partition": "short"}
    assert profile_default_resources(_cycle(tmp_path / "c", "set-resources:\n  a:\n    mem_mb: 1\n")) == {}
    assert profile_default_resources(_cycle(tmp_path / "d", "- not: [a mapping\n")) == {}
    assert profile_default_resources(tmp_path / "none") == {}


def test_which_profile_file_snakemake_takes(tmp_path: Path) -> None:
    cycle = _cycle(tmp_path, "default-resources: {mem_mb: 1}\n")
    folder = cycle / "workflow" / "profiles" / "default"
    (folder / "profile.v9+.yaml").write_text("default-resources: {mem_mb: 9}\n")
    (folder / "profile.v10+.yaml").write_text("default-resources: {mem_mb: 10}\n")
    assert workflow_profile(cycle) == (folder / "profile.v9+.yaml").resolve()
    assert profile_default_resources(cycle) == {"mem_mb": "9"}
    (cycle / "profiles" / "default").mkdir(parents=True)  # the working folder's comes first, even empty
    assert workflow_profile(cycle) is None


def test_a_profile_linked_out_of_the_cycle_is_not_read(tmp_path: Path) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text("default-resources: {mem_mb: 1}\n")
    cycle = _cycle(tmp_path / "cycle", "")
    link = cycle / "workflow" / "profiles" / "default" / "config.yaml"
    link.unlink()
    link.symlink_to(outside)
    assert profile_default_resources(cycle) == {}


def test_the_examples_profile(tmp_path: Path) -> None:
    cycle = tmp_path / "cycle"
    shutil.copytree(EXAMPLE_DIR / "dataflow", cycle / "workflow")
    assert profile_default_resources(cycle) == {"runtime": "15", "mem_mb": "1000", "cpus_per_task": "1"}


def test_cycle_resources_and_executor_args() -> None:
    assert slurm.cycle_resources(None) == {}
    both = slurm.cycle_resources({"partition": "debug", "account": "legend"})
    assert both == {"slurm_partition": "'debug'", "slurm_account": "'legend'"}
    assert slurm.executor_args("run-1", {}) == ["--slurm-jobname-prefix", "run-1", "--slurm-no-account"]
    assert slurm.executor_args("run-1", both) == ["--slurm-jobname-prefix", "run-1"]


def test_one_merged_default_resources() -> None:
    inv = Invocation(["a.gen"], 2, "slurm", ["default-resources=mem_mb=2000", "keep-going"])
    args = argv(
        SNAKEMAKE,
        inv,
        profile_resources={"runtime": "15", "mem_mb": "1000"},
        cycle_resources={"slurm_partition": "'debug'"},
        executor_args=["--slurm-jobname-prefix", "run-1"],
    )
    assert args.count("--default-resources") == 1
    start = args.index("--default-resources")
    assert args[start + 1 : args.index("--")] == ["runtime=15", "mem_mb=2000", "slurm_partition='debug'"]
    assert args[args.index("--executor") : args.index("--executor") + 4] == [
        "--executor",
        "slurm",
        "--slurm-jobname-prefix",
        "run-1",
    ]
    assert "--keep-going" in args


@pytest.mark.parametrize("executor", ["local", "slurm"])
def test_the_profile_alone_is_left_to_snakemake(executor: str) -> None:
    args = argv(SNAKEMAKE, Invocation(["a.gen"], 1, executor, []), profile_resources={"mem_mb": "1"})
    assert "--default-resources" not in args
