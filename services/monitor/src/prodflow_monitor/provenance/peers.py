"""What the provenance chain asks the other services over HTTP, as the caller: the campaign (submitter), the
production request (request-api) and a cycle file's chain (cycle-runner).

The caller's identity is signed again for each call, so every service applies its own experiment scoping. One
client with kept-alive connections serves all calls: a chain costs two or three loopback round trips.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any
from urllib.parse import quote

import httpx
from prodflow_core.identity import IDENTITY_HEADER, Identity, sign_identity
from prodflow_core.problems import FieldError, Problem

_log = logging.getLogger("prodflow.monitor.provenance")


FINAL_REQUEST_STATES = frozenset({"completed", "failed", "rejected", "cancelled"})
"""A request in one of these states changes no more: its answer can be kept."""
KEPT = 10_000


class Peers:
    """Reads of submitter, request-api and cycle-runner on behalf of a caller.

    What cannot change any more is kept (up to ``KEPT`` of each, oldest dropped first): a campaign's provenance
    fields are fixed at its creation, and a request in a final state has its whole history. A kept answer is only
    served to a caller the monitor has already checked against the job's experiment, which is the campaign's and
    the request's.
    """

    def __init__(
        self, *, submitter_url: str, request_api_url: str, cycle_runner_url: str, secret: str, timeout_s: float
    ) -> None:
        self.urls = {"submitter": submitter_url, "request-api": request_api_url, "cycle-runner": cycle_runner_url}
        self.secret = secret
        self.client = httpx.AsyncClient(timeout=timeout_s)
        self._campaigns: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._requests: OrderedDict[str, dict[str, Any]] = OrderedDict()

    async def aclose(self) -> None:
        await self.client.aclose()

    async def campaign(self, identity: Identity, campaign_id: str) -> dict[str, Any] | None:
        """``GET /api/campaigns/{id}`` of submitter; ``None`` if it knows no such campaign."""
        if (kept := _reuse(self._campaigns, campaign_id)) is not None:
            return kept
        found = await self._get(identity, "submitter", f"/api/campaigns/{quote(campaign_id, safe='')}")
        if found is not None:
            _keep(self._campaigns, campaign_id, found)
        return found

    async def request(self, identity: Identity, request_id: str) -> dict[str, Any] | None:
        """``GET /api/requests/{id}`` of request-api; ``None`` if it knows no such request."""
        if (kept := _reuse(self._requests, request_id)) is not None:
            return kept
        found = await self._get(identity, "request-api", f"/api/requests/{quote(request_id, safe='')}")
        if found is not None and found.get("state") in FINAL_REQUEST_STATES:
            _keep(self._requests, request_id, found)
        return found

    async def cycle_file(self, identity: Identity, params: dict[str, str]) -> dict[str, Any] | None:
        """cycle-runner's provenance of a cycle file; ``None`` if it recorded no such file."""
        return await self._get(identity, "cycle-runner", "/api/cycles/files/provenance", params)

    async def _get(
        self, identity: Identity, service: str, path: str, params: dict[str, str] | None = None
    ) -> dict[str, Any] | None:
        headers = {IDENTITY_HEADER: sign_identity(identity, self.secret)}
        url = self.urls[service].rstrip("/") + path
        try:
            response = await self.client.get(url, params=params, headers=headers)
        except httpx.HTTPError as exc:
            _log.warning("%s unreachable for provenance (%s): %r", service, path, exc)
            raise Problem(502, "Bad Gateway", f"{service} cannot be reached for the provenance chain") from exc
        if response.status_code == 404:
            return None
        if response.status_code in (400, 403, 422):
            raise _relayed(response)
        if response.status_code != 200:
            raise Problem(502, "Bad Gateway", f"{service} answered {response.status_code} for {path}")
        found: dict[str, Any] = response.json()
        return found


def _reuse(kept: OrderedDict[str, dict[str, Any]], key: str) -> dict[str, Any] | None:
    found = kept.get(key)
    if found is not None:
        kept.move_to_end(key)
    return found


def _keep(kept: OrderedDict[str, dict[str, Any]], key: str, value: dict[str, Any]) -> None:
    kept[key] = value
    if len(kept) > KEPT:
        kept.popitem(last=False)


def _relayed(response: httpx.Response) -> Problem:
    """The peer's refusal of the caller's question, passed on as it is (kind and offending fields kept)."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    errors = [FieldError.model_validate(e) for e in body.get("errors") or [] if isinstance(e, dict)]
    return Problem(
        response.status_code,
        str(body.get("title", "Error")),
        str(body.get("detail", "")),
        kind=str(body.get("type", "")).rsplit("/", 1)[-1] or None,
        errors=errors or None,
    )
