"""The issue's end-to-end check: through the gateway with bearer tokens, file, approve, fetch jobs.json, get mail.

request-api and the gateway run as real HTTP servers (uvicorn on loopback), beside the CouchDB-API and SMTP
servers of the fixtures.
"""

from __future__ import annotations

import email
from email.policy import default
from pathlib import Path

import httpx
import pytest
from prodflow_core.couch.client import CouchClient
from prodflow_core.testing import serving
from prodflow_request_api.app import create_app
from prodflow_request_api.settings import RequestApiSettings
from request_api_support import SmtpServer, eventually, form, make_settings

gateway_app = pytest.importorskip("prodflow_gateway.app")
gateway_settings = pytest.importorskip("prodflow_gateway.settings")

pytestmark = pytest.mark.integration

BOOTSTRAP = "pf_request-api-e2e-admin"  # a throw-away admin token of this test's gateway


async def test_file_approve_fetch_and_mail(
    tmp_path: Path, couch_url: str, couch: CouchClient, smtp: SmtpServer
) -> None:
    settings = make_settings(tmp_path / "request-api", couch_url, smtp.port)
    try:
        await _scenario(settings, couch_url, tmp_path, smtp)
    finally:
        await couch.db(settings.events_db).drop()


async def _scenario(settings: RequestApiSettings, couch_url: str, tmp_path: Path, smtp: SmtpServer) -> None:
    with serving(create_app(settings)) as request_api_url:
        gateway = gateway_app.create_app(
            gateway_settings.GatewaySettings(
                couchdb_url=couch_url,
                data_dir=tmp_path / "gateway",
                identity_secret=settings.identity_secret,
                bootstrap_token=BOOTSTRAP,
                request_api_url=request_api_url,
                events_db=settings.events_db,
                log_json=False,
            )
        )
        with serving(gateway) as gateway_url:
            async with httpx.AsyncClient(base_url=gateway_url, timeout=30) as client:
                tokens = {}
                for user, role in (("alice", "requester"), ("maria", "manager")):
                    made = await client.post(
                        "/api/auth/tokens",
                        headers={"Authorization": f"Bearer {BOOTSTRAP}"},
                        json={"user": user, "experiments": ["snoplus"], "roles": [role]},
                    )
                    assert made.status_code == 201, made.text
                    tokens[user] = {"Authorization": f"Bearer {made.json()['token']}"}

                filed = await client.post("/api/requests", json=form(), headers=tokens["alice"])
                assert filed.status_code == 201, filed.text
                request_id = filed.json()["id"]
                assert (await client.post(f"/api/requests/{request_id}/submit", headers=tokens["alice"])).is_success
                refused = await client.post(f"/api/requests/{request_id}/approve", headers=tokens["alice"])
                assert refused.status_code == 403
                approved = await client.post(
                    f"/api/requests/{request_id}/approve", json={"note": "go"}, headers=tokens["maria"]
                )
                assert approved.status_code == 200 and approved.json()["state"] == "approved"
                jobs_json = await client.get(f"/api/requests/{request_id}/jobs.json", headers=tokens["alice"])
                assert jobs_json.status_code == 200 and jobs_json.json()["request_id"] == request_id
                module = await client.get("/api/catalog/snoplus/modules/WaterBi214Run", headers=tokens["alice"])
                assert module.json()["command"].startswith("rat ")

                async def delivered() -> bool:
                    return len(smtp.inbox.envelopes) == 1

                await eventually(delivered, what="approval mail")
                message = email.message_from_bytes(smtp.inbox.envelopes[0].content, policy=default)  # type: ignore[arg-type]
                attachment = next(message.iter_attachments())  # type: ignore[attr-defined]
                assert attachment.get_payload(decode=True) == jobs_json.content
