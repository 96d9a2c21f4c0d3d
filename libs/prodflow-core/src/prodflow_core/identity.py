"""The identity the gateway forwards to services: signed, short-lived, checked by ``require_role``.

Header format: ``base64url(json payload) "." base64url(HMAC-SHA256(secret, payload))``. The payload carries the
user, experiments (``*`` = all), roles and an expiry time in seconds since the epoch.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request

from prodflow_core.problems import Problem

IDENTITY_HEADER = "X-Prodflow-Identity"
ROLES = ("reader", "requester", "manager", "admin")
DEFAULT_TTL_S = 60


class IdentityError(Exception):
    """The identity header is missing, malformed, forged or expired."""


@dataclass(frozen=True)
class Identity:
    """Who is calling: a user, the experiments they may touch, and their roles."""

    user: str
    experiments: frozenset[str] = field(default_factory=frozenset)
    roles: frozenset[str] = field(default_factory=frozenset)
    token_id: str | None = None

    def has_role(self, role: str) -> bool:
        """True if one of the roles is ``role`` or ranks above it (admin > manager > requester > reader)."""
        rank = ROLES.index(role)
        return any(r in ROLES and ROLES.index(r) >= rank for r in self.roles)

    def can_access(self, experiment: str) -> bool:
        """True if the identity is bound to ``experiment`` (or to all experiments)."""
        return "*" in self.experiments or experiment in self.experiments

    def require_experiment(self, experiment: str) -> None:
        """Raise a 403 problem unless the identity may act for ``experiment``."""
        if not self.can_access(experiment):
            raise Problem(
                403, "Forbidden", f"{self.user!r} may not act for experiment {experiment!r}", kind="forbidden"
            )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, payload: str) -> str:
    return _b64(hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest())


def sign_identity(identity: Identity, secret: str, ttl_s: int = DEFAULT_TTL_S, now: float | None = None) -> str:
    """The header value that carries ``identity`` for ``ttl_s`` seconds."""
    issued = time.time() if now is None else now
    payload = _b64(
        json.dumps(
            {
                "sub": identity.user,
                "exp_set": sorted(identity.experiments),
                "roles": sorted(identity.roles),
                "tid": identity.token_id,
                "exp": int(issued + ttl_s),
            },
            separators=(",", ":"),
        ).encode()
    )
    return f"{payload}.{_mac(secret, payload)}"


def verify_identity(header: str, secret: str, now: float | None = None) -> Identity:
    """Check the signature and expiry of a header value and return the identity it carries."""
    identity, expires = _verified(header, secret)
    if expires < (time.time() if now is None else now):
        raise IdentityError("identity has expired")
    return identity


def _verified(header: str, secret: str) -> tuple[Identity, int]:
    """The identity a header value carries and its expiry (seconds since the epoch), once its signature matches."""
    payload, _, mac = header.partition(".")
    if not payload or not mac or not hmac.compare_digest(mac, _mac(secret, payload)):
        raise IdentityError("identity signature does not match")
    try:
        claims: dict[str, Any] = json.loads(_unb64(payload))
    except ValueError as exc:
        raise IdentityError("identity payload is not JSON") from exc
    identity = Identity(
        user=str(claims["sub"]),
        experiments=frozenset(claims.get("exp_set", [])),
        roles=frozenset(claims.get("roles", [])),
        token_id=claims.get("tid"),
    )
    return identity, int(claims.get("exp", 0))


_VERIFIED: dict[tuple[str, str], tuple[Identity, int]] = {}
"""Header values whose signature matched, with their expiry: the gateway sends the same value for half its
lifetime, and an HMAC and a JSON parse per request were ~2.5 % of a service's CPU on a job list."""


def _secret_of(request: Request) -> str:
    secret: str = request.app.state.identity_secret
    return secret


async def current_identity(request: Request) -> Identity:
    """FastAPI dependency: the verified identity of the caller, or a 401 problem."""
    header = request.headers.get(IDENTITY_HEADER)
    if not header:
        raise Problem(401, "Unauthenticated", "call through the gateway with a bearer token", kind="unauthenticated")
    secret = _secret_of(request)
    try:
        found = _VERIFIED.get((secret, header))
        if found is None:
            found = _verified(header, secret)
            if len(_VERIFIED) >= 10_000:
                _VERIFIED.clear()
            _VERIFIED[(secret, header)] = found
        if found[1] < time.time():
            raise IdentityError("identity has expired")
    except IdentityError as exc:
        raise Problem(401, "Unauthenticated", str(exc), kind="unauthenticated") from exc
    return found[0]


def require_role(role: str) -> Callable[..., Awaitable[Identity]]:
    """FastAPI dependency factory: the caller's identity, which must hold ``role`` (or a higher one).

    Dependencies that do no I/O are ``async def`` all through the services: FastAPI runs a plain ``def`` one in a
    worker thread, a hop per dependency per request (~9 % of the monitor's CPU for a job list)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; roles are {ROLES}")

    async def dependency(identity: Annotated[Identity, Depends(current_identity)]) -> Identity:
        if not identity.has_role(role):
            raise Problem(
                403,
                "Forbidden",
                f"{identity.user!r} lacks the {role!r} role",
                kind="forbidden",
                required_role=role,
            )
        return identity

    return dependency


def identity_from_roles(user: str, roles: Iterable[str], experiments: Iterable[str] = ("*",)) -> Identity:
    """Convenience constructor (tests, the embedded runner)."""
    return Identity(user=user, experiments=frozenset(experiments), roles=frozenset(roles))


Reader = Annotated[Identity, Depends(require_role("reader"))]
Requester = Annotated[Identity, Depends(require_role("requester"))]
Manager = Annotated[Identity, Depends(require_role("manager"))]
Admin = Annotated[Identity, Depends(require_role("admin"))]
