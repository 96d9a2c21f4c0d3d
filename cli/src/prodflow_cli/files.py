"""Reading the documents commands take (JSON or YAML, a path or ``-`` for stdin) and writing what they fetch."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

from prodflow_cli.errors import CliError
from prodflow_cli.exits import ExitCode


def read_document(path: Path) -> Any:
    """A JSON or YAML document from ``path`` (``-``: standard input); YAML is accepted as it is JSON's superset."""
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}", ExitCode.USAGE) from exc
    try:
        return json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise CliError(f"{path} is not valid JSON or YAML: {' '.join(str(exc).split())}", ExitCode.USAGE) from exc


def read_mapping(path: Path, what: str) -> dict[str, Any]:
    """A JSON or YAML object from ``path`` (``-``: stdin); ``what`` names it in the error when it is not one."""
    value = read_document(path)
    if not isinstance(value, dict):
        raise CliError(f"{path} must hold {what} (a mapping)", ExitCode.USAGE)
    return value


def read_run_list(path: Path) -> list[int]:
    """Run numbers from a file like ``production_submit.py -L runs.txt`` takes: whitespace or comma separated,
    ``#`` comments allowed."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}", ExitCode.USAGE) from exc
    runs: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        for word in line.split("#", 1)[0].replace(",", " ").split():
            if not word.isdigit():
                raise CliError(f"{path}:{number}: {word!r} is not a run number", ExitCode.USAGE)
            runs.append(int(word))
    return runs


def write_text(text: str, output: Path | None) -> None:
    """Write ``text`` to ``output``, or to stdout when it is ``None`` or ``-``."""
    if output is None or str(output) == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
