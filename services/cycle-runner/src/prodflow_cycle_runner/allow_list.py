"""What a non-admin may ask a cycle to run: admins choose the code, managers choose among it.

A cycle runs code from its dataflow repository (the Snakefile), its software repositories and its pinned packages,
behind its ``execenv`` prefix. Whoever picks those picks what runs, so for a caller below ``admin``:

- repository URLs (dataflow, metadata, software) must start with one of ``CYCLE_RUNNER_REPOSITORIES`` (an admin-set
  list of URL prefixes; empty by default, so only admins create cycles until one is set);
- ``pkg_versions`` may pin only the packages of ``CYCLE_RUNNER_PINNABLE_PACKAGES`` (default: the service's own
  pins), by index version (URLs are refused for everyone: :func:`config_json.check_requirement`);
- ``execenv`` (the container prefix) is admin-only;
- a config.json patch may change only ``setups.<setup>.paths`` (confined to the cycle) and allowed pins.

Targets, ``cores`` (≤ ``CYCLE_RUNNER_MAX_CORES``), the executor (``local``/``slurm``) and Snakemake options (a fixed
list: :mod:`snakemake_cli`) are allow-listed for every caller.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from packaging.utils import canonicalize_name
from prodflow_core.identity import Identity
from prodflow_core.problems import FieldError, Problem

from prodflow_cycle_runner.schemas import CycleCreate
from prodflow_cycle_runner.settings import CycleRunnerSettings

RULE = "cycle-code-admin-chosen"


def creation_refusals(body: CycleCreate, settings: CycleRunnerSettings) -> list[FieldError]:
    """What a non-admin's creation request asks for beyond the allow-lists."""
    refused = [
        _field(field, f"{url!r} is not under an allowed repository prefix (CYCLE_RUNNER_REPOSITORIES)")
        for field, url in _repositories(body)
        if not any(url.startswith(prefix) for prefix in settings.repositories)
    ]
    if body.pkg_versions is not None:
        refused += _pin_refusals(body.pkg_versions, "pkg_versions", settings)
    if body.execenv.cmd or body.execenv.arg:
        refused.append(_field("execenv", "the container prefix is chosen by admins"))
    return refused


def patch_refusals(before: dict[str, Any], after: dict[str, Any], settings: CycleRunnerSettings) -> list[FieldError]:
    """What a non-admin's config.json patch changes beyond paths and allowed pins."""
    refused: list[FieldError] = []
    if {k: v for k, v in before.items() if k != "setups"} != {k: v for k, v in after.items() if k != "setups"}:
        refused.append(_field("config", "only setups.<setup>.paths and pinnable pkg_versions may change"))
    for setup in sorted(set(before.get("setups", {})) | set(after.get("setups", {}))):
        old, new = before.get("setups", {}).get(setup, {}), after.get("setups", {}).get(setup, {})
        for key in sorted(set(old) | set(new)):
            if key == "paths" or old.get(key) == new.get(key):
                continue
            if key != "pkg_versions":
                refused.append(_field(f"setups.{setup}.{key}", "chosen by admins"))
                continue
            changed = {n: v for n, v in new.get(key, {}).items() if old.get(key, {}).get(n) != v}
            removed = {n: "" for n in old.get(key, {}) if n not in new.get(key, {})}
            refused += _pin_refusals({**changed, **removed}, f"setups.{setup}.pkg_versions", settings)
    return refused


def require_admin_for(refusals: list[FieldError], identity: Identity) -> None:
    """A 403 problem naming the rule and each refused field, unless there are none or the caller is an admin."""
    if not refusals or identity.has_role("admin"):
        return
    raise Problem(
        403,
        "Forbidden",
        "only admins choose the code a cycle runs: " + "; ".join(f"{e.field}: {e.message}" for e in refusals),
        kind="forbidden",
        rule=RULE,
        required_role="admin",
        errors=refusals,
    )


def _repositories(body: CycleCreate) -> Iterator[tuple[str, str]]:
    yield "dataflow.url", body.dataflow.url
    yield "metadata.url", body.metadata.url
    for index, repo in enumerate(body.software):
        yield f"software.{index}.url", repo.url


def _pin_refusals(pins: dict[str, str], where: str, settings: CycleRunnerSettings) -> list[FieldError]:
    pinnable = {canonicalize_name(name) for name in settings.pinnable()}
    return [
        _field(f"{where}.{name}", f"{name!r} is not a pinnable package (CYCLE_RUNNER_PINNABLE_PACKAGES)")
        for name in sorted(pins)
        if canonicalize_name(name) not in pinnable
    ]


def _field(field: str, message: str) -> FieldError:
    return FieldError(field=field, message=message, type="admin_only")
