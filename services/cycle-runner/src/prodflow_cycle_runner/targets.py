"""LEGEND production targets and file keys, as legend-dataflow names them.

Targets: ``{selection}-{experiment}-{period}-{run}-{datatype}[-{timestamp}]-{tier}.gen``, where missing trailing
key parts mean "all" (``all-l200-p03-dsp.gen`` is every dsp file of period p03). Files:
``{experiment}-{period}-{run}-{datatype}-{timestamp}-{tier|par|plt}_{X}.{ext}``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields

KEY_FIELDS = ("experiment", "period", "run", "datatype", "timestamp")
_PART = r"[A-Za-z0-9]+"
_TARGET = re.compile(rf"^(?P<selection>all|sel)(?P<keys>(?:-{_PART}){{1,5}})-(?P<tier>{_PART})\.gen$")
_FILE = re.compile(
    rf"^(?P<experiment>{_PART})-(?P<period>{_PART})-(?P<run>{_PART})-(?P<datatype>{_PART})-(?P<timestamp>{_PART})"
    r"-(?P<kind>tier|par|plt)_(?P<tier>[A-Za-z0-9]+)\.[A-Za-z0-9.]+$"
)


@dataclass(frozen=True)
class Selection:
    """Which data a target or an invalidation means: ``None`` fields match everything."""

    experiment: str | None = None
    period: str | None = None
    run: str | None = None
    datatype: str | None = None
    timestamp: str | None = None

    def matches(self, key: FileKey) -> bool:
        """True if ``key`` is selected."""
        return all(getattr(self, f) in (None, getattr(key, f)) for f in KEY_FIELDS)

    def as_tuple(self) -> tuple[str | None, ...]:
        """The five fields in key order."""
        return tuple(getattr(self, f) for f in KEY_FIELDS)

    def as_dict(self) -> dict[str, str]:
        """The fields that are fixed."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


@dataclass(frozen=True)
class ProductionTarget:
    """A parsed ``.gen`` target."""

    selection: str
    keys: Selection
    tier: str

    @property
    def label(self) -> str:
        """The target without the tier and extension (``all-l200-p03-r001-phy``)."""
        parts = [getattr(self.keys, f) for f in KEY_FIELDS if getattr(self.keys, f) is not None]
        return "-".join([self.selection, *parts])


@dataclass(frozen=True)
class FileKey:
    """The key of one data file and the tier (or par/plt) it belongs to."""

    experiment: str
    period: str
    run: str
    datatype: str
    timestamp: str
    kind: str
    tier: str


def parse_target(text: str) -> ProductionTarget | None:
    """A ``.gen`` target, or ``None`` if ``text`` is not one (then it is an ordinary Snakemake target)."""
    match = _TARGET.match(text)
    if match is None:
        return None
    parts = match.group("keys").split("-")[1:]
    return ProductionTarget(
        match.group("selection"), Selection(**dict(zip(KEY_FIELDS, parts, strict=False))), match.group("tier")
    )


def parse_file_name(name: str) -> FileKey | None:
    """The key of a LEGEND tier, par or plot file name, or ``None``."""
    match = _FILE.match(name)
    return FileKey(**match.groupdict()) if match else None
