"""Sites as submitter configures them (FORMATS.md "Site"), fetched over HTTP and cached, with their backends.

monitor never owns sites: it reads ``GET {submitter}/api/sites`` with a signed service identity
(``service:monitor``, reader, all experiments) and keeps the answer for ``ttl_s``. If submitter cannot be
reached, the last answer stays in use. A job may also carry its own ``policy`` (max attempts, retry exit codes),
which then wins over its site's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

import httpx
from prodflow_core.backends import Backend, BackendError, make_backend
from prodflow_core.identity import IDENTITY_HEADER, Identity, sign_identity
from pydantic import BaseModel, ConfigDict, Field, ValidationError

_log = logging.getLogger("prodflow.monitor.sites")

SERVICE_IDENTITY = Identity(user="service:monitor", experiments=frozenset({"*"}), roles=frozenset({"reader"}))
DEFAULT_STORAGE_ELEMENT = ""
UNKNOWN_SITE_REFRESH_S = 5.0


class RetryPolicy(BaseModel):
    """When a job that ended badly is sent again (same pass, ``attempt + 1``)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    max_attempts: int = Field(3, ge=1)
    retry_exit_codes: frozenset[int] = frozenset()
    retry_lost: bool = Field(True, description="A job the backend lost is sent again while attempts remain")

    def retries_failure(self, exit_code: int | None, attempt: int) -> bool:
        """True if a job that exited with ``exit_code`` on try ``attempt`` is retried."""
        return attempt < self.max_attempts and exit_code is not None and exit_code in self.retry_exit_codes

    def retries_loss(self, attempt: int) -> bool:
        """True if a job its backend lost on try ``attempt`` is retried."""
        return self.retry_lost and attempt < self.max_attempts


class Site(BaseModel):
    """One site: a backend, a storage element and limits (the shape submitter serves)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str
    backend: str
    storage_element: str = DEFAULT_STORAGE_ELEMENT
    max_running: int = 100
    max_attempts: int = Field(3, ge=1)
    retry_exit_codes: list[int] = Field(default_factory=list)
    max_walltime_s: int | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    @property
    def policy(self) -> RetryPolicy:
        return RetryPolicy(max_attempts=self.max_attempts, retry_exit_codes=frozenset(self.retry_exit_codes))


def policy_for(doc: Mapping[str, Any], site: Site | None) -> RetryPolicy:
    """The retry policy of a job: its own ``policy`` if submitter wrote one, else its site's, else defaults."""
    own = doc.get("policy")
    if isinstance(own, Mapping):
        try:
            return RetryPolicy.model_validate(own)
        except ValidationError:
            _log.warning("job %s carries an invalid policy; using its site's", doc.get("_id"))
    return site.policy if site is not None else RetryPolicy()


def parse_sites(body: Any) -> dict[str, Site]:
    """Sites from submitter's answer: a list, or an object with ``items`` or ``sites``; bad entries skipped."""
    if isinstance(body, Mapping):
        body = body.get("items", body.get("sites", []))
    sites: dict[str, Site] = {}
    for entry in body if isinstance(body, list) else []:
        try:
            site = Site.model_validate(entry)
        except ValidationError as exc:
            _log.warning("skipping a site submitter served: %s", exc)
            continue
        sites[site.name] = site
    return sites


class SiteDirectory:
    """The sites known to submitter, cached, and one backend object per site."""

    def __init__(
        self,
        submitter_url: str,
        identity_secret: str,
        *,
        ttl_s: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.submitter_url = submitter_url.rstrip("/")
        self.identity_secret = identity_secret
        self.ttl_s = ttl_s
        self._http = httpx.AsyncClient(timeout=10.0, transport=transport)
        self._sites: dict[str, Site] = {}
        self._fetched_at: float | None = None
        self._backends: dict[str, tuple[Site, Backend]] = {}
        self._refreshing = asyncio.Lock()

    async def aclose(self) -> None:
        await self._http.aclose()

    def _stale(self, age_s: float) -> bool:
        return self._fetched_at is None or time.monotonic() - self._fetched_at > age_s

    async def sites(self) -> dict[str, Site]:
        """All sites, refreshed from submitter when the cache is older than ``ttl_s``."""
        if self._stale(self.ttl_s):
            await self.refresh(self.ttl_s)
        return self._sites

    async def site(self, name: str | None) -> Site | None:
        """One site by name; an unknown name forces one refresh before giving up."""
        if name is None:
            return None
        sites = await self.sites()
        if name not in sites and self._stale(UNKNOWN_SITE_REFRESH_S):
            await self.refresh(UNKNOWN_SITE_REFRESH_S)
        return self._sites.get(name)

    async def refresh(self, older_than_s: float = 0.0) -> None:
        """Fetch the sites (one request at a time; callers that waited reuse its answer if it is fresh enough).

        On failure the previous answer stays in use and the next call tries again.
        """
        async with self._refreshing:
            if not self._stale(older_than_s):
                return
            header = sign_identity(SERVICE_IDENTITY, self.identity_secret)
            try:
                response = await self._http.get(f"{self.submitter_url}/api/sites", headers={IDENTITY_HEADER: header})
                response.raise_for_status()
                self._sites = parse_sites(response.json())
            except (httpx.HTTPError, ValueError) as exc:
                _log.warning("cannot fetch sites from %s: %r", self.submitter_url, exc)
            self._fetched_at = time.monotonic()  # a failed fetch also waits for the next period

    def backend(self, site: Site) -> Backend:
        """The backend of ``site``, built once per site configuration; :class:`BackendError` if misconfigured."""
        cached = self._backends.get(site.name)
        if cached is not None and cached[0] == site:
            return cached[1]
        backend = make_backend(site.backend, site.options)
        self._backends[site.name] = (site, backend)
        return backend


__all__ = ["BackendError", "RetryPolicy", "Site", "SiteDirectory", "parse_sites", "policy_for"]
