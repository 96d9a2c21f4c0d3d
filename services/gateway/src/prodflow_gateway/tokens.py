"""Bearer tokens: made, hashed, looked up (with a cache of at most a second), rotated, and the first admin token.

Revocation and rotation change the token's row; a gateway that made the change forgets its cached answers at
once, every other replica sharing the database within its ``token_cache_s`` (at most 1 s).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import os
import secrets
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prodflow_core.identity import Identity
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from prodflow_gateway.last_used import LastUsed
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


def _aware(moment: datetime | None) -> datetime | None:
    """SQLite gives back naive datetimes; every time stored is UTC."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def is_active(token: ApiToken, now: datetime | None = None) -> bool:
    """Not revoked and not expired."""
    now = now or datetime.now(UTC)
    expires = _aware(token.expires_at)
    return token.revoked_at is None and (expires is None or expires > now)


def expiry(
    expires_at: datetime | None, expires_in_s: int | None, default_ttl: timedelta | None, now: datetime | None = None
) -> datetime | None:
    """When a new token expires: ``expires_at`` as given, else ``expires_in_s`` or ``default_ttl`` from now."""
    now = now or datetime.now(UTC)
    if expires_at is not None:
        return _aware(expires_at)
    if expires_in_s is not None:
        return now + timedelta(seconds=expires_in_s)
    return now + default_ttl if default_ttl is not None else None


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


async def rotate_token(session: AsyncSession, token: ApiToken) -> str:
    """Give ``token`` a new secret (same id, user, roles, experiments and expiry); the old one stops working."""
    secret = new_secret()
    token.token_hash = hash_token(secret)
    token.rotated_at = datetime.now(UTC)
    session.add(token)
    await session.commit()
    return secret


class TokenLookup:
    """Finds the identity of a bearer token; remembers answers for ``cache_s`` (≤ 1 s) to spare the database.

    Requests that miss at the same moment share one read: when an answer expired under load, every request in
    flight used to read the token on its own and queue for the connection pool (7 % of the gateway's CPU at
    300 req/s). Each answer found notes the token's use in ``last_used`` (written later, in batches).
    """

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], cache_s: float, last_used: LastUsed | None = None
    ) -> None:
        self._sessions = sessions
        self._cache_s = cache_s
        self._last_used = last_used
        # hash -> (remembered until, on the monotonic clock; identity; expiry as a UNIX time or None)
        self._cache: dict[str, tuple[float, Identity | None, float | None]] = {}
        self._loading: dict[str, asyncio.Future[tuple[Identity | None, float | None]]] = {}
        self._generation = 0
        """Counts :meth:`forget` calls: a read that began before one does not fill the cache."""

    async def identity(self, secret: str) -> Identity | None:
        """The identity of an active token, or ``None``."""
        digest = hash_token(secret)
        hit = self._cache.get(digest)
        if hit is not None and hit[0] > time.monotonic():
            found, expires = hit[1], hit[2]
            if expires is not None and expires <= time.time():
                found = None
        else:
            found, expires = await self._load_shared(digest)
        if found is not None and self._last_used is not None and found.token_id is not None:
            self._last_used.touch(found.token_id)
        return found

    async def _load_shared(self, digest: str) -> tuple[Identity | None, float | None]:
        """:meth:`_load`, or the one in flight for ``digest``; a request cancelled while it waits does not cancel
        it for the others."""
        loading = self._loading.get(digest)
        if loading is None:
            loading = asyncio.ensure_future(self._load(digest))
            self._loading[digest] = loading
            loading.add_done_callback(functools.partial(self._loaded, digest))
        return await asyncio.shield(loading)

    def _loaded(self, digest: str, loading: asyncio.Future[tuple[Identity | None, float | None]]) -> None:
        if self._loading.get(digest) is loading:
            del self._loading[digest]
        if not loading.cancelled():
            loading.exception()  # retrieved: the waiters (if any are left) raise it

    async def _load(self, digest: str) -> tuple[Identity | None, float | None]:
        generation = self._generation
        async with self._sessions() as session:
            token = (await session.exec(select(ApiToken).where(ApiToken.token_hash == digest))).first()
        found = identity_of(token) if token is not None and is_active(token) else None
        expires_at = _aware(token.expires_at) if token is not None else None
        expires = expires_at.timestamp() if expires_at is not None else None
        if len(self._cache) > 10_000:
            self._cache.clear()
        if generation == self._generation:
            self._cache[digest] = (time.monotonic() + self._cache_s, found, expires)
        return found, expires

    def forget(self) -> None:
        """Drop cached answers and reads in flight (after a revocation or a rotation through this gateway)."""
        self._cache.clear()
        self._loading.clear()
        self._generation += 1


async def ensure_first_admin(
    sessions: async_sessionmaker[AsyncSession], token_file: Path, bootstrap: str | None
) -> str | None:
    """Create an admin token when no token exists and write it to ``token_file`` (0600), never to a log.

    ``bootstrap`` fixes the secret (docker-compose, tests). Returns the new secret, or ``None`` if tokens exist.
    This token never expires: it is how an operator with access to the gateway's host gets in, whatever happened
    to the other tokens. Once personal admin tokens exist, rotate it (its file then holds a dead secret) or revoke it.
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
