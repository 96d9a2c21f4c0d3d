"""Reprocessing: which generated files must go so that a run rebuilds a selection, and moving them away.

Invalidating tier X of a selection removes its tier-X files and the files of every later tier, the parameter
and plot files of later tiers (they were derived from tier X or after), and the ``.gen`` markers that claim those
tiers are complete. Parameters of tier X itself stay: they come from earlier tiers.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from prodflow_cycle_runner.targets import Selection, parse_file_name, parse_target


@dataclass(frozen=True)
class Doomed:
    """One file an invalidation removes."""

    path: Path
    size: int
    reason: str


@dataclass(frozen=True)
class Plan:
    """What an invalidation removes, in path order."""

    tiers: list[str]
    files: list[Doomed]

    def listing(self, cycle_dir: Path, limit: int) -> list[dict[str, object]]:
        """The first ``limit`` files as JSON, paths relative to the cycle folder."""
        root = cycle_dir.resolve()
        return [{"path": str(d.path.relative_to(root)), "size": d.size, "reason": d.reason} for d in self.files[:limit]]

    @property
    def size(self) -> int:
        """Bytes freed."""
        return sum(f.size for f in self.files)


def tier_order(paths: dict[str, Path]) -> list[str]:
    """The tiers of a setup in processing order: its ``tier_X`` paths as config.json lists them."""
    return [key.removeprefix("tier_") for key in paths if key.startswith("tier_")]


def plan(paths: dict[str, Path], cycle_dir: Path, tier: str, selection: Selection) -> Plan:
    """The files to remove so that ``tier`` (and every tier after it) is rebuilt for ``selection``."""
    order = tier_order(paths)
    if tier not in order:
        raise ValueError(f"unknown tier {tier!r}; the tiers are {', '.join(order)}")
    later = order[order.index(tier) + 1 :]
    doomed: list[Doomed] = []
    for name in [tier, *later]:
        doomed += _matching(paths[f"tier_{name}"], selection, {("tier", name)}, f"tier {name}")
    derived = {(kind, name) for kind in ("par", "plt") for name in later}
    for kind in ("par", "plt"):
        if kind in paths:
            doomed += _matching(paths[kind], selection, derived, f"{kind} of a later tier")
    doomed += _markers(cycle_dir, [tier, *later], selection)
    return Plan([tier, *later], sorted(doomed, key=lambda d: d.path))


def _matching(folder: Path, selection: Selection, wanted: set[tuple[str, str]], reason: str) -> list[Doomed]:
    if not folder.is_dir():
        return []
    found: list[Doomed] = []
    for dirpath, _dirs, names in os.walk(folder):  # os.walk does not follow symlinked folders
        for name in names:
            key = parse_file_name(name)
            if key is not None and (key.kind, key.tier) in wanted and selection.matches(key):
                path = Path(dirpath) / name
                found.append(Doomed(path, path.lstat().st_size, reason))
    return found


def _markers(cycle_dir: Path, tiers: list[str], selection: Selection) -> list[Doomed]:
    """``.gen`` markers of those tiers whose selection overlaps ``selection``."""
    found: list[Doomed] = []
    for path in cycle_dir.glob("*.gen"):
        target = parse_target(path.name)
        if target is not None and target.tier in tiers and _overlap(target.keys, selection):
            found.append(Doomed(path, path.lstat().st_size, "completion marker"))
    return found


def _overlap(a: Selection, b: Selection) -> bool:
    return all(x is None or y is None or x == y for x, y in zip(a.as_tuple(), b.as_tuple(), strict=True))


def apply(plan_: Plan, cycle_dir: Path, trash: Path | None) -> int:
    """Remove the planned files (into ``trash``, keeping their relative paths, when given); returns the count."""
    root = cycle_dir.resolve()
    moved = 0
    for doomed in plan_.files:
        path = doomed.path
        if not path.exists() and not path.is_symlink():
            continue
        if trash is None:
            path.unlink()
        else:
            dest = trash / path.relative_to(root)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(path, dest)
        moved += 1
    return moved
