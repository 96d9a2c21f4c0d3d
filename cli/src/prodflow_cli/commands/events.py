"""``prodflow events``: follow the shared event stream (SSE), resuming after a drop."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from prodflow_cli.session import JsonOpt, command, gateway, output
from prodflow_cli.sse import follow

app = typer.Typer()


def _summary(data: Any, width: int = 100) -> str:
    if not isinstance(data, dict):
        return "" if data is None else str(data)[:width]
    text = " ".join(f"{k}={json.dumps(v, separators=(',', ':'))}" for k, v in data.items())
    return text if len(text) <= width else text[: width - 1] + "…"


@command(app)
def events(
    since: Annotated[
        str | None, typer.Option(help="Resume after this stream id (printed with --ids, or as stream_id with --json).")
    ] = None,
    from_start: Annotated[bool, typer.Option("--from-start", help="Replay the stream from its beginning.")] = False,
    type_: Annotated[
        list[str] | None, typer.Option("--type", "-t", help="Only these short types, e.g. job.completed (repeat).")
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", "-n", min=1, help="Stop after this many events.")] = None,
    ids: Annotated[bool, typer.Option("--ids", help="Show each event's stream id (to resume with --since).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Follow events as they happen (Ctrl-C stops); reconnects and resumes where it left off."""
    out = output(as_json)
    start = "0" if from_start else since
    types = ",".join(type_) if type_ else None
    try:
        for message in follow(gateway(), since=start, types=types, limit=limit, on_retry=out.note):
            event = message.cloud_event()
            if out.as_json:
                out.json_line({"stream_id": message.id, **event})
                continue
            prefix = f"{message.id}  " if ids else ""
            out.say(
                f"{prefix}{event.get('time', '')}  {message.event:<24} {event.get('experiment') or '-':<10} "
                f"{event.get('subject') or '-'}  {_summary(event.get('data'))}"
            )
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
