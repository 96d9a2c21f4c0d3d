"""Opaque page cursors: where a listing stops, sealed so the client can only hand it back.

A cursor is ``base64url(version | nonce | AES-GCM(position, expiry))``. The position (e.g. the last index key
shown, which holds a job id) is encrypted, so a cursor reveals nothing; it is authenticated together with its
:class:`CursorScope` (the listing, its filters, the caller's user and experiments) as associated data, so a
cursor altered, replayed on another query or by another identity, or past its expiry is refused with a 400
problem. The key is derived (HKDF-SHA256, a fixed label) from the identity secret every replica of a service
already shares, so any replica opens the cursors of any other, and a cursor key never signs an identity.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from fastapi import Depends, Request

from prodflow_core.identity import Identity
from prodflow_core.problems import FieldError, Problem

CURSOR_TTL_S = 24 * 3600
"""How long a cursor stays valid after the page that gave it."""
MAX_CURSOR_CHARS = 4096
"""Longer cursors are refused before any decoding."""

_KEY_LABEL = b"prodflow listing cursor key v1"
_VERSION = b"\x01"
_NONCE_BYTES = 12


@dataclass(frozen=True)
class CursorScope:
    """What a cursor is bound to: the listing, its filters (page size aside) and who asked."""

    listing: str
    """The listing's name, e.g. ``monitor.jobs``."""
    user: str
    experiments: tuple[str, ...]
    filters: Mapping[str, Any] = field(default_factory=dict)
    """The query's filters as JSON values (``None`` for a filter not given)."""

    @classmethod
    def of(cls, listing: str, identity: Identity, **filters: Any) -> CursorScope:
        """The scope of ``listing`` asked by ``identity`` with ``filters``."""
        return cls(listing, identity.user, tuple(sorted(identity.experiments)), filters)

    def associated_data(self) -> bytes:
        """The bytes the cursor's authentication covers besides its sealed content."""
        bound = [self.listing, self.user, list(self.experiments), dict(self.filters)]
        return json.dumps(bound, sort_keys=True, separators=(",", ":")).encode()


def bad_cursor(detail: str) -> Problem:
    """The 400 problem of a cursor that is not this listing's (or this caller's), or has expired."""
    return Problem(
        400,
        "Bad Request",
        detail,
        kind="bad-cursor",
        errors=[FieldError(field="query.cursor", message=detail)],
    )


class CursorCodec:
    """Seals positions into cursors and opens them again (see the module docstring)."""

    def __init__(self, secret: str, *, ttl_s: float = CURSOR_TTL_S) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_KEY_LABEL).derive(secret.encode())
        self._aead = AESGCM(key)
        self.ttl_s = ttl_s

    def seal(self, scope: CursorScope, position: Any, *, now: float | None = None) -> str:
        """A cursor for ``position`` (any JSON value) in ``scope``, valid for ``ttl_s`` from ``now``."""
        expires = int((time.time() if now is None else now) + self.ttl_s)
        content = json.dumps({"p": position, "e": expires}, separators=(",", ":")).encode()
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, content, _VERSION + scope.associated_data())
        return base64.urlsafe_b64encode(_VERSION + nonce + sealed).rstrip(b"=").decode()

    def open(self, cursor: str, scope: CursorScope, *, now: float | None = None) -> Any:
        """The position sealed in ``cursor``; a 400 problem unless it was sealed for ``scope`` and is unexpired."""
        raw = _unb64(cursor)
        if raw is None or raw[:1] != _VERSION or len(raw) <= 1 + _NONCE_BYTES:
            raise bad_cursor("the cursor is not one this service gave")
        nonce, sealed = raw[1 : 1 + _NONCE_BYTES], raw[1 + _NONCE_BYTES :]
        try:
            content = json.loads(self._aead.decrypt(nonce, sealed, _VERSION + scope.associated_data()))
        except InvalidTag as exc:
            raise bad_cursor("the cursor was not given for this query and caller, or was altered") from exc
        if int(content["e"]) < (time.time() if now is None else now):
            raise bad_cursor("the cursor has expired: list again from the first page")
        return content["p"]


def _unb64(cursor: str) -> bytes | None:
    if len(cursor) > MAX_CURSOR_CHARS:
        return None
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        return None


@functools.lru_cache(maxsize=8)
def codec_for(secret: str) -> CursorCodec:
    """The codec of a service whose replicas share ``secret`` (derived once per secret)."""
    return CursorCodec(secret)


async def _request_codec(request: Request) -> CursorCodec:
    return codec_for(request.app.state.identity_secret)


Cursors = Annotated[CursorCodec, Depends(_request_codec)]
"""FastAPI dependency: the service's cursor codec, keyed from ``app.state.identity_secret``."""
