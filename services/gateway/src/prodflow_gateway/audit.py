"""The audit log's view of a call: what the middleware notes while it passes, and the row made of it later.

The middleware only keeps references (status, a few headers, the chunks of JSON bodies up to 64 KiB) while the call
runs; the experiment and target are worked out from them by the writer (``audit_log``), after the answer is sent.
Bodies are read for those two values only and never stored.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote

from prodflow_core.identity import Identity
from starlette.types import ASGIApp, Message, Receive, Scope, Send

AUDITED_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
BODY_LIMIT = 64 * 1024
"""Bodies read for the experiment or the created resource's id: larger ones are not parsed (nor kept)."""
# Path words followed by a resource's id: /api/<collection>/<id>/... (the target is the last such id).
COLLECTIONS = frozenset(
    {
        "requests",
        "catalog",
        "modules",
        "runs",
        "campaigns",
        "by-label",
        "sites",
        "labels",
        "jobs",
        "cycles",
        "tokens",
        "webhooks",
    }
)
NOT_IDS = frozenset({"preview", "by-label"})
CREATED = frozenset({201, 202})


@dataclass
class _Body:
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0
    json: bool = False

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.json and self.size <= BODY_LIMIT and chunk:
            self.chunks.append(chunk)

    def document(self) -> Any:
        if not self.json or self.size > BODY_LIMIT or not self.chunks:
            return None
        try:
            return json.loads(b"".join(self.chunks))
        except ValueError:
            return None


@dataclass
class AuditedCall:
    """A state-changing call as the gateway saw it pass."""

    at: datetime
    method: str
    path: str
    query: str
    client: str | None
    request: _Body = field(default_factory=_Body)
    response: _Body = field(default_factory=_Body)
    status: int = 0
    location: str | None = None
    identity: Identity | None = None
    request_id: str | None = None


def _is_json(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(k.lower() == b"content-type" and b"json" in v.lower() for k, v in headers)


def target_of(path: str) -> str | None:
    """The last id of ``path``: the segment after the last collection word (``/api/sites/cern/drain`` → cern)."""
    parts = [unquote(p) for p in path.split("/") if p]
    target = None
    for before, part in itertools.pairwise(parts):
        if before in COLLECTIONS and part not in NOT_IDS:
            target = part
    return target


def _field(document: Any, name: str) -> str | None:
    value = document.get(name) if isinstance(document, dict) else None
    return value if isinstance(value, str) and value else None


def _nested_field(document: Any, name: str) -> str | None:
    """``document[name]``, else the first ``name`` one level down (a campaign's ``jobs.experiment``)."""
    if not isinstance(document, dict):
        return None
    return _field(document, name) or next(filter(None, (_field(v, name) for v in document.values())), None)


def experiment_of(call: AuditedCall, answer: Any) -> str | None:
    """The query's ``experiment``, else the request body's, else the path's (``/api/catalog/<experiment>``), else
    the answer's (an approved request, a cancelled campaign)."""
    query = parse_qs(call.query).get("experiment")
    if query:
        return query[0]
    found = _nested_field(call.request.document(), "experiment")
    if found:
        return found
    parts = [unquote(p) for p in call.path.split("/") if p]
    if len(parts) > 2 and parts[1] == "catalog":
        return parts[2]
    return _field(answer, "experiment")


def entry_of(call: AuditedCall) -> dict[str, Any]:
    """The audit row of ``call`` (the columns of ``AuditEntry``)."""
    identity = call.identity
    assert identity is not None  # only authenticated calls are recorded
    answer = call.response.document()
    created = target_of(call.location) if call.location else None
    if call.status in CREATED:
        created = created or _field(answer, "id") or _field(answer, "_id")
    return {
        "at": call.at,
        "user": identity.user,
        "token_id": identity.token_id,
        "roles": sorted(identity.roles),
        "experiment": experiment_of(call, answer),
        "method": call.method,
        "path": call.path,
        "target": created or target_of(call.path),
        "status": call.status,
        "request_id": call.request_id,
        "client": call.client,
    }


class AuditMiddleware:
    """Hands every authenticated POST/PUT/PATCH/DELETE under ``/api/`` to ``app.state.audit`` once answered.

    Calls refused before authentication (401, 429) are not recorded: they changed nothing and name nobody, and
    recording them would let anyone without a token fill the table.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in AUDITED_METHODS or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        call = AuditedCall(
            at=datetime.now(UTC),
            method=scope["method"],
            path=scope["path"],
            query=scope.get("query_string", b"").decode("latin-1"),
            client=client[0] if client else None,
        )
        call.request.json = _is_json(scope["headers"])
        own_route = scope["path"].startswith("/api/auth/")

        async def noting_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                call.request.add(message.get("body", b""))
            return message

        async def noting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                call.status = message["status"]
                headers = message.get("headers", [])
                call.location = next((v.decode("latin-1") for k, v in headers if k.lower() == b"location"), None)
                # The answer's experiment, and the created resource's id when there is no Location. The gateway's
                # own token answers carry secrets and no experiment: they are not read.
                call.response.json = call.status < 300 and not own_route and _is_json(headers)
            elif message["type"] == "http.response.body":
                call.response.add(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, noting_receive, noting_send)
        except Exception:
            call.status = call.status or 500  # answered by the server-error handler outside this middleware
            raise
        finally:
            state = scope.get("state") or {}
            call.identity = state.get("identity")
            call.request_id = state.get("request_id")
            if call.identity is not None and call.status:
                scope["app"].state.audit.record(call)
