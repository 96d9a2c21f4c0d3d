"""``prodflow provenance FILE_OR_URL``: where a file came from, as a tree; a local file checked against its record."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from prodflow_core.provenance.schema import Provenance
from pydantic import ValidationError

from prodflow_cli.errors import ApiError, CliError
from prodflow_cli.exits import ExitCode
from prodflow_cli.output import Output
from prodflow_cli.provenance_check import Comparison, LocalFile
from prodflow_cli.provenance_tree import render_provenance
from prodflow_cli.session import JsonOpt, command, gateway, output

app = typer.Typer()

API = "/api/provenance"
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True)
class Question:
    """What to ask ``GET /api/provenance``, and the local file to compare with the answer (if one was named)."""

    params: dict[str, str]
    local: LocalFile | None = None
    guessed_path: bool = False
    """The argument was neither a local file nor a URL, so it was taken as a path in a cycle."""


def question(argument: str | None, *, job: str | None = None, cycle: str | None = None) -> Question:
    """The query for an argument and the options (reads a local file's content to checksum it).

    ``--job ID`` asks by job; ``--cycle NAME`` takes the argument as a path in that cycle; an argument with a URL
    scheme (``root://``, ``file://``) asks by URL; an existing local file by its name and adler32; anything else is
    asked as a path in any cycle.
    """
    if job is not None:
        if argument is not None or cycle is not None:
            raise CliError("give either FILE_OR_URL or --job, not both (nor --cycle with --job)", ExitCode.USAGE)
        return Question({"job": job})
    if argument is None:
        raise CliError(
            "give FILE_OR_URL (a local file, a storage element URL, a path in a cycle) or --job", ExitCode.USAGE
        )
    if cycle is not None:
        return Question({"path": argument, "cycle": cycle})
    if _SCHEME.match(argument):
        return Question({"url": argument})
    path = Path(argument)
    if path.is_dir():
        raise CliError(f"{argument} is a folder: name one file", ExitCode.USAGE)
    if path.is_file():
        try:
            local = LocalFile.read(path)
        except OSError as exc:
            raise CliError(f"cannot read {argument}: {exc.strerror or exc}", ExitCode.USAGE) from exc
        return Question({"name": path.name, "adler32": local.adler32}, local=local)
    return Question({"path": argument}, guessed_path=True)


@command(app)
def provenance(
    file_or_url: Annotated[
        str | None,
        typer.Argument(
            metavar="FILE_OR_URL",
            help="A local file (checked by name + adler32), a storage element URL (root://…, file://…), "
            "or a path in a cycle.",
            show_default=False,
        ),
    ] = None,
    job: Annotated[str | None, typer.Option("--job", help="Ask by job id instead (no FILE_OR_URL).")] = None,
    cycle: Annotated[str | None, typer.Option("--cycle", help="FILE_OR_URL is a path in this cycle.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Where a file came from: the job, campaign and request (SNO+), or the cycle and the files it was made from.

    Given a local file, its size and adler32 are checked against the record: exit 11 if either differs.

    Exit 6 if nothing of that name and adler32 was recorded (not made by prodflow here, or changed since).
    """
    asked = question(file_or_url, job=job, cycle=cycle)
    out = output(as_json)
    if asked.guessed_path:
        out.note(f"{file_or_url} is neither a local file nor a URL: asked as a path in a cycle")
    try:
        answer: Any = gateway().get(API, asked.params)
    except ApiError as exc:
        if exc.status == 404 and asked.local is not None:
            out.note(
                f"no record of a file named {asked.params['name']} with adler32 {asked.local.adler32} "
                f"(size {asked.local.size}): not made by prodflow here, or changed since"
            )
        raise
    record = _parse(answer)
    if out.as_json:
        out.data(answer)
    else:
        _print(out, render_provenance(record))
    if asked.local is not None:
        comparison = Comparison(asked.local, record.file)
        for line in comparison.lines():  # with --json on stderr, so stdout stays the answer alone
            if out.as_json:
                out.note(line)
            else:
                out.say(line, style=None if comparison.matches else "bold red")
        if not comparison.matches:
            raise typer.Exit(int(ExitCode.CHECKSUM))


def _parse(answer: Any) -> Provenance:
    try:
        return Provenance.model_validate(answer)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise CliError(f"the gateway's answer is not a provenance record: {where}: {first['msg']}") from exc


def _print(out: Output, text: str) -> None:
    out.console.file.write(text + "\n")
    out.console.file.flush()
