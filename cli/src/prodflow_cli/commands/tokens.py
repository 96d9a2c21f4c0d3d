"""``prodflow tokens create|list|revoke``: API tokens (admin)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer

from prodflow_cli.client import segment
from prodflow_cli.session import JsonOpt, command, gateway, output

app = typer.Typer(help="API tokens (admin): create, list, revoke.", no_args_is_help=True)

COLUMNS = [
    ("id", "id"),
    ("user", "user"),
    ("experiments", "experiments"),
    ("roles", "roles"),
    ("description", "description"),
    ("created_at", "created"),
    ("expires_at", "expires"),
    ("revoked_at", "revoked"),
]


@command(app, "create")
def create(
    user: Annotated[str, typer.Argument(help="Who the token is for.")],
    experiment: Annotated[list[str], typer.Option("--experiment", "-e", help="Experiment (repeat; '*' = all).")],
    role: Annotated[list[str], typer.Option("--role", "-r", help="reader, requester, manager or admin (repeat).")],
    description: Annotated[str, typer.Option(help="What the token is for.")] = "",
    expires: Annotated[datetime | None, typer.Option(help="Expiry time (ISO 8601).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a token; its secret is shown this once only."""
    body: dict[str, Any] = {"user": user, "experiments": experiment, "roles": role, "description": description}
    if expires is not None:
        body["expires_at"] = expires.isoformat()
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
