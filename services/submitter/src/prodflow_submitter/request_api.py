"""What submitter asks request-api over HTTP: module command templates and approved jobs.json files."""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any
from urllib.parse import quote

import httpx
from prodflow_core.identity import IDENTITY_HEADER, Identity, sign_identity

_log = logging.getLogger("prodflow.submitter.request_api")
SERVICE_IDENTITY = Identity(user="service:submitter", experiments=frozenset({"*"}), roles=frozenset({"reader"}))


class RequestApiError(RuntimeError):
    """request-api refused (``permanent``: a 4xx, retrying will not help) or could not be reached."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class RequestApi:
    """A client of request-api that signs every call as ``service:submitter``."""

    def __init__(self, base_url: str, secret: str, *, timeout_s: float = 10.0) -> None:
        self.secret = secret
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout_s)

    async def aclose(self) -> None:
        await self._http.aclose()

    def _headers(self) -> dict[str, str]:
        return {IDENTITY_HEADER: sign_identity(SERVICE_IDENTITY, self.secret)}

    async def module_command(self, experiment: str, module: str) -> str | None:
        """The catalog's command template of a module, or ``None`` (unknown module, or no catalog reachable)."""
        path = f"/api/catalog/{quote(experiment, safe='')}/modules/{quote(module, safe='')}"
        try:
            response = await self._http.get(path, headers=self._headers())
        except httpx.HTTPError as exc:
            _log.info("catalog unreachable for %s/%s: %s", experiment, module, exc)
            return None
        if response.status_code != 200:
            return None
        command = response.json().get("command")
        return str(command) if command else None

    async def jobs_json(self, path: str, sha256: str | None = None) -> dict[str, Any]:
        """An approved request's jobs.json (``path`` as the event gives it), checked against ``sha256``."""
        try:
            response = await self._http.get(path, headers=self._headers())
        except httpx.HTTPError as exc:
            raise RequestApiError(f"GET {path}: {exc}", permanent=False) from exc
        if response.status_code >= 500:
            raise RequestApiError(f"GET {path}: {response.status_code}", permanent=False)
        if response.status_code != 200:
            raise RequestApiError(f"GET {path}: {response.status_code} {response.text[:200]}", permanent=True)
        if sha256 and hashlib.sha256(response.content).hexdigest() != sha256:
            raise RequestApiError(f"GET {path}: content does not match its sha256", permanent=True)
        data = json.loads(response.content)
        if not isinstance(data, dict):
            raise RequestApiError(f"GET {path}: not a JSON object", permanent=True)
        return data
