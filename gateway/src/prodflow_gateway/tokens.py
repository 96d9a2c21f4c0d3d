"""Bearer tokens: made, hashed, looked up (with a short cache), revoked, and the first admin token."""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import time
from datetime import UTC, datetime
from pathlib import Path

from prodflow_core.identity import Identity
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from prodflow_gateway.models import ApiToken

TOKEN_PREFIX = "pf_"  # noqa: S105 - a marker, not a secret
_log = logging.getLogger("prodflow.gateway.tokens")


def new_secret() -> str:
    """A fresh bearer token (256 random bits)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """SHA-256 of the token: tokens are random, so a plain hash is enough to make a stolen table useless."""
    return hashlib.sha256(token.encode()).hexdigest()


def identity_of(token: ApiToken) -> Identity:
    """The identity a stored token grants."""
    return Identity(
        user=token.user, experiments=frozenset(token.experiments), roles=frozenset(token.roles), token_id=token.id
    )


def is_active(token: ApiToken, now: datetime | None = None) -> bool:
    """Not revoked and not expired."""
    now = now or datetime.now(UTC)
    expires = token.expires_at
    if expires is not None and expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    return token.revoked_at is None and (expires is None or expires > now)


async def create_token(
    session: AsyncSession,
    *,
    user: str,
    experiments: list[str],
    roles: list[str],
    description: str = "",
    created_by: str | None = None,
    expires_at: datetime | None = None,
    secret: str | None = None,
) -> tuple[ApiToken, str]:
    """Store a new token; returns it and its secret (shown once, never stored)."""
    secret = secret or new_secret()
    token = ApiToken(
        id="tok-" + secrets.token_hex(6),
        user=user,
        experiments=sorted(set(experiments)),
        roles=sorted(set(roles)),
        token_hash=hash_token(secret),
        description=description,
        created_by=created_by,
        expires_at=expires_at,
    )
    session.add(token)
    await session.commit()
    return token, secret


class TokenLookup:
    """Finds the identity of a bearer token; remembers answers for a few seconds to spare the database."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], cache_s: float) -> None:
        self._sessions = sessions
        self._cache_s = cache_s
        self._cache: dict[str, tuple[float, Identity | None]] = {}

    async def identity(self, secret: str) -> Identity | None:
        """The identity of an active token, or ``None``."""
        digest = hash_token(secret)
        hit = self._cache.get(digest)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        async with self._sessions() as session:
            token = (await session.exec(select(ApiToken).where(ApiToken.token_hash == digest))).first()
        found = identity_of(token) if token is not None and is_active(token) else None
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (time.monotonic() + self._cache_s, found)
        return found

    def forget(self) -> None:
        """Drop cached answers (after a revocation)."""
        self._cache.clear()


async def ensure_first_admin(
    sessions: async_sessionmaker[AsyncSession], token_file: Path, bootstrap: str | None
) -> str | None:
    """Create an admin token when no token exists and write it to ``token_file`` (0600), never to a log.

    ``bootstrap`` fixes the secret (docker-compose, tests). Returns the new secret, or ``None`` if tokens exist.
    """
    async with sessions() as session:
        count = (await session.exec(select(func.count()).select_from(ApiToken))).one()
        if count:
            return None
        _token, secret = await create_token(
            session,
            user="admin",
            experiments=["*"],
            roles=["admin"],
            description="first admin token",
            created_by="gateway",
            secret=bootstrap,
        )
    token_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    # Where it is, not what it is: the gateway's output ends up in log files (embedded runner, containers).
    print(f"prodflow gateway: first admin token written to {token_file} (read it there)", flush=True)
    _log.info("first admin token created and written to %s", token_file)
    return secret
