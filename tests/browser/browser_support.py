"""Helpers of the browser tests: the running system, screenshots, logging in."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx
from playwright.sync_api import Page

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "browser"


@dataclass(frozen=True)
class System:
    """A running ``prodflow up``: the gateway's URL, the admin token, the CouchDB URL and its data folder."""

    url: str
    token: str
    couch_url: str
    data_dir: Path

    def client(self, token: str | None = None) -> httpx.Client:
        """An HTTP client of the gateway."""
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token or self.token}"}, timeout=30)


def shot(page: Page, name: str) -> Path:
    """Save a screenshot under ``artifacts/browser/``."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def log_in(page: Page, system: System, token: str | None = None) -> None:
    """Open the dashboard and log in with a token."""
    page.goto(system.url + "/")
    page.get_by_label("API token").fill(token or system.token)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("navigation", name="Sections").wait_for()
