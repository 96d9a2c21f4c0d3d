"""Who gets which mail: each user's opt-outs per kind, and the experiment's lists (mailing list, support list).

A user names the address their mail reaches (``PUT /api/notifications/me``); a kind turned off there is left out
of every mail of that kind queued afterwards, whether the address is a request's contact or on a list.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from prodflow_core.events import utc_now
from prodflow_core.problems import Problem
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from prodflow_request_api.mail import KINDS
from prodflow_request_api.models import CatalogExperimentRow, NotificationPreferenceRow


async def of_user(session: AsyncSession, user: str) -> NotificationPreferenceRow:
    """The user's preferences (the defaults if they never set any; not stored then)."""
    row = await session.get(NotificationPreferenceRow, user)
    return row or NotificationPreferenceRow(user=user, updated_at="")


async def set_for_user(
    session: AsyncSession, user: str, address: str | None, wanted: dict[str, bool | None]
) -> NotificationPreferenceRow:
    """Change the user's address (if given) and the kinds in ``wanted``; commits.

    An address belongs to the first user who names it: another user naming it is a 409 problem (so nobody can turn
    off the mail of an address its owner already claimed).
    """
    row = await session.get(NotificationPreferenceRow, user) or NotificationPreferenceRow(user=user, updated_at="")
    if address is not None:
        await _check_unclaimed(session, address.lower(), user)
        row.address = address.lower()
    for kind, value in wanted.items():
        if kind in KINDS:
            setattr(row, kind, value)
    row.updated_at = utc_now()
    session.add(row)
    await session.commit()
    return row


async def _check_unclaimed(session: AsyncSession, address: str, user: str) -> None:
    holder = (
        await session.exec(
            select(NotificationPreferenceRow.user).where(
                NotificationPreferenceRow.address == address, NotificationPreferenceRow.user != user
            )
        )
    ).first()
    if holder is not None:
        raise Problem(409, "Conflict", f"{address} is another user's address", kind="address-taken")


async def opted_out(session: AsyncSession, kind: str, addresses: Iterable[str]) -> set[str]:
    """The addresses (lower case) among ``addresses`` whose user turned ``kind`` off."""
    lowered = {a.lower() for a in addresses}
    if not lowered or kind not in KINDS:
        return set()
    column = getattr(NotificationPreferenceRow, kind)
    query = select(NotificationPreferenceRow.address).where(
        func.lower(col(NotificationPreferenceRow.address)).in_(lowered),
        column == False,  # noqa: E712
    )
    return {str(a).lower() for a in (await session.exec(query)).all() if a}


async def wanted(session: AsyncSession, kind: str, addresses: Sequence[str]) -> tuple[str, ...]:
    """``addresses`` without those that opted out of ``kind``, each once (case-insensitive), in order."""
    out = await opted_out(session, kind, addresses)
    seen: dict[str, str] = {}
    for address in addresses:
        if address.lower() not in out:
            seen.setdefault(address.lower(), address)
    return tuple(seen.values())


def support_list(row: CatalogExperimentRow, mailing_lists: dict[str, list[str]]) -> list[str]:
    """Where an experiment's failure digests go: its support list, else its mailing list (settings first)."""
    if row.support_list is not None:
        return list(row.support_list)
    return list(mailing_lists.get(row.experiment, row.mailing_list))
