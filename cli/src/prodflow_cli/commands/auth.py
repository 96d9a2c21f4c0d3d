"""``prodflow login``, ``logout`` and ``whoami``."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from prodflow_cli import config
from prodflow_cli.client import Gateway
from prodflow_cli.errors import CliError
from prodflow_cli.session import JsonOpt, command, gateway, output, state

app = typer.Typer()

WHOAMI_FIELDS = [("user", "user"), ("experiments", "experiments"), ("roles", "roles"), ("token_id", "token")]


def _token_from(token: str | None, data_dir: Path | None) -> str:
    if data_dir is not None:
        path = data_dir / "gateway-admin-token"
        if not path.exists():
            raise CliError(f"no admin token in {data_dir} (it is written on the first 'prodflow up' only)")
        return path.read_text(encoding="utf-8").strip()
    if token == "-":  # noqa: S105 - "-" means stdin, not a password
        return sys.stdin.readline().strip()
    if token:
        return token
    return str(typer.prompt("Token", hide_input=True)).strip()


def _url_from(data_dir: Path | None) -> str | None:
    """The gateway URL a 'prodflow up' wrote in ``data_dir``, unless PRODFLOW_URL is set."""
    if data_dir is None or os.environ.get("PRODFLOW_URL"):
        return None
    path = data_dir / config.GATEWAY_URL_FILE
    if not path.exists():
        return None
    return path.read_text(encoding="utf-8").strip() or None


@command(app)
def login(
    url: Annotated[str | None, typer.Option(help="Gateway URL (default: PRODFLOW_URL or the saved one).")] = None,
    token: Annotated[str | None, typer.Option(help="API token; '-' reads it from stdin; prompted if absent.")] = None,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Use the admin token of a local 'prodflow up' data folder.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check a token against the gateway and save it (with the URL) in the config file.

    With --data-dir, the token and (unless --url or PRODFLOW_URL says otherwise) the gateway URL are those the
    'prodflow up' on that data folder wrote.
    """
    current = config.resolve(url or state().url or _url_from(data_dir), None)
    secret = _token_from(token, data_dir)
    if not secret:
        raise CliError("empty token")
    candidate = config.Config(url=current.url, token=secret)
    with Gateway(candidate) as client:
        me: dict[str, Any] = client.get("/api/auth/whoami")
    path = config.save(candidate)
    out = output(as_json)
    if out.as_json:
        out.data({**me, "url": candidate.url, "config": str(path)})
    else:
        out.say(f"logged in to {candidate.url} as {me['user']} ({', '.join(me['roles'])}); saved in {path}")


@command(app)
def logout(as_json: JsonOpt = False) -> None:
    """Forget the saved token (PRODFLOW_TOKEN, if set, still applies)."""
    path = config.config_path()
    removed = config.forget(path)
    out = output(as_json)
    if out.as_json:
        out.data({"removed": removed, "config": str(path)})
    else:
        out.say(f"removed {path}" if removed else f"nothing saved at {path}")


@command(app)
def whoami(as_json: JsonOpt = False) -> None:
    """Who the gateway thinks you are: user, experiments, roles."""
    me = gateway().get("/api/auth/whoami")
    out = output(as_json)
    out.fields({**me, "url": state().url or config.resolve().url}, [*WHOAMI_FIELDS, ("url", "gateway")])
