"""Typed dependencies of the routes: the settings and the outbox of the running app."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from prodflow_request_api.outbox import Outbox
from prodflow_request_api.settings import RequestApiSettings


async def _settings(request: Request) -> RequestApiSettings:
    settings: RequestApiSettings = request.app.state.settings
    return settings


async def _outbox(request: Request) -> Outbox:
    outbox: Outbox = request.app.state.outbox
    return outbox


SettingsDep = Annotated[RequestApiSettings, Depends(_settings)]
OutboxDep = Annotated[Outbox, Depends(_outbox)]
