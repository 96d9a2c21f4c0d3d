"""Reading a backend's change journal: which jobs may have changed since a reader's cursor.

The ``local`` backend's wrappers append one line per job started, ended or cancelled to hourly files
(:meth:`local_folder.WorkRoot.note_change`). A reader keeps a cursor ``"<file>:<offset>"`` (opaque to it) and asks
only about the jobs named after it, instead of every active job: a cycle's cost follows what changed. Lines a
reader never saw (a file pruned while it was away) are caught by its periodic full poll; the journal is a hint
for speed, never the only source of truth.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

MAX_READ_BYTES = 4 * 1024 * 1024
"""Bytes read per call; a reader further behind gets ``more=True`` and asks again."""


@dataclass(frozen=True)
class Changed:
    """Backend ids named in the journal after a cursor, the cursor after them, and whether more lines wait."""

    backend_ids: list[str]
    cursor: str
    more: bool = False


def _split(cursor: str) -> tuple[str, int]:
    name, _, offset = cursor.rpartition(":")
    return name, int(offset or 0)


def _files(folder: Path) -> list[str]:
    try:
        return sorted(name for name in os.listdir(folder) if not name.startswith("."))
    except FileNotFoundError:
        return []


def journal_end(folder: Path) -> str:
    """A cursor after everything written so far."""
    files = _files(folder)
    if not files:
        return ":0"  # before any file: the first file written is read from its start
    try:
        return f"{files[-1]}:{(folder / files[-1]).stat().st_size}"
    except FileNotFoundError:
        return ":0"


def read_journal(folder: Path, cursor: str) -> Changed:
    """The backend ids written after ``cursor`` (each once), up to ``MAX_READ_BYTES``, and the new cursor."""
    current, offset = _split(cursor)
    names: dict[str, None] = {}
    budget = MAX_READ_BYTES
    for file_name in (name for name in _files(folder) if name >= current):
        start = offset if file_name == current else 0
        try:
            with open(folder / file_name, "rb") as handle:
                handle.seek(start)
                data = handle.read(budget)
        except FileNotFoundError:
            continue  # pruned meanwhile
        whole = data[: data.rfind(b"\n") + 1]  # a line being written is taken next time
        names.update(dict.fromkeys(unquote(line) for line in whole.decode().splitlines() if line))
        current, offset = file_name, start + len(whole)
        if len(data) == budget:  # cut by the budget: the rest of this file (and the next files) next time
            return Changed(list(names), f"{current}:{offset}", more=True)
        budget -= len(whole)
    return Changed(list(names), f"{current}:{offset}")


def journal_moved(folder: Path, cursor: str) -> bool:
    """True if lines were written after ``cursor`` (a stat and a directory listing: cheap to ask often)."""
    current, offset = _split(cursor)
    files = _files(folder)
    if not files:
        return False
    if files[-1] != current:
        return files[-1] > current
    try:
        return (folder / current).stat().st_size > offset
    except FileNotFoundError:
        return False
