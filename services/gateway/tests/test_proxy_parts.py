"""The proxy's per-request shortcuts: reused identity headers, one pool of connections per service."""

from __future__ import annotations

from prodflow_core.identity import Identity, verify_identity
from prodflow_gateway.proxy import IdentityHeaders
from prodflow_gateway.upstreams import Upstreams

BOB = Identity("bob", frozenset({"snoplus"}), frozenset({"reader"}), token_id="tok-1")


def test_an_identity_header_is_reused_for_half_its_lifetime_and_stays_valid() -> None:
    headers = IdentityHeaders("secret", ttl_s=60)
    first = headers.of(BOB)
    assert headers.of(BOB) == first
    assert verify_identity(first, "secret") == BOB
    other = Identity("ann", frozenset({"*"}), frozenset({"admin"}))
    assert verify_identity(headers.of(other), "secret") == other


def test_an_identity_header_past_half_its_lifetime_is_signed_again() -> None:
    headers = IdentityHeaders("secret", ttl_s=0)  # reusable for 0 s
    first = headers.of(BOB)
    assert headers._signed[BOB][1] == first
    headers._signed[BOB] = (0.0, "stale")  # as if its reuse time had passed
    assert headers.of(BOB) != "stale"


async def test_each_service_has_one_pool_made_at_first_use() -> None:
    upstreams = Upstreams(
        {"monitor": "http://127.0.0.1:1/", "submitter": "http://127.0.0.1:2"},
        timeout_s=1.0,
        connect_timeout_s=1.0,
        connections=2,
    )
    try:
        monitor = upstreams.client("monitor")
        assert upstreams.client("monitor") is monitor
        assert upstreams.client("submitter") is not monitor
        assert monitor.connections == 2 and monitor.prefix == b""
        assert upstreams.base_urls == {"monitor": "http://127.0.0.1:1", "submitter": "http://127.0.0.1:2"}
    finally:
        await upstreams.aclose()
