"""The cycle's own Python environment: ``uv venv`` + ``uv pip install`` of its pinned packages.

An environment holds the cycle's ``pkg_versions`` (or editable installs of its software checkouts), Snakemake 9,
snakemake-executor-plugin-slurm and prodflow's Snakemake logger plugin. Environments made only of pinned packages
are shared: they live in the environment store under the hash of everything that went into them, and the cycle's
``install`` path is a link to it, so a hundred cycles on the same pins cost one environment. A cycle with
software checkouts gets a private environment at its ``install`` path.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from prodflow_core.credentials import without_service_secrets
from prodflow_core.events import utc_now

from prodflow_cycle_runner.bundled import LOGGER_PLUGIN_DIR
from prodflow_cycle_runner.processes import output_of, run_logged

MARKER = "prodflow-env.json"
RECIPE = 4
"""Bumped when the way environments are built changes, so old ones are not reused."""
IMPORT_CHECK = """
import importlib, importlib.metadata as md, json, re, sys
wanted = set(json.loads(sys.argv[1]))
canon = lambda name: re.sub(r"[-_.]+", "-", name).lower()
modules = sorted({m for m, dists in md.packages_distributions().items()
                  if not m.startswith("_") and any(canon(d) in wanted for d in dists)})
for module in modules:
    importlib.import_module(module)
    print("imported", module, flush=True)
"""
"""Imports every module of the pinned packages once: proves the install works and fills compiled-code caches
(numba's JIT cache of dspeed's processors) before jobs run in parallel and race to write them."""
_locks: dict[str, asyncio.Lock] = {}


@dataclass(frozen=True)
class EnvPlan:
    """What goes into an environment."""

    python: str
    requirements: list[str]
    editable: list[Path] = field(default_factory=list)
    prefix: list[str] = field(default_factory=list)
    tools: list[str] = field(default_factory=list)

    def pinned_names(self) -> list[str]:
        """Canonical names of the pinned packages and checkouts (not of the tools prodflow adds)."""
        names = [canonicalize_name(Requirement(r).name) for r in self.requirements if not r.startswith(("/", "."))]
        tools = {canonicalize_name(Requirement(r).name) for r in self.tools}
        return sorted({*(n for n in names if n not in tools), *(canonicalize_name(p.name) for p in self.editable)})

    @property
    def shared(self) -> bool:
        """Environments without editable checkouts can be shared between cycles."""
        return not self.editable

    def key(self) -> str:
        """The hash that names a shared environment."""
        doc = {
            "recipe": RECIPE,
            "python": self.python,
            "requirements": sorted(self.requirements),
            "prefix": self.prefix,
            "plugin": plugin_digest(),
        }
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:20]


class InstallFailed(RuntimeError):
    """An installer step exited non-zero."""


def plugin_digest() -> str:
    """Hash of the logger plugin's sources (a changed plugin means a new environment)."""
    digest = hashlib.sha256()
    for path in sorted(LOGGER_PLUGIN_DIR.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(LOGGER_PLUGIN_DIR)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def plan_env(
    pkg_versions: dict[str, str],
    sources: dict[str, Path],
    *,
    python: str,
    extra: list[str],
    prefix: list[str],
) -> EnvPlan:
    """The environment of a cycle: pins for every package without a checkout, editable installs for the rest."""
    local = {canonicalize_name(name) for name in sources}
    pins = [spec for name, spec in pkg_versions.items() if canonicalize_name(name) not in local]
    tools = [spec for spec in extra if not spec.startswith(("/", "."))]
    return EnvPlan(python, [*pins, *extra], [sources[n] for n in sorted(sources)], prefix, tools)


def env_path(plan: EnvPlan, store: Path, install: Path) -> Path:
    """Where the environment of ``plan`` lives."""
    return store / plan.key() if plan.shared else install


def is_complete(env: Path) -> bool:
    """True if ``env`` was built to the end (its marker exists)."""
    return (env / MARKER).is_file()


def read_marker(env: Path) -> dict[str, Any]:
    """The record written when ``env`` was built."""
    doc: dict[str, Any] = json.loads((env / MARKER).read_text())
    return doc


async def install(
    plan: EnvPlan,
    *,
    store: Path,
    install_path: Path,
    uv: str,
    log_path: Path,
    cwd: Path,
    reinstall: bool = False,
) -> dict[str, Any]:
    """Build (or reuse) the environment of ``plan`` and point ``install_path`` at it; returns its record.

    A reinstall of a shared environment builds a new one beside it, so cycles still using the old one (maybe in
    the middle of a run) are not disturbed.
    """
    env = env_path(plan, store, install_path)
    if reinstall and plan.shared:
        env = env.with_name(f"{env.name}-r{time.strftime('%Y%m%dT%H%M%S')}")
    lock = _locks.setdefault(str(env), asyncio.Lock())
    async with lock, _file_lock(env.with_name(env.name + ".lock")):
        if reinstall or not is_complete(env):
            await _build(plan, env, uv, log_path, cwd)
        else:
            _log(log_path, f"reusing the environment {env} (built {read_marker(env)['built_at']})\n")
    if plan.shared:
        _link(install_path, env)
    record = read_marker(env)
    return {**record, "path": str(env), "shared": plan.shared}


async def _build(plan: EnvPlan, env: Path, uv: str, log_path: Path, cwd: Path) -> None:
    started = asyncio.get_running_loop().time()
    _remove(env)
    environ = {**without_service_secrets(os.environ), "NO_COLOR": "1", "UV_NO_PROGRESS": "1"}
    environ.pop("VIRTUAL_ENV", None)
    steps = [
        [*plan.prefix, uv, "venv", "--quiet", "--python", plan.python, str(env)],
        [
            *plan.prefix,
            uv,
            "pip",
            "install",
            # Bytecode now: a job's interpreter may not write it (read-only shared file systems,
            # PYTHONDONTWRITEBYTECODE), and then every job compiled dspeed and its imports again (~9 s of CPU).
            "--compile-bytecode",
            "--python",
            str(env / "bin" / "python"),
            *plan.requirements,
            *(arg for path in plan.editable for arg in ("--editable", str(path))),
        ],
    ]
    for argv in steps:
        code = await run_logged(argv, cwd=cwd, log_path=log_path, env=environ)
        if code != 0:
            raise InstallFailed(f"{' '.join(argv[:3])} exited with {code}")
    check = [*plan.prefix, str(env / "bin" / "python"), "-c", IMPORT_CHECK, json.dumps(plan.pinned_names())]
    if await run_logged(check, cwd=cwd, log_path=log_path, env=environ) != 0:
        raise InstallFailed("a pinned package does not import in the new environment")
    listing = await output_of(
        [*plan.prefix, uv, "pip", "list", "--format", "json", "--python", str(env / "bin" / "python")], env=environ
    )
    packages = {p["name"]: p["version"] for p in json.loads(listing)}
    record = {
        "key": plan.key(),
        "python": plan.python,
        "requirements": plan.requirements,
        "editable": [str(p) for p in plan.editable],
        "prefix": plan.prefix,
        "packages": packages,
        "built_at": utc_now(),
        "build_s": round(asyncio.get_running_loop().time() - started, 2),
    }
    (env / MARKER).write_text(json.dumps(record, indent=2) + "\n")
    _log(log_path, f"environment ready at {env} in {record['build_s']} s\n")


def _link(install_path: Path, env: Path) -> None:
    install_path.parent.mkdir(parents=True, exist_ok=True)
    if install_path.is_symlink() and install_path.resolve() == env.resolve():
        return
    _remove(install_path)
    tmp = install_path.with_name(install_path.name + ".new")
    _remove(tmp)
    tmp.symlink_to(env, target_is_directory=True)
    tmp.replace(install_path)


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


@contextlib.asynccontextmanager
async def _file_lock(path: Path) -> AsyncIterator[None]:
    """An exclusive lock between processes (two services or a benchmark sharing one store)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        await asyncio.to_thread(fcntl.flock, handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _log(log_path: Path, text: str) -> None:
    with log_path.open("a") as log:
        log.write(text)
