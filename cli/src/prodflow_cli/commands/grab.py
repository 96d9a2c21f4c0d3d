"""``prodflow grab LABEL --to DIR``: download a label's outputs, resumable and checksum-verified."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from prodflow_cli.client import segment
from prodflow_cli.exits import ExitCode
from prodflow_cli.session import JsonOpt, command, gateway, output

app = typer.Typer()


@command(app)
def grab(
    label: Annotated[str, typer.Argument()],
    to: Annotated[Path, typer.Option("--to", help="Folder to download into (created if missing).")],
    module: Annotated[str | None, typer.Option()] = None,
    run: Annotated[int | None, typer.Option()] = None,
    pass_number: Annotated[int | None, typer.Option("--pass")] = None,
    status: Annotated[str, typer.Option(help="Jobs in this status ('' = any).")] = "completed",
    manifest_only: Annotated[bool, typer.Option("--manifest", help="Print the manifest; download nothing.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Download every output file of a label; files already there and correct are skipped, partial ones resumed.

    Each file is checked against the size and adler32 the monitor recorded; exit 11 if any does not match.
    """
    from prodflow_monitor.download import download_manifest  # fsspec: imported only by the command that needs it

    params = {"module": module, "run": run, "pass": pass_number, "status": status}
    manifest: dict[str, Any] = gateway().get(f"/api/grab/{segment(label)}", params)
    out = output(as_json)
    if manifest_only:
        out.data(manifest)
        return
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=out.errors,
        disable=out.as_json,
    ) as bar:
        task = bar.add_task(f"{label} ({manifest['count']} files)", total=manifest["total_size"])
        report = download_manifest(manifest, to, progress=lambda n: bar.advance(task, n))
    summary = {
        "label": label,
        "dest": str(to),
        "files": manifest["count"],
        "downloaded": report.downloaded,
        "skipped": report.skipped,
        "failed": report.failed,
        "bytes": report.bytes,
    }
    if out.as_json:
        out.data(summary)
    else:
        for path, error in sorted(report.failed.items()):
            out.error(f"{path}: {error}")
        out.say(
            f"{len(report.downloaded)} downloaded ({report.bytes} bytes), {len(report.skipped)} already there, "
            f"{len(report.failed)} failed → {to}"
        )
    if report.failed:
        raise typer.Exit(int(ExitCode.CHECKSUM))
