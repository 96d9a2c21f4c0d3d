"""The dashboard: token login, system health, and the live event feed over SSE."""

from __future__ import annotations

import json
import re
import time
import uuid

import httpx
import pytest
from browser_support import System, log_in, shot
from playwright.sync_api import Page, expect
from prodflow_core.events import make_event
from prodflow_core.testing import serving
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

pytestmark = pytest.mark.integration


def _publish(couch_url: str, short_type: str, subject: str, data: dict[str, object]) -> None:
    """Put an event on the shared stream as a service would (one CouchDB document per event)."""
    event = make_event(short_type, "/tests/browser", subject=subject, experiment="snoplus", data=data)
    answer = httpx.put(f"{couch_url}/prodflow-events/{event.id}", json=event.document(), timeout=10)
    assert answer.status_code in (201, 202), answer.text


def test_login_refuses_a_bad_token_then_accepts_the_admin_token(page: Page, system: System) -> None:
    page.goto(system.url + "/")
    expect(page.get_by_role("heading", name="Log in to prodflow")).to_be_visible()
    page.get_by_label("API token").fill("pf_not-a-token")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert").filter(has_text="unknown, revoked or expired")).to_be_visible()
    shot(page, "login-refused")
    page.get_by_label("API token").fill(system.token)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Production requests")).to_be_visible()
    expect(page.locator("#who-name")).to_have_text(re.compile(r"admin"))
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in to prodflow")).to_be_visible()


def test_health_lists_every_service(page: Page, system: System) -> None:
    log_in(page, system)
    page.get_by_role("link", name="Health").click()
    table = page.get_by_role("table")
    for part in ("gateway", "couchdb", "request-api", "submitter", "monitor", "cycle-runner", "notifier"):
        row = table.get_by_role("row").filter(has=page.get_by_role("cell", name=part, exact=True))
        expect(row.get_by_text("ok", exact=True)).to_be_visible()
    shot(page, "health")


def test_event_feed_shows_events_as_they_happen_and_filters_them(page: Page, system: System) -> None:
    log_in(page, system)
    page.get_by_role("link", name="Events").click()
    expect(page.locator("#stream-state")).to_have_text("live")
    _publish(system.couch_url, "label.completed", "2026-11_browser_v1", {"label": "2026-11_browser_v1"})
    _publish(system.couch_url, "job.completed", "job:2026-11_browser_v1:M:1:0:p1", {"label": "2026-11_browser_v1"})
    feed = page.get_by_role("list", name="Events, newest first")
    expect(feed.get_by_text("label.completed")).to_be_visible()
    expect(feed.get_by_text("job.completed")).to_be_visible()
    page.get_by_label("Type contains").fill("label.")
    expect(feed.get_by_text("job.completed")).to_have_count(0)
    expect(feed.get_by_text("label.completed")).to_be_visible()
    shot(page, "events")


def test_admin_makes_a_reader_token_and_the_reader_sees_no_admin_pages(page: Page, system: System) -> None:
    log_in(page, system)
    page.get_by_role("link", name="Tokens").click()
    page.get_by_label("User").fill("dana")
    page.get_by_label("Experiments").fill("snoplus")
    page.get_by_role("button", name="Create token").click()
    secret = page.locator("#new-secret")
    expect(secret).to_have_text(re.compile(r"^pf_"))
    expect(page.get_by_role("row").filter(has_text="dana")).to_contain_text("reader")
    shot(page, "tokens")
    reader_token = secret.inner_text()

    page.get_by_role("link", name="Sites").click()
    page.get_by_role("button", name="Edit local").click()
    definition = page.get_by_label("Definition (JSON)")
    spec = json.loads(definition.input_value())
    definition.fill(json.dumps({**spec, "max_running": 7}))
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status").filter(has_text="local saved.")).to_be_visible()
    local = page.get_by_role("row").filter(has=page.get_by_role("cell", name="local", exact=True))
    expect(local.get_by_role("cell", name="7", exact=True)).to_be_visible()

    page.get_by_role("button", name="Log out").click()
    log_in(page, system, reader_token)
    expect(page.locator("#who-name")).to_have_text("dana · reader")
    expect(page.get_by_role("link", name="Tokens")).to_be_hidden()
    page.get_by_role("link", name="Sites").click()
    row = page.get_by_role("row").filter(has=page.get_by_role("cell", name="local", exact=True))
    row.get_by_role("button", name="Drain local").click()
    expect(page.get_by_role("alert")).to_contain_text("403")  # a reader may look, not drain


def test_admin_reads_the_audit_log_filtered_by_path(page: Page, system: System) -> None:
    rid = uuid.uuid4().hex
    made = httpx.post(
        system.url + "/api/auth/tokens",
        json={"user": "audra", "roles": ["reader"], "experiments": ["snoplus"]},
        headers={"Authorization": f"Bearer {system.token}", "X-Request-ID": rid},
        timeout=10,
    )
    assert made.status_code == 201, made.text
    log_in(page, system)
    page.get_by_role("link", name="Audit").click()
    expect(page.get_by_role("heading", name="Audit log")).to_be_visible()
    page.get_by_label("Path starts with").fill("/api/auth/tokens")
    page.get_by_role("button", name="Filter").click()
    row = page.get_by_role("row").filter(has_text=rid)
    expect(row).to_contain_text(made.json()["id"])
    expect(row).to_contain_text("POST")
    expect(row.get_by_text("201", exact=True)).to_be_visible()
    expect(page.get_by_role("row").filter(has_text="/api/sites")).to_have_count(0)
    shot(page, "audit")


def test_the_gateway_serves_the_dashboard_beside_the_api(system: System) -> None:
    index = httpx.get(system.url + "/", timeout=10)
    assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
    assert "Content-Security-Policy" in index.text
    assert httpx.get(system.url + "/js/app.js", timeout=10).headers["content-type"].startswith("text/javascript")
    missing = httpx.get(system.url + "/no-such-page", timeout=10)
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    assert httpx.get(system.url + "/api/requests", timeout=10).status_code == 401  # the API still needs a token


def test_webhooks_page_shows_a_failing_webhook_its_deliveries_and_resumes_it(page: Page, system: System) -> None:
    answers = {"status": 500}

    async def hook(_request: Request) -> Response:
        return Response(status_code=answers["status"])

    with serving(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as receiver, system.client() as api:
        body = {"url": f"{receiver}/hook", "event_types": ["org.prodflow.label.*"], "experiments": ["snoplus"]}
        made = api.post("/api/webhooks", json=body).json()
        _publish(system.couch_url, "label.completed", "2026-11_hook_v1", {"label": "2026-11_hook_v1"})
        deadline = time.monotonic() + 30
        while api.get(f"/api/webhooks/{made['id']}").json()["state"] != "failing":
            assert time.monotonic() < deadline, "the webhook was not given up on"
            time.sleep(0.2)
        log_in(page, system)
        page.get_by_role("link", name="Webhooks").click()
        row = page.get_by_role("row").filter(has_text=made["id"])
        expect(row.get_by_text("failing", exact=True)).to_be_visible()
        row.get_by_role("button", name=f"Deliveries of {made['id']}").click()
        expect(page.get_by_role("heading", name=f"Last deliveries of {made['id']}")).to_be_visible()
        expect(page.get_by_role("cell", name="500", exact=True).first).to_be_visible()
        shot(page, "webhooks")
        answers["status"] = 204
        row.get_by_role("button", name=f"Resume {made['id']}").click()
        expect(row.get_by_text("ok", exact=True)).to_be_visible()
        deadline = time.monotonic() + 30
        while api.get(f"/api/webhooks/{made['id']}").json()["pending"]:
            assert time.monotonic() < deadline, "the event was not delivered after resuming"
            time.sleep(0.2)
        row.get_by_role("button", name=f"Deliveries of {made['id']}").click()
        expect(page.get_by_role("cell", name="204", exact=True)).to_be_visible()


def test_provenance_page_asks_one_way_and_shows_the_problem_of_an_unknown_file(page: Page, system: System) -> None:
    log_in(page, system)
    page.get_by_role("link", name="Provenance").click()
    expect(page.get_by_role("heading", name="Where did this file come from?")).to_be_visible()
    page.get_by_label("File name").fill("never-made.root")
    page.get_by_role("button", name="Trace").click()
    expect(page.get_by_role("alert")).to_have_text("Give both the file name and its adler32.")
    page.get_by_label("Job id").fill("some-job")
    page.get_by_role("button", name="Trace").click()
    expect(page.get_by_role("alert")).to_contain_text("Fill only one way to ask")
    page.get_by_label("Job id").fill("")
    page.get_by_label("adler32 (8 hex digits)").fill("0a1b2c3d")
    page.get_by_role("button", name="Trace").click()
    expect(page.get_by_role("alert")).to_contain_text("404")  # no record of it: the problem, as other pages show one
    assert "name=never-made.root&adler32=0a1b2c3d" in page.url  # a link to the same question
    shot(page, "provenance-unknown")
