"""The .exactly format (FORMATS.md): one ``module run pass`` line per job, sorted, no header.

A run with several jobs (chunks) is listed once. Like ``production_submit.py -o FILE``, lines can be appended to
an existing file: :func:`merge` keeps the result sorted and free of repeats.
"""

from __future__ import annotations

import bisect
from collections.abc import Collection, Iterable, Iterator

Entry = tuple[str, int, int]
"""(module, run, pass)"""


class ExactlyError(ValueError):
    """A line that is not ``module run pass``."""


def render(entries: Iterable[Entry]) -> str:
    """The file's text: unique entries sorted by (module, run, pass), each line ending in a newline."""
    return "".join(lines(sorted(set(entries))))


def lines(entries: Iterable[Entry]) -> Iterator[str]:
    """The file's lines, one per entry, in the order given."""
    return (f"{module} {run} {pass_number}\n" for module, run, pass_number in entries)


class PassEntries(Collection[Entry]):
    """The entries of one pass's jobs, added job by job: each module's runs in a list, 8 bytes a job.

    A set of ``(module, run, pass)`` tuples took ~100 bytes a job: 93 MiB for a 1,000,000-job campaign, held
    while its documents were created, and rendering it took 99 MiB more. Runs are sorted and made unique when
    first read; iteration is in the file's order, and :meth:`lines` gives its lines without building its text.
    """

    def __init__(self, pass_number: int) -> None:
        self.pass_number = pass_number
        self._runs: dict[str, list[int]] = {}
        self._unique = True

    def add(self, module: str, run: int) -> None:
        """Add the entry of one job (a run's further chunks add nothing)."""
        runs = self._runs.setdefault(module, [])
        if not runs or runs[-1] != run:
            runs.append(run)
            self._unique = False

    def _sorted(self) -> dict[str, list[int]]:
        if not self._unique:
            for module, runs in self._runs.items():
                runs.sort()
                self._runs[module] = [run for i, run in enumerate(runs) if i == 0 or runs[i - 1] != run]
            self._unique = True
        return self._runs

    def __iter__(self) -> Iterator[Entry]:
        runs = self._sorted()
        return ((module, run, self.pass_number) for module in sorted(runs) for run in runs[module])

    def __len__(self) -> int:
        return sum(len(runs) for runs in self._sorted().values())

    def __contains__(self, entry: object) -> bool:
        if not (isinstance(entry, tuple) and len(entry) == 3 and entry[2] == self.pass_number):
            return False
        runs = self._sorted().get(entry[0], [])
        at = bisect.bisect_left(runs, entry[1])
        return at < len(runs) and runs[at] == entry[1]

    def lines(self) -> Iterator[str]:
        """The file's lines, sorted, each entry once."""
        return lines(self)


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
