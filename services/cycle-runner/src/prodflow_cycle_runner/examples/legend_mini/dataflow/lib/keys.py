"""LEGEND file keys and production targets for the mini dataflow (pure Python, no dependencies).

Tier files: ``{tier_X}/{datatype}/{period}/{run}/{experiment}-{period}-{run}-{datatype}-{timestamp}-tier_{X}.lh5``;
targets: ``{selection}-{experiment}-{period}-{run}-{datatype}-{tier}.gen`` (missing trailing parts mean "all").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KEY_FIELDS = ("experiment", "period", "run", "datatype", "timestamp")
_TARGET = re.compile(r"^(all|sel)((?:-[A-Za-z0-9]+){1,5})$")


@dataclass(frozen=True, order=True)
class FileKey:
    """One data file: experiment, period, run, datatype and start timestamp."""

    experiment: str
    period: str
    run: str
    datatype: str
    timestamp: str

    @property
    def name(self) -> str:
        return f"{self.experiment}-{self.period}-{self.run}-{self.datatype}-{self.timestamp}"

    def tier_path(self, paths: dict[str, str], tier: str) -> str:
        folder = Path(paths[f"tier_{tier}"]) / self.datatype / self.period / self.run
        return str(folder / f"{self.name}-tier_{tier}.lh5")

    def par_path(self, paths: dict[str, str], tier: str) -> str:
        folder = Path(paths["par"]) / tier / self.datatype / self.period / self.run
        return str(folder / f"{self.name}-par_{tier}.json")

    def log_path(self, paths: dict[str, str], tier: str) -> str:
        folder = Path(paths["log"]) / tier / self.datatype / self.period / self.run
        return str(folder / f"{self.name}-tier_{tier}.log")


def parse_label(label: str) -> dict[str, str | None]:
    """``all-l200-p03-r001-phy`` → selection and the key fields it fixes (``None`` = all)."""
    match = _TARGET.match(label)
    if match is None:
        raise ValueError(f"not a production label: {label!r}")
    parts = match.group(2).split("-")[1:]
    fields: dict[str, str | None] = dict.fromkeys(KEY_FIELDS)
    fields.update(zip(KEY_FIELDS, parts, strict=False))
    return {"selection": match.group(1), **fields}


def keys_of(runinfo: dict[str, Any], experiment: str) -> list[FileKey]:
    """Every file key of the run list ``{period: {run: {datatype: [timestamps]}}}``."""
    return [
        FileKey(experiment, period, run, datatype, ts)
        for period, runs in sorted(runinfo.items())
        for run, datatypes in sorted(runs.items())
        for datatype, stamps in sorted(datatypes.items())
        for ts in stamps
    ]


def select(keys: list[FileKey], label: str) -> list[FileKey]:
    """The keys a label selects."""
    wanted = {k: v for k, v in parse_label(label).items() if k != "selection" and v is not None}
    return [key for key in keys if all(getattr(key, k) == v for k, v in wanted.items())]


def substitute(value: Any, base: str) -> Any:
    """Replace ``$_`` (the folder holding config.json) in every string of ``value``."""
    if isinstance(value, dict):
        return {k: substitute(v, base) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, base) for v in value]
    return value.replace("$_", base) if isinstance(value, str) else value
