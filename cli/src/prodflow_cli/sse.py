"""Following the gateway's Server-Sent Events: a line parser and a follower that resumes with ``Last-Event-ID``."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from prodflow_cli.client import Gateway
from prodflow_cli.errors import ApiError, Unreachable


@dataclass(frozen=True)
class Message:
    """One SSE message: ``id`` (the CouchDB seq at the gateway), ``event`` (the short type) and ``data``."""

    id: str | None
    event: str
    data: str

    def cloud_event(self) -> dict[str, Any]:
        """The CloudEvent carried in ``data``."""
        value = json.loads(self.data)
        return value if isinstance(value, dict) else {"data": value}


def parse(lines: Iterable[str]) -> Iterator[Message]:
    """Messages of an SSE stream (comments and ``retry:`` skipped); ``id`` persists across messages per the spec."""
    last_id: str | None = None
    event, data = "", list[str]()
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                yield Message(last_id, event or "message", "\n".join(data))
            event, data = "", list[str]()
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
        elif name == "id" and "\0" not in value:
            last_id = value


def follow(
    gateway: Gateway,
    *,
    since: str | None = None,
    types: str | None = None,
    limit: int | None = None,
    read_s: float = 45.0,
    retry_s: float = 2.0,
    max_retries: int | None = None,
    on_retry: Callable[[str], None] | None = None,
) -> Iterator[Message]:
    """Events after ``since`` (``None``: from now on), reconnecting after a drop from the last id seen.

    Stops after ``limit`` messages; a 4xx answer ends the stream with :class:`ApiError`, and so does the gateway
    staying unreachable for more than ``max_retries`` attempts in a row.
    """
    last_id, seen, failures = since, 0, 0
    while limit is None or seen < limit:
        headers = {"Accept": "text/event-stream"}
        if last_id is not None:
            headers["Last-Event-ID"] = last_id
        params = {"types": types, "limit": None if limit is None else limit - seen}
        try:
            with gateway.stream("/api/events", params=params, headers=headers, read_s=read_s) as response:
                failures = 0
                for message in parse(response.iter_lines()):
                    last_id = message.id or last_id
                    seen += 1
                    yield message
                    if limit is not None and seen >= limit:
                        return
        except ApiError as exc:
            if exc.status < 500:
                raise
            failures += 1
            reason = exc.line()
        except Unreachable as exc:
            failures += 1
            reason = exc.line()
        else:
            reason = "the gateway closed the stream"
        if max_retries is not None and failures > max_retries:
            raise Unreachable(f"event stream lost: {reason}")
        if on_retry is not None:
            on_retry(f"{reason}; resuming after {last_id or 'now'} in {retry_s:g} s")
        time.sleep(retry_s)
