"""Sites fetched from submitter's API with a signed service identity, cached, kept when submitter is down."""

from __future__ import annotations

from typing import Any

import pytest
from prodflow_core.couch.server import free_port
from prodflow_core.settings import DEFAULT_IDENTITY_SECRET
from prodflow_monitor.sites import SiteDirectory

pytestmark = pytest.mark.integration


async def test_sites_are_fetched_signed_cached_and_refreshed(sites_api: Any, tmp_path: Any) -> None:
    sites_api.sites["cached-a"] = {"name": "cached-a", "backend": "local", "options": {"work_dir": str(tmp_path)}}
    directory = SiteDirectory(sites_api.url, DEFAULT_IDENTITY_SECRET, ttl_s=60)
    try:
        calls = sites_api.calls
        site = await directory.site("cached-a")
        assert site is not None and site.backend == "local" and "service:monitor" in sites_api.callers
        assert directory.backend(site) is directory.backend(site)  # one backend object per site
        await directory.site("cached-a")
        assert sites_api.calls == calls + 1  # served from the cache
        assert await directory.site("not-there") is None
    finally:
        await directory.aclose()


async def test_wrong_secret_or_dead_submitter_keeps_what_was_known(sites_api: Any) -> None:
    forged = SiteDirectory(sites_api.url, "not-the-secret")
    down = SiteDirectory(f"http://127.0.0.1:{free_port()}", DEFAULT_IDENTITY_SECRET)
    try:
        assert await forged.sites() == {}  # 401: nothing learnt, no crash
        assert await down.sites() == {}
    finally:
        await forged.aclose()
        await down.aclose()
