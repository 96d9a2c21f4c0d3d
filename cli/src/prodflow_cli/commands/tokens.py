"""``prodflow tokens create|list|revoke|rotate``: API tokens (admin; anyone may rotate the token they use)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer
from prodflow_core.durations import parse_duration

from prodflow_cli.client import segment
from prodflow_cli.session import JsonOpt, command, gateway, output

app = typer.Typer(help="API tokens (admin): create, list, revoke, rotate.", no_args_is_help=True)

COLUMNS = [
    ("id", "id"),
    ("user", "user"),
    ("experiments", "experiments"),
    ("roles", "roles"),
    ("description", "description"),
    ("created_at", "created"),
    ("expires_at", "expires"),
    ("last_used_at", "last used"),
    ("revoked_at", "revoked"),
]


@command(app, "create")
def create(
    user: Annotated[str, typer.Argument(help="Who the token is for.")],
    experiment: Annotated[list[str], typer.Option("--experiment", "-e", help="Experiment (repeat; '*' = all).")],
    role: Annotated[list[str], typer.Option("--role", "-r", help="reader, requester, manager or admin (repeat).")],
    description: Annotated[str, typer.Option(help="What the token is for.")] = "",
    expires: Annotated[datetime | None, typer.Option(help="Expiry time (ISO 8601).")] = None,
    expires_in: Annotated[
        str | None, typer.Option(help="Lifetime: seconds or 30d, 12h, ... (default: the gateway's, 90 days).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a token; its secret is shown this once only."""
    body: dict[str, Any] = {"user": user, "experiments": experiment, "roles": role, "description": description}
    if expires is not None and expires_in is not None:
        raise typer.BadParameter("give --expires or --expires-in, not both")
    if expires is not None:
        body["expires_at"] = expires.isoformat()
    if expires_in is not None:
        try:
            body["expires_in"] = int(parse_duration(expires_in).total_seconds())
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--expires-in") from exc
    created = gateway().post("/api/auth/tokens", body)
    out = output(as_json)
    if out.as_json:
        out.data(created)
        return
    out.say(f"token {created['id']} for {created['user']} ({', '.join(created['roles'])})")
    out.say(created["token"])
    out.note("the secret above is shown only now: store it safely")


@command(app, "list")
def list_tokens(
    user: Annotated[str | None, typer.Option(help="Only this user's tokens.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Every token (never their secrets)."""
    tokens = gateway().get("/api/auth/tokens", {"user": user})
    output(as_json).table(tokens, COLUMNS)


@command(app, "revoke")
def revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id (not its secret).")], as_json: JsonOpt = False
) -> None:
    """Revoke a token: it stops working at once."""
    revoked = gateway().delete(f"/api/auth/tokens/{segment(token_id)}")
    out = output(as_json)
    if out.as_json:
        out.data(revoked)
    else:
        out.say(f"revoked {revoked['id']} ({revoked['user']}) at {revoked['revoked_at']}")


@command(app, "rotate")
def rotate(
    token_id: Annotated[str, typer.Argument(help="The token's id (not its secret).")], as_json: JsonOpt = False
) -> None:
    """A new secret for a token (same user, roles, experiments, expiry); the old secret stops working at once."""
    rotated = gateway().post(f"/api/auth/tokens/{segment(token_id)}/rotate")
    out = output(as_json)
    if out.as_json:
        out.data(rotated)
        return
    out.say(f"token {rotated['id']} of {rotated['user']} has a new secret:")
    out.say(rotated["token"])
    out.note("the secret above is shown only now and the old one no longer works: store it safely")
