"""``/api/auth``: API tokens (admin) and ``whoami``."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request, status
from prodflow_core.problems import not_found
from prodflow_core.sql import SessionDep
from sqlmodel import select

from prodflow_gateway.auth import AdminCaller, Caller
from prodflow_gateway.models import ApiToken
from prodflow_gateway.schemas import TokenCreate, TokenCreated, TokenInfo, WhoAmI
from prodflow_gateway.tokens import TokenLookup, create_token

router = APIRouter(prefix="/api/auth", tags=["auth"])


def _info(token: ApiToken) -> TokenInfo:
    return TokenInfo.model_validate(token, from_attributes=True)


@router.post("/tokens", status_code=status.HTTP_201_CREATED, response_model=TokenCreated)
async def create(body: TokenCreate, admin: AdminCaller, session: SessionDep) -> TokenCreated:
    """Create a token; its secret is in this answer only."""
    token, secret = await create_token(
        session,
        user=body.user,
        experiments=body.experiments,
        roles=list(body.roles),
        description=body.description,
        created_by=admin.user,
        expires_at=body.expires_at,
    )
    return TokenCreated(**_info(token).model_dump(), token=secret)


@router.get("/tokens", response_model=list[TokenInfo])
async def list_tokens(_admin: AdminCaller, session: SessionDep, user: str | None = None) -> list[TokenInfo]:
    """Every token (never their secrets), optionally of one user."""
    query = select(ApiToken).order_by(ApiToken.created_at)  # type: ignore[arg-type]
    if user is not None:
        query = query.where(ApiToken.user == user)
    return [_info(t) for t in (await session.exec(query)).all()]


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
    lookup: TokenLookup = request.app.state.tokens
    lookup.forget()
    return _info(token)


@router.get("/whoami", response_model=WhoAmI)
async def whoami(identity: Caller) -> WhoAmI:
    """The caller's user, experiments and roles."""
    return WhoAmI(
        user=identity.user,
        experiments=sorted(identity.experiments),
        roles=sorted(identity.roles),
        token_id=identity.token_id,
    )
