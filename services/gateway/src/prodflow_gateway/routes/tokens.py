"""``/api/auth``: API tokens (admin; a token may rotate itself) and ``whoami``."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request, Response, status
from prodflow_core.problems import Problem, conflict, not_found
from prodflow_core.sql import SessionDep
from sqlmodel import select

from prodflow_gateway.auth import AdminCaller, Caller
from prodflow_gateway.models import ApiToken
from prodflow_gateway.schemas import TokenCreate, TokenCreated, TokenInfo, WhoAmI
from prodflow_gateway.tokens import TokenLookup, create_token, expiry, is_active, rotate_token

router = APIRouter(prefix="/api/auth", tags=["auth"])


def _info(token: ApiToken) -> TokenInfo:
    return TokenInfo.model_validate(token, from_attributes=True)


def _forget_cached(request: Request) -> None:
    lookup: TokenLookup = request.app.state.tokens
    lookup.forget()


@router.post("/tokens", status_code=status.HTTP_201_CREATED, response_model=TokenCreated)
async def create(
    body: TokenCreate, admin: AdminCaller, session: SessionDep, request: Request, response: Response
) -> TokenCreated:
    """Create a token; its secret is in this answer only. Without ``expires_at``/``expires_in`` it expires after
    the gateway's default lifetime (``GATEWAY_TOKEN_DEFAULT_TTL``, 90 days unless set otherwise)."""
    token, secret = await create_token(
        session,
        user=body.user,
        experiments=body.experiments,
        roles=list(body.roles),
        description=body.description,
        created_by=admin.user,
        expires_at=expiry(body.expires_at, body.expires_in, request.app.state.settings.token_default_ttl),
    )
    response.headers["Location"] = f"/api/auth/tokens/{token.id}"
    return TokenCreated(**_info(token).model_dump(), token=secret)


@router.get("/tokens", response_model=list[TokenInfo])
async def list_tokens(_admin: AdminCaller, session: SessionDep, user: str | None = None) -> list[TokenInfo]:
    """Every token (never their secrets), optionally of one user."""
    query = select(ApiToken).order_by(ApiToken.created_at)  # type: ignore[arg-type]
    if user is not None:
        query = query.where(ApiToken.user == user)
    return [_info(t) for t in (await session.exec(query)).all()]


@router.get("/tokens/{token_id}", response_model=TokenInfo)
async def get_token(token_id: str, _admin: AdminCaller, session: SessionDep) -> TokenInfo:
    """One token (never its secret)."""
    token = await session.get(ApiToken, token_id)
    if token is None:
        raise not_found("Token", token_id)
    return _info(token)


@router.delete("/tokens/{token_id}", response_model=TokenInfo)
async def revoke(token_id: str, _admin: AdminCaller, session: SessionDep, request: Request) -> TokenInfo:
    """Revoke a token; it stops working at once on this gateway."""
    token = await session.get(ApiToken, token_id)
    if token is None:
        raise not_found("Token", token_id)
    if token.revoked_at is None:
        token.revoked_at = datetime.now(UTC)
        session.add(token)
        await session.commit()
    _forget_cached(request)
    return _info(token)


@router.post("/tokens/{token_id}/rotate", response_model=TokenCreated)
async def rotate(token_id: str, caller: Caller, session: SessionDep, request: Request) -> TokenCreated:
    """A new secret for the token (shown in this answer only); the old one stops working at once. Same id, user,
    roles, experiments and expiry. Admins rotate any token, anyone else the token they call with."""
    if not caller.has_role("admin") and caller.token_id != token_id:
        raise Problem(403, "Forbidden", "only admins rotate other tokens than the one calling", kind="forbidden")
    token = await session.get(ApiToken, token_id)
    if token is None:
        raise not_found("Token", token_id)
    if not is_active(token):
        raise conflict(f"token {token_id!r} is revoked or expired: create a new one")
    secret = await rotate_token(session, token)
    _forget_cached(request)
    return TokenCreated(**_info(token).model_dump(), token=secret)


@router.get("/whoami", response_model=WhoAmI)
async def whoami(identity: Caller) -> WhoAmI:
    """The caller's user, experiments and roles."""
    return WhoAmI(
        user=identity.user,
        experiments=sorted(identity.experiments),
        roles=sorted(identity.roles),
        token_id=identity.token_id,
    )
