"""Consuming ``request.approved``: fetch the request's jobs.json from request-api and submit it as a campaign."""

from __future__ import annotations

import logging

from prodflow_core.events import CloudEvent
from prodflow_core.identity import Identity
from prodflow_core.problems import Problem
from pydantic import ValidationError

from prodflow_submitter.models import SiteRow
from prodflow_submitter.request_api import RequestApiError
from prodflow_submitter.runtime import Runtime
from prodflow_submitter.schemas import CampaignCreate
from prodflow_submitter.submission import submit

CONSUMER = "submitter"
FOLLOWED = ["request.approved"]
_log = logging.getLogger("prodflow.submitter.following")
SUBMITTER_IDENTITY = Identity(user="service:submitter", experiments=frozenset({"*"}), roles=frozenset({"manager"}))


async def on_request_approved(runtime: Runtime, event: CloudEvent) -> None:
    """Submit the approved request's jobs.json; the same event twice makes one campaign.

    Refusals that retrying cannot fix (a 4xx from request-api, an invalid file, an unknown site) are logged and
    the event is passed over; anything else raises, so the follower hands the event over again later.
    """
    data = event.data
    try:
        jobs = await runtime.request_api.jobs_json(str(data["jobs_json"]), data.get("jobs_json_sha256"))
        body = CampaignCreate.model_validate({
            "jobs": jobs, "experiment": event.experiment, "label": data.get("label"),
            "database": data.get("database"), "site": await _site(runtime, data.get("site")),
            "request_id": data.get("request_id"),
        })  # fmt: skip
        key = f"request.approved:{data.get('request_id')}:{data.get('jobs_json_sha256') or event.id}"
        await submit(runtime, body, SUBMITTER_IDENTITY, key=key)
    except RequestApiError as exc:
        if not exc.permanent:
            raise
        _log.error("request %s: jobs.json refused: %s", data.get("request_id"), exc)
    except (ValidationError, KeyError) as exc:
        _log.error("request %s: cannot submit its jobs.json: %s", data.get("request_id"), exc)
    except Problem as exc:
        if exc.status >= 500:
            raise
        _log.error("request %s: submission refused: %s %s", data.get("request_id"), exc.title, exc.detail)


async def _site(runtime: Runtime, preferred: str | None) -> str:
    """The request's site if it is configured here (it is only a preference), else the default site."""
    if preferred:
        async with runtime.sessions() as session:
            if await session.get(SiteRow, preferred) is not None:
                return preferred
        _log.warning("site %r of an approved request is not configured; using %r", preferred,
                     runtime.settings.default_site)  # fmt: skip
    return runtime.settings.default_site
