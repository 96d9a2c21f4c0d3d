"""One OpenAPI document for the whole system: the gateway's own paths merged with each service's."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import httpx

from prodflow_gateway.routing import service_for

_log = logging.getLogger("prodflow.gateway.openapi")
Spec = dict[str, Any]
REF_PREFIX = "#/components/schemas/"


def _rename_refs(node: Any, renames: dict[str, str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(REF_PREFIX):
                name = value.removeprefix(REF_PREFIX)
                out[key] = REF_PREFIX + renames.get(name, name)
            else:
                out[key] = _rename_refs(value, renames)
        return out
    if isinstance(node, list):
        return [_rename_refs(item, renames) for item in node]
    return node


def _schema_name(service: str, name: str) -> str:
    return "".join(part.capitalize() for part in service.split("-")) + name


def merge_specs(gateway: Spec, services: dict[str, Spec]) -> Spec:
    """Merge service specs into the gateway's: only the paths each service owns; clashing schemas renamed."""
    merged: Spec = json.loads(json.dumps(gateway))
    paths: dict[str, Any] = merged.setdefault("paths", {})
    schemas: dict[str, Any] = merged.setdefault("components", {}).setdefault("schemas", {})
    for service, spec in sorted(services.items()):
        theirs: dict[str, Any] = spec.get("components", {}).get("schemas", {})
        renames = {
            name: _schema_name(service, name)
            for name, body in theirs.items()
            if name in schemas and schemas[name] != body
        }
        spec = _rename_refs(spec, renames)
        for name, body in spec.get("components", {}).get("schemas", {}).items():
            schemas[renames.get(name, name)] = body
        for path, item in spec.get("paths", {}).items():
            if service_for(path) == service:
                paths[path] = _tagged(item, service)
    merged.setdefault("components", {})["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    merged["security"] = [{"bearer": []}]
    return merged


def _tagged(item: dict[str, Any], service: str) -> dict[str, Any]:
    out = {}
    for method, op in item.items():
        if isinstance(op, dict):
            op = {**op, "tags": op.get("tags") or [service]}
            if "operationId" in op:
                op["operationId"] = f"{service}__{op['operationId']}"
        out[method] = op
    return out


class MergedOpenAPI:
    """Fetches each service's ``/openapi.json`` and serves the merge, refreshed at most every ``ttl_s``."""

    def __init__(self, http: httpx.AsyncClient, urls: dict[str, str], ttl_s: float = 30.0) -> None:
        self._http = http
        self._urls = urls
        self._ttl_s = ttl_s
        self._cached: tuple[float, Spec] | None = None
        self._lock = asyncio.Lock()

    async def _fetch(self, service: str, url: str) -> tuple[str, Spec | None]:
        try:
            response = await self._http.get(url.rstrip("/") + "/openapi.json", timeout=5.0)
            response.raise_for_status()
            return service, response.json()
        except (httpx.HTTPError, ValueError) as exc:
            _log.warning("no OpenAPI from %s: %s", service, exc)
            return service, None

    async def spec(self, gateway: Spec) -> Spec:
        """The merged document (services that do not answer are left out until they do)."""
        async with self._lock:
            if self._cached and self._cached[0] > time.monotonic():
                return self._cached[1]
            fetched = await asyncio.gather(*(self._fetch(s, u) for s, u in self._urls.items()))
            found = {service: spec for service, spec in fetched if spec is not None}
            merged = merge_specs(gateway, found)
            complete = len(found) == len(self._urls)
            self._cached = (time.monotonic() + (self._ttl_s if complete else 2.0), merged)
            return merged
