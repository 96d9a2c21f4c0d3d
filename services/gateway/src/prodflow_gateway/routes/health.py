"""``/healthz`` of the whole system and ``/api/health/{service}`` through the gateway."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from prodflow_core.problems import Problem

from prodflow_gateway.auth import Caller
from prodflow_gateway.routing import SERVICES

router = APIRouter(tags=["health"])


async def _probe(http: httpx.AsyncClient, name: str, url: str) -> tuple[str, dict[str, Any]]:
    try:
        response = await http.get(url.rstrip("/") + "/healthz", timeout=3.0)
        body: dict[str, Any] = response.json()
        return name, {"status": "ok" if response.status_code == 200 else "degraded", **body}
    except (httpx.HTTPError, ValueError) as exc:
        return name, {"status": "down", "detail": f"{exc.__class__.__name__}: {exc}"}


@router.get("/healthz", include_in_schema=False)
async def healthz(request: Request) -> JSONResponse:
    """The gateway, its CouchDB and every service; 503 when any is not ok."""
    urls: dict[str, str] = request.app.state.settings.service_urls()
    probes = await asyncio.gather(*(_probe(request.app.state.http, n, u) for n, u in urls.items()))
    services = dict(probes)
    try:
        await request.app.state.couch.info()
        couch = "ok"
    except httpx.HTTPError as exc:
        couch = f"down: {exc.__class__.__name__}"
    healthy = couch == "ok" and all(s["status"] == "ok" for s in services.values())
    body = {
        "service": "gateway",
        "status": "ok" if healthy else "degraded",
        "checks": {"couchdb": couch},
        "services": services,
    }
    return JSONResponse(body, status_code=200 if healthy else 503)


@router.get("/api/health/{service}", tags=["health"])
async def service_health(service: str, request: Request, _identity: Caller) -> JSONResponse:
    """One service's own health document, reached through the gateway."""
    if service not in SERVICES:
        raise Problem(404, "Unknown service", f"services are {', '.join(SERVICES)}", kind="not-found")
    _name, body = await _probe(request.app.state.http, service, request.app.state.settings.service_urls()[service])
    if body["status"] == "down":
        raise Problem(502, "Bad gateway", f"{service} is unreachable", kind="bad-gateway", service=service)
    return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)
