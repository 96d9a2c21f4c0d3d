"""``prodflow health [SERVICE]``: is the system up?"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from prodflow_cli.client import segment
from prodflow_cli.errors import ApiError
from prodflow_cli.exits import ExitCode
from prodflow_cli.session import JsonOpt, command, gateway, output

app = typer.Typer()

SERVICES = ("request-api", "submitter", "monitor", "cycle-runner")


def _rows(health: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [{"part": "gateway", "status": health.get("status"), "detail": ""}]
    for name, check in (health.get("checks") or {}).items():
        rows.append(
            {"part": name, "status": "ok" if check == "ok" else "down", "detail": "" if check == "ok" else check}
        )
    for name, service in (health.get("services") or {}).items():
        detail = service.get("detail") or ", ".join(
            f"{k}={v}" for k, v in (service.get("checks") or {}).items() if v != "ok"
        )
        rows.append({"part": name, "status": service.get("status"), "detail": detail})
    return rows


@command(app)
def health(
    service: Annotated[str | None, typer.Argument(help=f"One service: {', '.join(SERVICES)}.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The gateway, CouchDB and every service; exit code 10 if any is not ok."""
    client = gateway()
    try:
        path = "/healthz" if service is None else f"/api/health/{segment(service)}"
        body = client.get(path, auth=service is not None)
    except ApiError as exc:
        if exc.status != 503 or "status" not in exc.problem:
            raise
        body = exc.problem  # a health document that says "degraded"
    out = output(as_json)
    if out.as_json:
        out.data(body)
    elif service is None:
        out.table(_rows(body), [("part", "part"), ("status", "status"), ("detail", "detail")])
    else:
        out.fields(body, [(key, key) for key in body])
    if body.get("status") != "ok":
        raise typer.Exit(int(ExitCode.UNHEALTHY))
