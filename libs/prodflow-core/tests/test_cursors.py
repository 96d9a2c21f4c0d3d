"""Opaque cursors: they open only for the scope that sealed them, reveal nothing, and expire."""

from __future__ import annotations

import base64

import pytest
from prodflow_core.cursors import CursorCodec, CursorScope, codec_for
from prodflow_core.identity import Identity
from prodflow_core.problems import Problem

LEGEND = Identity("alice", frozenset({"legend"}), frozenset({"reader"}))
POSITION = ["data-production", ["legend", "running", "job:L1:geant4:7:0:p1"]]


def _scope(identity: Identity = LEGEND, **filters: object) -> CursorScope:
    return CursorScope.of("monitor.jobs", identity, **{"label": None, "status": "running", **filters})


def _refused(codec: CursorCodec, cursor: str, scope: CursorScope, *, now: float | None = None) -> Problem:
    with pytest.raises(Problem) as caught:
        codec.open(cursor, scope, now=now)
    assert caught.value.status == 400
    return caught.value


def test_a_cursor_opens_to_its_position_for_the_same_scope_on_any_replica() -> None:
    cursor = CursorCodec("shared-secret").seal(_scope(), POSITION)
    assert CursorCodec("shared-secret").open(cursor, _scope()) == POSITION
    assert codec_for("shared-secret") is codec_for("shared-secret")


def test_a_cursor_reveals_no_id_and_two_cursors_of_one_position_differ() -> None:
    codec = CursorCodec("shared-secret")
    cursor = codec.seal(_scope(), POSITION)
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    for secret in (b"job:L1:geant4:7", b"geant4", b"legend", b"running", b"data-production"):
        assert secret not in raw and secret.decode() not in cursor
    assert codec.seal(_scope(), POSITION) != cursor  # a fresh nonce each time


def test_an_altered_cursor_is_a_400_problem() -> None:
    codec = CursorCodec("shared-secret")
    cursor = codec.seal(_scope(), POSITION)
    raw = bytearray(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    for at in (0, 1, len(raw) // 2, len(raw) - 1):
        tampered = bytearray(raw)
        tampered[at] ^= 0x01
        forged = base64.urlsafe_b64encode(bytes(tampered)).rstrip(b"=").decode()
        assert _refused(codec, forged, _scope()).body()["errors"][0]["field"] == "query.cursor"
    for garbage in ("", "%%%", "garbage", "A" * 5000, cursor[:20]):
        _refused(codec, garbage, _scope())
    forged = base64.urlsafe_b64encode(b'{"db":"data-production","key":["snoplus"]}').decode()
    _refused(codec, forged, _scope())  # the old plain cursors are not accepted


def test_a_cursor_replayed_on_another_query_or_by_another_identity_is_refused() -> None:
    codec = CursorCodec("shared-secret")
    cursor = codec.seal(_scope(), POSITION)
    _refused(codec, cursor, _scope(status="failed"))
    _refused(codec, cursor, _scope(label="L2"))
    _refused(codec, cursor, CursorScope.of("monitor.labels", LEGEND, label=None, status="running"))
    _refused(codec, cursor, _scope(Identity("bob", frozenset({"legend"}), frozenset({"reader"}))))
    _refused(codec, cursor, _scope(Identity("alice", frozenset({"legend", "snoplus"}), frozenset({"reader"}))))
    _refused(CursorCodec("another-secret"), cursor, _scope())


def test_a_cursor_expires() -> None:
    codec = CursorCodec("shared-secret", ttl_s=60)
    cursor = codec.seal(_scope(), POSITION, now=1_000_000)
    assert codec.open(cursor, _scope(), now=1_000_059) == POSITION
    assert "expired" in _refused(codec, cursor, _scope(), now=1_000_061).detail
