"""The dashboard drives production: file and approve a request, watch its label reach 100 %, and see a LEGEND
cycle run's log lines arrive live."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_support import System, log_in, shot
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.integration
WRITES_OUTPUT = "printf '%s events\\n' {events} > {module}_r{run}_p{pass}.txt"


@pytest.fixture(scope="module")
def catalog_module(system: System) -> str:
    """A module whose jobs write one small output each (the real ones run RAT, which is not installed here)."""
    spec = {"event_modes": ["by_events"], "command": WRITES_OUTPUT, "default_ev_per_run": 100}
    with system.client() as http:
        answer = http.put("/api/catalog/snoplus/modules/BrowserGeo", json=spec)
        assert answer.status_code in (200, 201), answer.text
    return "BrowserGeo"


@pytest.fixture(scope="module")
def cycle(system: System, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The example LEGEND cycle, created and with its software installed (the environment store is shared)."""
    from prodflow_cycle_runner.examples import make_example_repositories

    repos = make_example_repositories(tmp_path_factory.mktemp("repos"))
    body = {"name": "browser", "dataflow": {"url": repos["dataflow"]}, "metadata": {"url": repos["metadata"]}}
    with system.client() as http:
        assert http.post("/api/cycles", json=body).status_code == 201
        install = http.post("/api/cycles/browser/software", json={}).json()
        deadline = time.monotonic() + 600
        while (run := http.get(f"/api/cycles/browser/runs/{install['id']}").json())["state"] not in (
            "succeeded",
            "failed",
        ):
            assert time.monotonic() < deadline, "software install did not finish"
            time.sleep(0.5)
        assert run["state"] == "succeeded", run["message"]
    yield "browser"


def test_file_approve_and_watch_the_label_reach_100_percent(page: Page, system: System, catalog_module: str) -> None:
    label = "2026-11_browser_geo_v1"
    log_in(page, system)
    page.get_by_role("link", name="File a new request").click()
    page.get_by_label("Experiment").select_option("snoplus")
    page.get_by_label("Title").fill("Browser geometry check")
    page.get_by_label("Software version").fill("7.0.15")
    page.get_by_label("Production label").fill("x")  # too short: refused before anything is sent
    page.get_by_label("Contacts").fill("alice@example.org, not-an-address")
    page.get_by_label("Module", exact=True).select_option(catalog_module)
    page.get_by_label("Events (in total, or per run for run-by-run)").fill("400")
    page.get_by_role("button", name="File request").click()
    expect(page.get_by_label("Production label")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#label-error")).to_contain_text("must match")
    expect(page.locator("#contacts-error")).to_contain_text("not-an-address is not an e-mail address")
    shot(page, "request-form-invalid")

    page.get_by_label("Production label").fill(label)
    page.get_by_label("Contacts").fill("alice@example.org")
    page.get_by_label("Events per job").fill("100")
    page.get_by_role("button", name="Preview jobs").click()
    expect(page.get_by_text("This request makes 4 jobs.")).to_be_visible()
    page.get_by_role("button", name="File request").click()

    expect(page.get_by_role("heading", name=re.compile(r"^Request req-\d+: Browser geometry check$"))).to_be_visible()
    expect(page.locator("dl.facts")).to_contain_text("submitted")
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("status").filter(has_text="is now approved")).to_be_visible()
    shot(page, "request-approved")

    page.get_by_role("link", name=f"Label {label}: progress").click()
    expect(page.get_by_role("heading", name=f"Label {label}")).to_be_visible()
    expect(page.get_by_label(f"{label}: 4 of 4 jobs completed")).to_be_visible(timeout=45_000)
    expect(page.get_by_text("100 %").first).to_be_visible()
    expect(page.get_by_role("img", name=re.compile(r"Completed jobs of .* over time: 4 of 4"))).to_be_visible()
    shot(page, "label-100-percent")

    page.get_by_role("link", name="Jobs of this label").click()
    expect(page.get_by_role("cell", name="completed", exact=True)).to_have_count(4)
    page.get_by_role("link", name="Labels", exact=True).click()  # the list, a page at a time
    expect(page.get_by_role("heading", name="Labels")).to_be_visible()
    expect(page.get_by_label(f"{label}: 4 of 4 jobs completed")).to_be_visible()
    expect(page.get_by_role("button", name="More labels")).to_be_hidden()  # one page holds them all
    page.get_by_role("link", name="Requests").click()
    expect(page.get_by_role("heading", name="Production requests")).to_be_visible()
    request_row = page.get_by_role("row").filter(has_text=label)
    expect(request_row.get_by_text("completed", exact=True)).to_be_visible(timeout=15_000)


def test_a_cycle_run_log_arrives_live(page: Page, system: System, cycle: str, tmp_path: Path) -> None:
    log_in(page, system)
    page.get_by_role("link", name="Cycles").click()
    page.get_by_role("link", name=cycle, exact=True).click()
    expect(page.get_by_role("heading", name=f"Cycle {cycle}")).to_be_visible()
    page.get_by_label("Targets").fill("all-l200-p03-r001-phy-dsp.gen")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.get_by_role("status").filter(has_text="queued")).to_be_visible()
    log = page.get_by_label(re.compile(r"^Log of run-"))
    expect(log).to_contain_text("Building DAG of jobs", timeout=45_000)
    expect(log).to_contain_text(re.compile(r"rule \w+:"), timeout=45_000)
    shot(page, "cycle-run-log")
    page.get_by_role("button", name="Cancel").first.click()
    expect(page.get_by_role("table").first.get_by_text("cancelled", exact=True)).to_be_visible(timeout=30_000)
