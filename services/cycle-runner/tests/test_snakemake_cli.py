"""The Snakemake command line: whitelisted options only."""

from __future__ import annotations

from pathlib import Path

import pytest
from prodflow_cycle_runner.confinement import UnsafeInput
from prodflow_cycle_runner.snakemake_cli import Invocation, argv, option_args, unlock_argv

SNAKEMAKE = Path("/env/bin/snakemake")


def test_local_run() -> None:
    inv = Invocation(["all-l200-p03-hit.gen"], 2, "local", ["keep-going", "--rerun-incomplete", "latency-wait=30"])
    args = argv(SNAKEMAKE, inv, events_path=Path("/c/ev.jsonl"))
    assert args[:7] == [
        "/env/bin/snakemake",
        "--snakefile",
        "workflow/Snakefile",
        "--configfile",
        "config.json",
        "--nocolor",
        "--cores",
    ]
    assert "--executor" not in args
    assert args[args.index("--logger") : args.index("--logger") + 4] == [
        "--logger",
        "prodflow",
        "--logger-prodflow-events",
        "/c/ev.jsonl",
    ]
    assert args[-2:] == ["--", "all-l200-p03-hit.gen"]
    assert {"--keep-going", "--rerun-incomplete", "--latency-wait", "30"} <= set(args)


def test_slurm_run_with_prefix() -> None:
    inv = Invocation(["a.gen"], 8, "slurm", ["default-resources=slurm_partition=debug,runtime=10"])
    args = argv(SNAKEMAKE, inv, prefix=["apptainer", "run", "img.sif"])
    assert args[:3] == ["apptainer", "run", "img.sif"]
    assert args[args.index("--executor") + 1] == "slurm"
    assert args[args.index("--jobs") + 1] == "8"
    assert args[args.index("--default-resources") + 1 : args.index("--default-resources") + 3] == [
        "slurm_partition=debug",
        "runtime=10",
    ]


@pytest.mark.parametrize(
    "option",
    [
        "snakefile=/tmp/evil",
        "directory=/",
        "config=x=1",
        "delete-all-output",
        "latency-wait=-1",
        "latency-wait=abc",
        "forcerun=a;b",
        "rerun-triggers=evil",
        "default-resources=x=$(id)",
        "wrapper-prefix=https://evil",
        "cores=2",
        "slurm-jobname-prefix=other",
        "seconds-between-status-checks=0",
    ],
)
def test_refused_options(option: str) -> None:
    with pytest.raises(UnsafeInput, match=r"options\.0"):
        option_args([option])


def test_rule_lists() -> None:
    assert option_args(["forcerun=build_dsp,par_hit", "rerun-triggers=mtime,params"]) == [
        "--forcerun",
        "build_dsp",
        "par_hit",
        "--rerun-triggers",
        "mtime",
        "params",
    ]


def test_unknown_executor() -> None:
    with pytest.raises(UnsafeInput, match="executor"):
        argv(SNAKEMAKE, Invocation(["a"], 1, "kubernetes", []))


def test_unlock() -> None:
    assert unlock_argv(SNAKEMAKE)[-1] == "--unlock"
