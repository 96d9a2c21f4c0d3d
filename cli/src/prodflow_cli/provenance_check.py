"""Does a local file match the record of the file it claims to be (size and adler32)?"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prodflow_core.checksums import file_adler32
from prodflow_core.provenance.schema import FileRecord


@dataclass(frozen=True)
class LocalFile:
    """A file on this machine, with the size and adler32 of its content."""

    path: Path
    size: int
    adler32: str

    @classmethod
    def read(cls, path: Path) -> LocalFile:
        """Read ``path`` once to learn its size and adler32 (8 lowercase hex digits)."""
        size, adler32 = file_adler32(path)
        return cls(path=path, size=size, adler32=adler32)


@dataclass(frozen=True)
class Comparison:
    """A local file beside its record: each of size and adler32 matches, differs, or was not recorded."""

    local: LocalFile
    record: FileRecord

    @property
    def size_matches(self) -> bool | None:
        """``None`` when the record has no size."""
        return None if self.record.size is None else self.record.size == self.local.size

    @property
    def adler32_matches(self) -> bool | None:
        """``None`` when the record has no adler32 (compared case-insensitively)."""
        if self.record.adler32 is None:
            return None
        return self.record.adler32.lower() == self.local.adler32

    @property
    def matches(self) -> bool:
        """Both size and adler32 were recorded and both are the local file's."""
        return self.size_matches is True and self.adler32_matches is True

    def lines(self) -> list[str]:
        """What to tell the user: the verdict, then one line per compared property."""
        verdict = "matches" if self.matches else "does NOT match"
        return [
            f"local file {self.local.path} {verdict} the record",
            _line("size", str(self.local.size), _text(self.record.size), self.size_matches),
            _line("adler32", self.local.adler32, _text(self.record.adler32), self.adler32_matches),
        ]


def _line(name: str, local: str, recorded: str, same: bool | None) -> str:
    if same is None:
        return f"  {name}: {local} here, not recorded: cannot be checked"
    return f"  {name}: {local} here, {recorded} recorded: {'same' if same else 'DIFFERENT'}"


def _text(value: object) -> str:
    return "-" if value is None else str(value)
