"""The cycle's ``config.json`` in legend-prodenv's shape: building it, patching it, validating it.

``$_`` in a path stands for the folder that holds config.json. Existing dataflows read the file unchanged.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from prodflow_cycle_runner.confinement import SHELL_META, UnsafeInput, check_name, check_words, inside

CYCLE_VAR = "$_"
PATH_LAYOUT: dict[str, str] = {
    "workflow": "$_/workflow",
    "metadata": "$_/inputs",
    "config": "$_/inputs/dataprod/config",
    "tier": "$_/generated/tier",
    "tier_raw": "$_/generated/tier/raw",
    "tier_dsp": "$_/generated/tier/dsp",
    "tier_hit": "$_/generated/tier/hit",
    "par": "$_/generated/par",
    "plt": "$_/generated/plt",
    "log": "$_/generated/log",
    "tmp_log": "$_/generated/tmp/log",
    "src": "$_/software/python/src",
    "install": "$_/software/python/install",
    "cache": "$_/software/python/cache",
}
TREE = (
    "workflow",
    "inputs",
    "generated/log",
    "generated/par",
    "generated/plt",
    "generated/tier",
    "generated/tmp",
    "software",
)


def default_config(setup: str, pkg_versions: dict[str, str], execenv: dict[str, str] | None = None) -> dict[str, Any]:
    """A new cycle's config.json with the standard layout."""
    return {
        "setups": {
            setup: {
                "paths": dict(PATH_LAYOUT),
                "execenv": {"cmd": "", "arg": "", **(execenv or {})},
                "pkg_versions": dict(pkg_versions),
            }
        }
    }


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch: objects merge, ``null`` removes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def setup_of(config: dict[str, Any], name: str | None = None) -> tuple[str, dict[str, Any]]:
    """The named setup (default: the first) of a config."""
    setups: dict[str, Any] = config["setups"]
    key = name or next(iter(setups))
    return key, setups[key]


SERVICE_LINKS = frozenset({"install"})
"""Paths the service may make a link out of the cycle (to a shared environment); checked as written."""


def resolve_path(value: str, cycle_dir: Path, field: str, *, follow_links: bool = True) -> Path:
    """A config path with ``$_`` replaced by the cycle folder; must stay inside it."""
    if value != CYCLE_VAR and not value.startswith(CYCLE_VAR + "/"):
        raise UnsafeInput(field, "must start with '$_/' (the cycle folder)")
    rest = value[len(CYCLE_VAR) :].lstrip("/")
    if any(c in SHELL_META for c in rest) or " " in rest:
        raise UnsafeInput(field, "holds characters that are not allowed in a path")
    return inside(cycle_dir, rest, field, follow_links=follow_links) if rest else cycle_dir.resolve()


def paths_of(config: dict[str, Any], cycle_dir: Path, setup: str | None = None) -> dict[str, Path]:
    """Every path of a setup, resolved against the cycle folder."""
    name, body = setup_of(config, setup)
    return {
        k: resolve_path(v, cycle_dir, f"setups.{name}.paths.{k}", follow_links=k not in SERVICE_LINKS)
        for k, v in body.get("paths", {}).items()
    }


def check_requirement(key: str, value: str, field: str) -> Requirement:
    """A pinned package (``pygama==2.6.2``): a PEP 508 requirement for the package its key names, no URL."""
    if not isinstance(value, str) or value.strip() != value or value.startswith("-"):
        raise UnsafeInput(field, "must be a requirement such as 'pygama==2.6.2'")
    try:
        req = Requirement(value)
    except InvalidRequirement as exc:
        raise UnsafeInput(field, f"not a requirement: {exc}") from exc
    if req.url:
        raise UnsafeInput(field, "URL requirements are not allowed; check the repository out instead")
    if canonicalize_name(req.name) != canonicalize_name(key):
        raise UnsafeInput(field, f"names {req.name!r}, not {key!r}")
    return req


def validate(config: Any, cycle_dir: Path) -> list[UnsafeInput]:
    """Every problem of a config.json (empty list: valid)."""
    problems: list[UnsafeInput] = []
    if not isinstance(config, dict) or not isinstance(config.get("setups"), dict) or not config["setups"]:
        return [UnsafeInput("setups", "config.json needs a non-empty 'setups' object")]
    for name, body in config["setups"].items():
        problems.extend(_validate_setup(str(name), body, cycle_dir))
    return problems


def _validate_setup(name: str, body: Any, cycle_dir: Path) -> list[UnsafeInput]:
    where = f"setups.{name}"
    problems: list[UnsafeInput] = []
    _collect(problems, check_name, name, where)
    if not isinstance(body, dict):
        return [*problems, UnsafeInput(where, "must be an object")]
    for key, value in _mapping(body, "paths", where, problems).items():
        _collect(problems, _check_path, key, value, cycle_dir, where)
    for key, value in _mapping(body, "execenv", where, problems).items():
        _collect(problems, _check_execenv, key, value, where)
    for key, value in _mapping(body, "pkg_versions", where, problems).items():
        _collect(problems, check_requirement, key, value, f"{where}.pkg_versions.{key}")
    return problems


def _collect(problems: list[UnsafeInput], check: Callable[..., object], *args: Any) -> None:
    try:
        check(*args)
    except UnsafeInput as exc:
        problems.append(exc)


def _mapping(body: dict[str, Any], key: str, where: str, problems: list[UnsafeInput]) -> dict[str, Any]:
    value = body.get(key, {})
    if not isinstance(value, dict):
        problems.append(UnsafeInput(f"{where}.{key}", "must be an object"))
        return {}
    return value


def _check_path(key: str, value: Any, cycle_dir: Path, where: str) -> None:
    field = f"{where}.paths.{key}"
    if not isinstance(value, str):
        raise UnsafeInput(field, "must be a string")
    resolve_path(value, cycle_dir, field, follow_links=key not in SERVICE_LINKS)


def _check_execenv(key: str, value: Any, where: str) -> None:
    field = f"{where}.execenv.{key}"
    if key not in {"cmd", "arg"}:
        raise UnsafeInput(field, "unknown execenv key (cmd, arg)")
    if not isinstance(value, str):
        raise UnsafeInput(field, "must be a string")
    check_words(value, field)


def execenv_prefix(setup: dict[str, Any]) -> list[str]:
    """The container prefix (``execenv.cmd`` then ``execenv.arg``) as argument words; empty when unset."""
    execenv = setup.get("execenv", {})
    return [*check_words(execenv.get("cmd", ""), "execenv.cmd"), *check_words(execenv.get("arg", ""), "execenv.arg")]


def read(cycle_dir: Path) -> dict[str, Any]:
    """The cycle's config.json."""
    doc: dict[str, Any] = json.loads((cycle_dir / "config.json").read_text())
    return doc


def write(cycle_dir: Path, config: dict[str, Any]) -> None:
    """Write config.json atomically (a reader never sees half a file)."""
    tmp = cycle_dir / ".config.json.tmp"
    tmp.write_text(json.dumps(config, indent=2) + "\n")
    tmp.replace(cycle_dir / "config.json")
