"""``prodflow webhook …`` through a real gateway to a real notifier, delivering to a real receiver."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cli_support import ADMIN_TOKEN, Cli
from prodflow_cli.exits import ExitCode
from prodflow_core.couch.server import free_port
from prodflow_core.events import make_event
from prodflow_core.testing import serving
from prodflow_gateway.app import create_app as create_gateway
from prodflow_gateway.settings import GatewaySettings
from prodflow_notifier.app import create_app as create_notifier
from prodflow_notifier.settings import NotifierSettings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class WebhookStack:
    url: str
    receiver: str
    got: list[str]
    stream: str
    """The event stream's URL on the CouchDB-API server."""


@pytest.fixture(scope="module")
def webhook_stack(couch_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebhookStack]:
    """A gateway with a notifier behind it, and a receiver."""
    events = f"events-{uuid.uuid4().hex[:8]}"
    got: list[str] = []

    async def hook(request: Request) -> Response:
        got.append(request.headers["webhook-id"])
        return Response(status_code=204)

    notifier = NotifierSettings(
        couchdb_url=couch_url,
        events_db=events,
        data_dir=tmp_path_factory.mktemp("notifier"),
        log_json=False,
        allowed_networks=["127.0.0.1/32"],
        poll_s=0.2,
        events_longpoll_s=0.5,
    )
    with (
        serving(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as receiver,
        serving(create_notifier(notifier)) as notifier_url,
    ):
        deadline = time.monotonic() + 20
        while httpx.get(f"{notifier_url}/healthz").status_code != 200:  # its follower has read the stream
            assert time.monotonic() < deadline
            time.sleep(0.05)
        settings = GatewaySettings(
            couchdb_url=couch_url,
            data_dir=tmp_path_factory.mktemp("gateway"),
            log_json=False,
            events_db=events,
            bootstrap_token=ADMIN_TOKEN,
            request_api_url=f"http://127.0.0.1:{free_port()}",
            submitter_url=f"http://127.0.0.1:{free_port()}",
            monitor_url=f"http://127.0.0.1:{free_port()}",
            cycle_runner_url=f"http://127.0.0.1:{free_port()}",
            notifier_url=notifier_url,
        )
        with serving(create_gateway(settings)) as url:
            yield WebhookStack(url, f"{receiver}/hook", got, f"{couch_url}/{events}")


def test_webhook_commands(webhook_stack: WebhookStack, tmp_path: Path) -> None:
    url, receiver, got = webhook_stack.url, webhook_stack.receiver, webhook_stack.got
    cli = Cli(url=url, config=tmp_path / "config.json")
    created = cli("webhook", "create", receiver, "-t", "org.prodflow.job.*", "-e", "snoplus", "--json")
    assert created.code == 0, created.stderr
    made = created.json()
    assert made["secret"].startswith("whsec_")
    listed = cli("webhook", "list", "--json").json()
    assert [w["id"] for w in listed] == [made["id"]] and "secret" not in listed[0]
    assert made["id"] in cli("webhook", "show", made["id"]).stdout

    event = make_event("job.completed", "/services/monitor", experiment="snoplus", data={"label": "2026-12_Hello_v1"})
    assert httpx.put(f"{webhook_stack.stream}/{event.id}", json=event.document()).status_code == 201
    deadline = time.monotonic() + 20
    while got != [event.id]:
        assert time.monotonic() < deadline, got
        time.sleep(0.05)

    attempts = cli("webhook", "deliveries", made["id"], "--json").json()
    assert [(a["event_id"], a["status_code"]) for a in attempts] == [(event.id, 204)]
    replayed = cli("webhook", "replay", made["id"], "--from", event.id, "--json")
    assert replayed.code == 0 and replayed.json() == {"queued": 1}
    rotated = cli("webhook", "rotate-secret", made["id"], "--overlap-s", "60", "--json").json()
    assert rotated["secret"] != made["secret"] and rotated["previous_valid_until"]
    assert cli("webhook", "replay", made["id"], "--from", "evt-NOSUCH").code == ExitCode.NOT_FOUND
    assert cli("webhook", "delete", made["id"]).code == 0
    assert cli("webhook", "show", made["id"]).code == ExitCode.NOT_FOUND
