"""How commands print: rich tables for people, JSON for scripts (``--json``), errors as one line on stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

Column = tuple[str, str] | tuple[str, str, Callable[[Any], str]]
"""(key in the row, header) or (key, header, how to show the value)."""


def _console(stderr: bool) -> Console:
    # Tables must not be cut at 80 columns when stdout is a pipe.
    return Console(stderr=stderr, highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)


@dataclass
class Output:
    """Where a command's results go."""

    as_json: bool = False
    console: Console = field(default_factory=lambda: _console(False))
    errors: Console = field(default_factory=lambda: _console(True))

    def data(self, value: Any) -> None:
        """Print a JSON value (pretty; one document per call)."""
        self.console.file.write(json.dumps(value, indent=2, sort_keys=False, default=str) + "\n")
        self.console.file.flush()

    def json_line(self, value: Any) -> None:
        """Print a JSON value on one line (streams: one document per line)."""
        self.console.file.write(json.dumps(value, separators=(",", ":"), default=str) + "\n")
        self.console.file.flush()

    def table(self, rows: Sequence[Mapping[str, Any]], columns: Sequence[Column], *, title: str | None = None) -> None:
        """Rows as a table, or as a JSON list with ``--json``."""
        if self.as_json:
            self.data(list(rows))
            return
        table = Table(title=title, show_edge=False, header_style="bold", pad_edge=False)
        for column in columns:
            table.add_column(column[1], overflow="fold")
        for row in rows:
            table.add_row(*(Text(_cell(row, column)) for column in columns))
        self.console.print(table)
        if not rows:
            self.console.print("(none)", style="dim")

    def fields(self, value: Mapping[str, Any], keys: Sequence[tuple[str, str]]) -> None:
        """One record as ``name: value`` lines, or the whole record as JSON with ``--json``."""
        if self.as_json:
            self.data(value)
            return
        width = max(len(name) for _, name in keys)
        for key, name in keys:
            self.console.print(Text.assemble((f"{name:<{width}}", "bold"), "  ", _text(value.get(key))))

    def say(self, text: str, *, style: str | None = None) -> None:
        """A line for people (suppressed with ``--json``, where only data is printed)."""
        if not self.as_json:
            self.console.print(text, style=style, markup=False)

    def note(self, text: str) -> None:
        """A side remark on stderr (never mixed with data on stdout)."""
        self.errors.print(text, style="dim", markup=False)

    def error(self, line: str, document: Mapping[str, Any] | None = None) -> None:
        """The error line on stderr; with ``--json`` the error document on one line."""
        if self.as_json and document is not None:
            self.errors.file.write(json.dumps(dict(document), separators=(",", ":"), default=str) + "\n")
            return
        self.errors.print(f"error: {line}", style="red", markup=False)


def _cell(row: Mapping[str, Any], column: Column) -> str:
    value = row.get(column[0])
    if len(column) == 3:
        return column[2](value)
    return _text(value)


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list | tuple | set):
        return ", ".join(_text(v) for v in value) or "-"
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"), default=str)
    return str(value)
