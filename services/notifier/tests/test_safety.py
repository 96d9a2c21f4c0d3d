"""Destinations: refused ranges at creation, DNS rebinding refused at connect time, the allow-list, capped bodies."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from notifier_support import ADMIN, Receiver, events_db, flow_events, make_settings, running, wait_until
from prodflow_core.couch.client import CouchClient
from prodflow_notifier import safety
from prodflow_notifier.safety import DestinationPolicy, RefusedDestination, read_capped
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "224.0.0.1", "0.0.0.0", "240.0.0.1",
     "100.64.0.1", "::1", "fe80::1", "fc00::1", "::ffff:127.0.0.1", "ff02::1", "::"],
)  # fmt: skip
def test_refused_ranges(address: str) -> None:
    with pytest.raises(RefusedDestination):
        DestinationPolicy().check_address("receiver.example", address)


def test_public_addresses_and_the_allow_list_pass() -> None:
    DestinationPolicy().check_address("receiver.example", "93.184.216.34")
    DestinationPolicy().check_address("receiver.example", "2606:2800:220:1:248:1893:25c8:1946")
    allowed = DestinationPolicy.of(["10.1.0.0/16"], ["hooks.internal"])
    allowed.check_address("receiver.example", "10.1.2.3")
    allowed.check_address("hooks.internal", "192.168.7.7")
    with pytest.raises(RefusedDestination):
        allowed.check_address("receiver.example", "10.2.0.1")


async def test_a_url_to_a_refused_range_is_rejected_at_creation(tmp_path: Path, couch_url: str) -> None:
    async with CouchClient(couch_url) as couch:
        db = await events_db(couch)
        receiver = Receiver()
        settings = make_settings(tmp_path, couch_url, db.name, allowed_networks=[])  # loopback not allowed
        async with running(settings) as notifier:
            for url in (receiver.url, "http://10.0.0.7/hook", "http://[::1]:9/hook", "http://169.254.169.254/"):
                body = {"url": url, "event_types": ["org.prodflow.*"], "experiments": ["snoplus"]}
                answer = await notifier.client.post("/api/webhooks", json=body, headers=ADMIN)
                assert answer.status_code == 422, answer.text
                assert answer.headers["content-type"].startswith("application/problem+json")
                assert answer.json()["type"].endswith("/refused-destination")
            for url in (
                "ftp://example.org/x",
                "http://user:pw@example.org/x",
                "http://no-such-host.invalid/x",
                "https://" + "0" * 300 + "/x",  # not a host name (a label over 63 characters)
                "http://[::1/x",
                "http://example.org:99999/x",
            ):
                body = {"url": url, "event_types": ["org.prodflow.*"], "experiments": ["snoplus"]}
                assert (await notifier.client.post("/api/webhooks", json=body, headers=ADMIN)).status_code == 422
            assert (await notifier.client.get("/api/webhooks", headers=ADMIN)).json()["items"] == []
        await db.drop()


async def test_a_name_whose_dns_changes_to_a_refused_address_is_refused_at_connect_time(
    tmp_path: Path, couch_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    dns = {"hooks.example.org": ["93.184.216.34"]}

    async def resolve(host: str, port: int) -> list[str]:
        return dns[host]

    monkeypatch.setattr(safety, "resolve_host", resolve)
    async with CouchClient(couch_url) as couch:
        db = await events_db(couch)
        receiver = Receiver()
        with receiver.serving():
            settings = make_settings(tmp_path, couch_url, db.name, allowed_networks=[])
            async with running(settings) as notifier:
                url = f"http://hooks.example.org:{receiver.port}/hook"
                made = await notifier.subscribe(url)  # public at creation
                dns["hooks.example.org"] = ["127.0.0.1"]  # rebound to loopback, where the receiver listens
                await notifier.events.publish(flow_events()[0])
                path = f"/api/webhooks/{made['id']}/deliveries"

                async def attempted() -> bool:
                    return bool((await notifier.client.get(path, headers=ADMIN)).json()["items"])

                await wait_until(attempted, what="an attempt")
                item = (await notifier.client.get(path, headers=ADMIN)).json()["items"][-1]
        assert item["status_code"] is None and "loopback" in item["error"]
        assert receiver.ids() == []  # no connection reached the receiver
        await db.drop()


async def test_only_64_kib_of_an_answer_are_read() -> None:
    async def big(_request: Request) -> Response:
        return Response(b"x" * (1024 * 1024))

    transport = httpx.ASGITransport(app=Starlette(routes=[Route("/", big)]))
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://receiver") as client,
        client.stream("GET", "/") as response,
    ):
        assert len(await read_capped(response)) == 64 * 1024
