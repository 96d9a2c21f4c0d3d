"""``prodflow label list|summary|watch|exactly|cancel|resubmit|archive|restore|archive-status``: production labels."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from prodflow_cli.client import segment
from prodflow_cli.commands.campaigns import show_operation
from prodflow_cli.exits import ExitCode
from prodflow_cli.files import write_text
from prodflow_cli.output import Output
from prodflow_cli.session import JsonOpt, command, gateway, output

app = typer.Typer(help="Labels: progress, watch to the end, .exactly, cancel, resubmit failures.", no_args_is_help=True)

BAD_FINAL = ("failed", "cancelled", "partFail")
DatabaseOpt = Annotated[str, typer.Option(help="data-production or data-processing")]


def _counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{status} {n}" for status, n in counts.items()) or "-"


def _percent(counts: dict[str, int], jobs: int) -> str:
    return f"{100 * counts.get('completed', 0) // jobs if jobs else 0} %"


@command(app, "list")
def list_labels(
    experiment: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many labels (pages of 1000 are fetched as needed).")] = 1000,
    as_json: JsonOpt = False,
) -> None:
    """The labels you may read, with their jobs counted by status (by database, experiment and name)."""
    labels, more = gateway().items("/api/labels", {"experiment": experiment}, limit)
    rows = [{**item, "done": _percent(item["counts"], item["jobs"]), "by_status": _counts_text(item["counts"])}
            for item in labels]  # fmt: skip
    out = output(as_json)
    out.table(
        rows if not as_json else labels,
        [
            ("label", "label"),
            ("experiment", "experiment"),
            ("database", "database"),
            ("jobs", "jobs"),
            ("done", "completed"),
            ("by_status", "by status"),
            ("complete", "final"),
        ],
    )
    if more and not out.as_json:
        out.note(f"{len(labels)} shown; more with --limit")


def show_summary(out: Output, summary: dict[str, Any]) -> None:
    """A label summary: totals, then one row per module."""
    if out.as_json:
        out.data(summary)
        return
    counts, jobs = summary["counts"], summary["jobs"]
    state = "final" if summary.get("complete") else "in progress"
    out.say(
        f"{summary['label']} ({summary.get('experiment')}): {jobs} jobs, {_percent(counts, jobs)} completed, {state}"
    )
    out.say(f"  by status: {_counts_text(counts)}")
    out.say(f"  events done / requested: {summary['events_done']} / {summary['events_requested']}")
    rows = [
        {
            "module": name,
            "jobs": module["jobs"],
            "done": _percent(module["counts"], module["jobs"]),
            "by_status": _counts_text(module["counts"]),
            "events": f"{module['events_done']} / {module['events_requested']}",
        }
        for name, module in summary.get("modules", {}).items()
    ]
    out.table(rows, [("module", "module"), ("jobs", "jobs"), ("done", "completed"), ("by_status", "by status"),
                     ("events", "events done / requested")])  # fmt: skip


@command(app, "summary")
def summary(label: Annotated[str, typer.Argument()], as_json: JsonOpt = False) -> None:
    """Counts per status and per module, events done / requested."""
    show_summary(output(as_json), gateway().get(f"/api/labels/{segment(label)}/summary"))


@command(app, "watch")
def watch(
    label: Annotated[str, typer.Argument()],
    interval: Annotated[float, typer.Option(min=0.2, help="Seconds between polls.")] = 2.0,
    timeout: Annotated[float | None, typer.Option(min=0, help="Give up after this many seconds (exit 13).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Follow a label until every job is final: exit 0 if all completed, 12 if some failed or were cancelled."""
    client, out = gateway(), output(as_json)
    path = f"/api/labels/{segment(label)}/summary"
    deadline = None if timeout is None else time.monotonic() + timeout
    last: dict[str, Any] | None = None
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=out.errors,
        disable=out.as_json,
        transient=False,
    ) as bar:
        task = bar.add_task(label, total=None, status="")
        while True:
            current = client.get(path)
            if out.as_json and current.get("counts") != (last or {}).get("counts"):
                out.json_line(current)
            last = current
            counts = current["counts"]
            bar.update(task, total=current["jobs"], completed=counts.get("completed", 0), status=_counts_text(counts))
            if current.get("complete"):
                break
            if deadline is not None and time.monotonic() >= deadline:
                out.error(
                    f"{label} not final after {timeout:g} s: {_counts_text(counts)}", {"error": "timeout", **current}
                )
                raise typer.Exit(int(ExitCode.TIMEOUT))
            time.sleep(interval)
    bad = {status: n for status, n in last["counts"].items() if status in BAD_FINAL and n}
    if not out.as_json:
        out.say(f"{label}: final; {_counts_text(last['counts'])}")
    if bad:
        raise typer.Exit(int(ExitCode.WORK_FAILED))


@command(app, "exactly")
def exactly(
    label: Annotated[str, typer.Argument()],
    pass_number: Annotated[int | None, typer.Option("--pass", min=1, help="Only this pass.")] = None,
    database: DatabaseOpt = "data-production",
    output_file: Annotated[Path | None, typer.Option("--output", "-o")] = None,
) -> None:
    """The label's .exactly file: one 'module run pass' line per job, sorted."""
    text = gateway().text(f"/api/labels/{segment(label)}/exactly", {"pass": pass_number, "database": database})
    write_text(text, output_file)


@command(app, "cancel")
def cancel(
    label: Annotated[str, typer.Argument()],
    database: DatabaseOpt = "data-production",
    job: Annotated[list[str] | None, typer.Option("--job", help="Only these job ids (repeat).")] = None,
    reason: Annotated[str, typer.Option("--reason", "-m")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Cancel every job of the label that is not final (at its backend too)."""
    body = {"database": database, "job_ids": job, "reason": reason}
    show_operation(gateway().post(f"/api/campaigns/by-label/{segment(label)}/cancel", body), "cancelled", as_json)


@command(app, "resubmit")
def resubmit(
    label: Annotated[str, typer.Argument()],
    database: DatabaseOpt = "data-production",
    same_pass: Annotated[
        bool, typer.Option("--same-pass", help="Retry as the next attempt of the same pass (else: a new pass).")
    ] = False,
    site: Annotated[str | None, typer.Option(help="New pass only: run it on this site.")] = None,
    job: Annotated[list[str] | None, typer.Option("--job", help="Only these job ids (repeat).")] = None,
    reason: Annotated[str, typer.Option("--reason", "-m")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Resubmit the label's failed jobs, and only those."""
    body: dict[str, Any] = {
        "database": database,
        "mode": "next_attempt" if same_pass else "next_pass",
        "job_ids": job,
        "reason": reason,
    }
    if site is not None:
        body["site"] = site
    result = gateway().post(f"/api/campaigns/by-label/{segment(label)}/resubmit", body)
    show_operation(result, "resubmitted", as_json)


def _show_archive(out: Output, record: dict[str, Any]) -> None:
    if out.as_json:
        out.data(record)
        return
    progress = record.get("progress") or {}
    out.say(
        f"{record['label']}: {record['state']} ({progress.get('done', 0)} / {progress.get('jobs', 0)} jobs) "
        f"in {record['folder']}" + (f"; error: {record['error']}" if record.get("error") else "")
    )


def _await_archive(label: str, wanted: str, interval: float, timeout: float | None, out: Output) -> None:
    """Poll the label's archival until its state is ``wanted`` (``archived``, ``restored``)."""
    client = gateway()
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        record = client.get(f"/api/labels/{segment(label)}/archive")
        if record["state"] == wanted:
            _show_archive(out, record)
            return
        if record.get("error"):
            out.error(f"{label}: {record['state']} stopped: {record['error']} (run the command again to resume)",
                      {"error": "archive", **record})  # fmt: skip
            raise typer.Exit(int(ExitCode.WORK_FAILED))
        if deadline is not None and time.monotonic() >= deadline:
            out.error(f"{label}: still {record['state']} after {timeout:g} s", {"error": "timeout", **record})
            raise typer.Exit(int(ExitCode.TIMEOUT))
        time.sleep(interval)


WaitOpt = Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until the work is done.")]
TimeoutOpt = Annotated[
    float | None, typer.Option(min=0, help="With --wait: give up after this many seconds (exit 13).")
]


def _start_archive_work(
    label: str, action: str, done: str, *, wait: bool, timeout: float | None, as_json: bool
) -> None:
    """POST the label's ``action`` (archive/restore), then show the record or wait until its state is ``done``."""
    out = output(as_json)
    record = gateway().post(f"/api/labels/{segment(label)}/{action}")
    if not wait:
        _show_archive(out, record)
        return
    _await_archive(label, done, 0.5, timeout, out)


@command(app, "archive")
def archive(
    label: Annotated[str, typer.Argument()],
    wait: WaitOpt = True,
    timeout: TimeoutOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """(admin) Move a finished label's job documents to an archive on its storage element; again to resume."""
    _start_archive_work(label, "archive", "archived", wait=wait, timeout=timeout, as_json=as_json)


@command(app, "restore")
def restore(
    label: Annotated[str, typer.Argument()],
    wait: WaitOpt = True,
    timeout: TimeoutOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """(admin) Put an archived label's job documents back into their databases; again to resume."""
    _start_archive_work(label, "restore", "restored", wait=wait, timeout=timeout, as_json=as_json)


@command(app, "archive-status")
def archive_status(label: Annotated[str, typer.Argument()], as_json: JsonOpt = False) -> None:
    """(admin) The state and progress of a label's archival (404 if it was never archived)."""
    _show_archive(output(as_json), gateway().get(f"/api/labels/{segment(label)}/archive"))
