"""Who is calling: the bearer token turned into an identity, and the coarse checks the gateway makes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from prodflow_core.identity import Identity
from prodflow_core.problems import Problem

from prodflow_gateway.failures import AuthFailures
from prodflow_gateway.tokens import TokenLookup

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _unauthenticated(detail: str) -> Problem:
    return Problem(
        401, "Unauthenticated", detail, kind="unauthenticated", headers={"WWW-Authenticate": 'Bearer realm="prodflow"'}
    )


def _too_many(wait_s: int) -> Problem:
    return Problem(
        429,
        "Too many requests",
        f"too many failed authentications from this address; try again in {wait_s} s",
        kind="too-many-requests",
        headers={"Retry-After": str(wait_s)},
        retry_after_s=wait_s,
    )


async def authenticate(request: Request) -> Identity:
    """FastAPI dependency: the identity of the bearer token, or a 401 problem (429 after too many of them).

    The identity is also left in ``request.state.identity`` for the audit log.
    """
    failures: AuthFailures = request.app.state.auth_failures
    address = request.client.host if request.client else ""
    wait_s = failures.retry_after(address)
    if wait_s is not None:
        raise _too_many(wait_s)  # before the token is looked at: a blocked address cannot go on guessing
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise _unauthenticated("send 'Authorization: Bearer <token>'")
    lookup: TokenLookup = request.app.state.tokens
    identity = await lookup.identity(secret.strip())
    if identity is None:
        failures.failed(address)
        raise _unauthenticated("unknown, revoked or expired token")
    request.state.identity = identity
    return identity


Caller = Annotated[Identity, Depends(authenticate)]


SELF_SERVICE_WRITES = frozenset({"/api/notifications/me"})
"""Writes about the caller alone (which mails reach them): a reader on a support list may turn a kind off."""


def check_access(identity: Identity, method: str, experiment: str | None, path: str = "") -> None:
    """Reads need ``reader``, writes ``requester`` (services check finer roles); a named experiment must be bound.

    Writes to :data:`SELF_SERVICE_WRITES` need ``reader`` only."""
    role = "reader" if method.upper() in READ_METHODS or path in SELF_SERVICE_WRITES else "requester"
    if not identity.has_role(role):
        raise Problem(
            403, "Forbidden", f"{identity.user!r} lacks the {role!r} role", kind="forbidden", required_role=role
        )
    if experiment is not None:
        identity.require_experiment(experiment)


async def require_admin(identity: Caller) -> Identity:
    """FastAPI dependency: an admin caller."""
    if not identity.has_role("admin"):
        raise Problem(
            403, "Forbidden", f"{identity.user!r} lacks the 'admin' role", kind="forbidden", required_role="admin"
        )
    return identity


AdminCaller = Annotated[Identity, Depends(require_admin)]
