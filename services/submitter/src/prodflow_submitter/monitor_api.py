"""What submitter asks monitor over HTTP: the .exactly of an archived label (its documents left the database)."""

from __future__ import annotations

import logging
from urllib.parse import quote

import httpx
from prodflow_core.identity import IDENTITY_HEADER, sign_identity
from prodflow_core.problems import Problem

from prodflow_submitter.request_api import SERVICE_IDENTITY

_log = logging.getLogger("prodflow.submitter.monitor_api")


async def archived_exactly_lines(
    monitor_url: str, secret: str, label: str, pass_number: int | None, *, timeout_s: float = 30.0
) -> list[tuple[str, int, int]]:
    """The ``(module, run, pass)`` entries monitor serves for ``label`` from its archive (``[]`` if it knows no
    job of the label); a 502 problem if monitor cannot be asked."""
    path = f"{monitor_url.rstrip('/')}/api/grab/{quote(label, safe='')}/exactly"
    params = {} if pass_number is None else {"pass": str(pass_number)}
    headers = {IDENTITY_HEADER: sign_identity(SERVICE_IDENTITY, secret)}
    try:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            response = await client.get(path, params=params, headers=headers)
    except httpx.HTTPError as exc:
        _log.warning("monitor unreachable for the .exactly of %s: %r", label, exc)
        raise Problem(502, "Bad Gateway", "monitor, which keeps archived labels, cannot be reached") from exc
    if response.status_code == 404:
        return []
    if response.status_code != 200:
        raise Problem(502, "Bad Gateway", f"monitor answered {response.status_code} for the label's .exactly")
    entries = []
    for line in response.text.splitlines():
        module, run, pass_text = line.split(" ")
        entries.append((module, int(run), int(pass_text)))
    return entries
