"""Creating a cycle: its folder tree, config.json and the checkouts of its repositories."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prodflow_cycle_runner import config_json
from prodflow_cycle_runner.checkout import Checkout, checkout, git_env
from prodflow_cycle_runner.confinement import UnsafeInput, check_git_url, check_name, check_ref
from prodflow_cycle_runner.schemas import CycleCreate
from prodflow_cycle_runner.settings import CycleRunnerSettings


class CycleExists(RuntimeError):
    """A cycle (or another folder) already has that name."""


@dataclass(frozen=True)
class NewCycle:
    """A created cycle on disk."""

    path: Path
    config: dict[str, Any]
    checkouts: dict[str, Checkout]


def check_request(body: CycleCreate, settings: CycleRunnerSettings) -> list[UnsafeInput]:
    """Every unsafe value of a creation request (empty: fine)."""
    schemes = set(settings.git_protocols.split(":"))
    checks: list[tuple[Any, ...]] = [
        (check_name, body.name, "name"),
        (check_name, body.setup, "setup"),
        (check_name, body.experiment, "experiment"),
        (check_git_url, body.dataflow.url, schemes, "dataflow.url"),
        (check_ref, body.dataflow.ref, "dataflow.ref"),
        (check_git_url, body.metadata.url, schemes, "metadata.url"),
        (check_ref, body.metadata.ref, "metadata.ref"),
    ]
    for i, repo in enumerate(body.software):
        checks += [
            (check_name, repo.name, f"software.{i}.name"),
            (check_git_url, repo.url, schemes, f"software.{i}.url"),
            (check_ref, repo.ref, f"software.{i}.ref"),
        ]
    problems: list[UnsafeInput] = []
    for check, *args in checks:
        try:
            check(*args)
        except UnsafeInput as exc:
            problems.append(exc)
    return problems


def initial_config(body: CycleCreate, settings: CycleRunnerSettings) -> dict[str, Any]:
    """The new cycle's config.json."""
    pins = body.pkg_versions if body.pkg_versions is not None else settings.default_pkg_versions
    return config_json.default_config(body.setup, pins, body.execenv.model_dump())


async def create(body: CycleCreate, settings: CycleRunnerSettings) -> NewCycle:
    """Make the cycle's tree, write config.json and check out its repositories at their refs.

    On any failure the half-made folder is removed, so a retry starts clean.
    """
    root = settings.root()
    cycle_dir = root / body.name
    config = initial_config(body, settings)
    root.mkdir(parents=True, exist_ok=True)
    try:
        cycle_dir.mkdir()
    except FileExistsError as exc:
        raise CycleExists(body.name) from exc
    try:
        return await _populate(body, settings, cycle_dir, config)
    except BaseException:
        shutil.rmtree(cycle_dir, ignore_errors=True)
        raise


async def _populate(
    body: CycleCreate, settings: CycleRunnerSettings, cycle_dir: Path, config: dict[str, Any]
) -> NewCycle:
    for sub in config_json.TREE:
        (cycle_dir / sub).mkdir(parents=True, exist_ok=True)
    config_json.write(cycle_dir, config)
    paths = config_json.paths_of(config, cycle_dir)
    env = git_env(settings.git_protocols)
    repos = {
        "dataflow": (body.dataflow.url, body.dataflow.ref, paths["workflow"]),
        "metadata": (body.metadata.url, body.metadata.ref, paths["metadata"]),
        **{f"software/{r.name}": (r.url, r.ref, paths["src"] / r.name) for r in body.software},
    }
    checkouts = {
        name: await checkout(settings.git, url, ref, dest, env, cycle_dir) for name, (url, ref, dest) in repos.items()
    }
    for sub in ("generated/tier", "generated/par", "generated/plt", "generated/log", "generated/tmp/log"):
        (cycle_dir / sub).mkdir(parents=True, exist_ok=True)
    return NewCycle(cycle_dir, config, checkouts)


def software_sources(checkouts: dict[str, Any], cycle_dir: Path) -> dict[str, Path]:
    """Package name → checkout folder of the cycle's software repositories."""
    return {
        name.removeprefix("software/"): (cycle_dir / info["path"]).resolve()
        for name, info in checkouts.items()
        if name.startswith("software/")
    }
