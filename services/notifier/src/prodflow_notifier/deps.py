"""Typed dependencies of the routes: the settings, the destination policy and the deliverer of the running app."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from prodflow_notifier.delivery import Deliverer
from prodflow_notifier.safety import DestinationPolicy
from prodflow_notifier.settings import NotifierSettings


async def _settings(request: Request) -> NotifierSettings:
    settings: NotifierSettings = request.app.state.settings
    return settings


async def _policy(request: Request) -> DestinationPolicy:
    policy: DestinationPolicy = request.app.state.policy
    return policy


async def _deliverer(request: Request) -> Deliverer:
    deliverer: Deliverer = request.app.state.deliverer
    return deliverer


SettingsDep = Annotated[NotifierSettings, Depends(_settings)]
PolicyDep = Annotated[DestinationPolicy, Depends(_policy)]
DelivererDep = Annotated[Deliverer, Depends(_deliverer)]
