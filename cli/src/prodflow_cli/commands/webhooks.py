"""``prodflow webhook create|list|show|rotate-secret|deliveries|replay|delete``: webhook subscriptions."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from prodflow_cli.client import segment
from prodflow_cli.session import JsonOpt, command, gateway, output

app = typer.Typer(help="Webhooks: events pushed to a URL, signed (Standard Webhooks).", no_args_is_help=True)

COLUMNS = [
    ("id", "id"),
    ("url", "url"),
    ("event_types", "types"),
    ("experiments", "experiments"),
    ("active", "active"),
    ("state", "state"),
    ("pending", "pending"),
]
DELIVERY_COLUMNS = [
    ("at", "at"),
    ("event_id", "event"),
    ("attempt", "attempt"),
    ("status_code", "status"),
    ("latency_ms", "ms"),
    ("error", "error"),
]
WebhookId = Annotated[str, typer.Argument(help="The webhook's id (wh-…).")]


def _path(webhook_id: str, tail: str = "") -> str:
    return f"/api/webhooks/{segment(webhook_id)}{tail}"


@command(app, "create")
def create(
    url: Annotated[str, typer.Argument(help="The receiver's http(s) URL.")],
    event_type: Annotated[
        list[str], typer.Option("--type", "-t", help="Event type or glob, e.g. org.prodflow.job.* (repeat).")
    ],
    experiment: Annotated[
        list[str] | None, typer.Option("--experiment", "-e", help="Experiment (repeat; none = all, admins).")
    ] = None,
    label: Annotated[list[str] | None, typer.Option("--label", "-l", help="Only this label's events (repeat).")] = None,
    description: Annotated[str, typer.Option(help="What the webhook is for.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Subscribe a URL; its signing secret is shown this once only."""
    body: dict[str, Any] = {
        "url": url,
        "event_types": event_type,
        "experiments": experiment or [],
        "labels": label or [],
        "description": description,
    }
    created = gateway().post("/api/webhooks", body)
    out = output(as_json)
    if out.as_json:
        out.data(created)
        return
    out.say(f"webhook {created['id']} → {created['url']}")
    out.say(created["secret"])
    out.note("the signing secret above is shown only now: give it to the receiver")


@command(app, "list")
def list_webhooks(as_json: JsonOpt = False) -> None:
    """The webhooks you manage (never their secrets)."""
    output(as_json).table(gateway().get("/api/webhooks")["items"], COLUMNS)


@command(app, "show")
def show(webhook_id: WebhookId, as_json: JsonOpt = False) -> None:
    """One webhook, with its state (ok or failing) and how many events wait."""
    output(as_json).table([gateway().get(_path(webhook_id))], COLUMNS)


@command(app, "rotate-secret")
def rotate_secret(
    webhook_id: WebhookId,
    overlap_s: Annotated[int | None, typer.Option(help="Seconds the old secret keeps signing (default 24 h).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """A new signing secret; deliveries carry both signatures during the overlap."""
    rotated = gateway().post(_path(webhook_id, "/rotate-secret"), {"overlap_s": overlap_s})
    out = output(as_json)
    if out.as_json:
        out.data(rotated)
        return
    out.say(rotated["secret"])
    until = rotated["previous_valid_until"]
    out.note(f"the old secret signs too until {until}" if until else "the old secret no longer signs")


@command(app, "deliveries")
def deliveries(
    webhook_id: WebhookId,
    limit: Annotated[int, typer.Option(help="How many attempts, newest first.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """The last delivery attempts: event, attempt, status, latency, error."""
    items = gateway().get(_path(webhook_id, "/deliveries"), {"limit": limit})["items"]
    output(as_json).table(items, DELIVERY_COLUMNS)


@command(app, "replay")
def replay(
    webhook_id: WebhookId,
    from_event: Annotated[str, typer.Option("--from", help="The first event id to deliver again.")],
    as_json: JsonOpt = False,
) -> None:
    """Deliver again every matching event from one on, in order (also resumes a failing webhook)."""
    done = gateway().post(_path(webhook_id, "/replay"), {"from_event_id": from_event})
    out = output(as_json)
    if out.as_json:
        out.data(done)
    else:
        out.say(f"{done['queued']} events queued for {webhook_id}")


@command(app, "delete")
def delete(webhook_id: WebhookId, as_json: JsonOpt = False) -> None:
    """Delete a webhook and what waits for it."""
    gateway().delete(_path(webhook_id))
    out = output(as_json)
    if out.as_json:
        out.data({"deleted": webhook_id})
    else:
        out.say(f"deleted {webhook_id}")
