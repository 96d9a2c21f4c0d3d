"""The .exactly format (FORMATS.md): one ``module run pass`` line per job, sorted, no header.

A run with several jobs (chunks) is listed once. Like ``production_submit.py -o FILE``, lines can be appended to
an existing file: :func:`merge` keeps the result sorted and free of repeats.
"""

from __future__ import annotations

from collections.abc import Iterable

Entry = tuple[str, int, int]
"""(module, run, pass)"""


class ExactlyError(ValueError):
    """A line that is not ``module run pass``."""


def render(entries: Iterable[Entry]) -> str:
    """The file's text: unique entries sorted by (module, run, pass), each line ending in a newline."""
    return "".join(f"{module} {run} {pass_number}\n" for module, run, pass_number in sorted(set(entries)))


def parse(text: str) -> set[Entry]:
    """The entries of a file; blank lines are skipped, anything else malformed raises :class:`ExactlyError`."""
    entries: set[Entry] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
            raise ExactlyError(f"line {number}: expected 'module run pass', got {line!r}")
        entries.add((parts[0], int(parts[1]), int(parts[2])))
    return entries


def merge(existing: str, entries: Iterable[Entry]) -> str:
    """``existing`` with ``entries`` appended, sorted, each job once."""
    return render(parse(existing) | set(entries))
