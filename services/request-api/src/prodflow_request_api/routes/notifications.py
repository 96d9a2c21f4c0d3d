"""``/api/notifications``: each user's mail kinds (``/me``), and an experiment's lists (managers)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from prodflow_core.events import utc_now
from prodflow_core.identity import Identity, Manager, Reader
from prodflow_core.problems import not_found
from prodflow_core.sql import SessionDep
from sqlmodel.ext.asyncio.session import AsyncSession

from prodflow_request_api import catalog_store, preferences
from prodflow_request_api.catalog import EXPERIMENT_PATTERN
from prodflow_request_api.deps import SettingsDep
from prodflow_request_api.mail import KINDS
from prodflow_request_api.models import CatalogExperimentRow, NotificationPreferenceRow
from prodflow_request_api.schemas import ListsIn, ListsOut, NotificationsIn, NotificationsOut

router = APIRouter(prefix="/api/notifications", tags=["notifications"])

ExperimentName = Annotated[str, Path(pattern=EXPERIMENT_PATTERN)]


def _out(row: NotificationPreferenceRow) -> NotificationsOut:
    return NotificationsOut(
        user=row.user,
        address=row.address,
        approval=row.approval is not False,
        outcome=row.outcome is not False,
        digest=row.digest is not False,
    )


@router.get("/me", summary="The caller's address and the kinds of mail it gets")
async def get_mine(identity: Reader, session: SessionDep) -> NotificationsOut:
    return _out(await preferences.of_user(session, identity.user))


@router.put("/me", summary="Turn kinds of mail on or off for the caller's address")
async def put_mine(body: NotificationsIn, identity: Reader, session: SessionDep) -> NotificationsOut:
    given = body.model_dump(exclude_unset=True)
    wanted = {kind: given[kind] for kind in KINDS if kind in given}
    address = str(body.address) if body.address is not None else None
    return _out(await preferences.set_for_user(session, identity.user, address, wanted))


async def _experiment(session: AsyncSession, experiment: str, identity: Identity) -> CatalogExperimentRow:
    identity.require_experiment(experiment)
    row = await catalog_store.experiment(session, experiment)
    if row is None:
        raise not_found("Experiment", experiment)
    return row


async def _lists_out(session: AsyncSession, row: CatalogExperimentRow, mailing_lists: dict[str, list[str]]) -> ListsOut:
    experiment = row.experiment
    mailing = list(mailing_lists.get(experiment, row.mailing_list))
    support = preferences.support_list(row, mailing_lists)
    everyone = [*mailing, *(row.support_list or [])]
    opted_out = {kind: sorted(await preferences.opted_out(session, kind, everyone)) for kind in KINDS}
    return ListsOut(
        experiment=experiment,
        mailing_list=mailing,
        support_list=row.support_list,
        digest_to=list(await preferences.wanted(session, "digest", support)),
        opted_out=opted_out,
    )


@router.get("/experiments/{experiment}", summary="An experiment's mailing and support lists (managers)")
async def get_lists(
    experiment: ExperimentName, identity: Manager, session: SessionDep, settings: SettingsDep
) -> ListsOut:
    row = await _experiment(session, experiment, identity)
    return await _lists_out(session, row, settings.mailing_lists)


@router.put("/experiments/{experiment}", summary="Change an experiment's mailing or support list (managers)")
async def put_lists(
    experiment: ExperimentName, body: ListsIn, identity: Manager, session: SessionDep, settings: SettingsDep
) -> ListsOut:
    row = await _experiment(session, experiment, identity)
    given = body.model_dump(exclude_unset=True)
    if "mailing_list" in given and body.mailing_list is not None:
        row.mailing_list = [str(a) for a in body.mailing_list]
    if "support_list" in given:
        row.support_list = None if body.support_list is None else [str(a) for a in body.support_list]
    row.updated_at = utc_now()
    session.add(row)
    await session.commit()
    return await _lists_out(session, row, settings.mailing_lists)
