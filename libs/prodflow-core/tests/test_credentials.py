"""Credentials of CouchDB: out of URLs and reprs, sent as Authorization; member accounts on CouchDB 3.5."""

from __future__ import annotations

import base64
import uuid
from typing import Any
from urllib.parse import urlsplit

import pytest
from prodflow_core.backends import local_runner
from prodflow_core.couch import CouchClient, CouchError, DesignDocument, View, sync_design_documents
from prodflow_core.couch.members import ensure_member_account
from prodflow_core.credentials import redact_url, split_userinfo, without_service_secrets
from prodflow_core.settings import ServiceSettings
from prodflow_core.testing import serving


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://admin:secret@127.0.0.1:5984", ("http://127.0.0.1:5984", "admin", "secret")),
        ("https://u:p%40ss%2Fw@couch.example/db?x=1", ("https://couch.example/db?x=1", "u", "p@ss/w")),
        ("http://admin:p@ss@h:1/", ("http://h:1/", "admin", "p@ss")),
        ("http://token@h/", ("http://h/", "token", None)),
        ("http://127.0.0.1:5984", ("http://127.0.0.1:5984", None, None)),
    ],
)
def test_split_userinfo(url: str, expected: tuple[str, str | None, str | None]) -> None:
    assert split_userinfo(url) == expected


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            '127.0.0.1:1 - "GET /api/events?token=pf_abc&x=1 HTTP/1.1" 200',
            '127.0.0.1:1 - "GET /api/events?token=***&x=1 HTTP/1.1" 200',
        ),
        ("http://h/x?a=1&Access_Token=s3cr3t#f", "http://h/x?a=1&Access_Token=***#f"),
        ("http://h/x?monkey=1&tokens=2", "http://h/x?monkey=1&tokens=2"),
    ],
)
def test_redact_url_hides_secret_query_parameters(line: str, expected: str) -> None:
    assert redact_url(line) == expected


async def test_the_client_keeps_a_bare_url_and_sends_the_credentials_as_a_header() -> None:
    seen: list[dict[str, Any]] = []

    async def couch(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        seen.append(scope)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b"[]"})

    with serving(couch) as url:
        port = urlsplit(url).port
        async with CouchClient(f"http://admin:hunter2%2Fsecret@127.0.0.1:{port}/") as client:
            assert client.url == f"http://127.0.0.1:{port}"
            assert "hunter2" not in repr(client)
            assert await client.request("GET", "_all_dbs") == []
    assert seen[0]["path"] == "/_all_dbs"
    headers = dict(seen[0]["headers"])
    assert headers[b"authorization"] == b"Basic " + base64.b64encode(b"admin:hunter2/secret")
    assert headers[b"accept-encoding"] == b"identity"  # gzip on a link to CouchDB only costs CPU at both ends


def test_settings_never_show_secrets() -> None:
    settings = ServiceSettings(
        couchdb_url="http://admin:url-secret-1@127.0.0.1:5984",
        couchdb_user="svc",
        couchdb_password="settings-secret-2",
        identity_secret="identity-secret-3",
        log_json=False,
    )
    shown = f"{settings!r} {settings}"
    for secret in ("url-secret-1", "settings-secret-2", "identity-secret-3"):
        assert secret not in shown
    assert settings.identity_secret == "identity-secret-3"
    assert settings.couchdb_auth() == ("svc", "settings-secret-2")
    assert ServiceSettings(log_json=False).couchdb_auth() is None


@pytest.mark.integration
async def test_credentials_by_settings_reach_couchdb3(couchdb3_url: str) -> None:
    bare, user, password = split_userinfo(couchdb3_url)
    assert user and password
    settings = ServiceSettings(couchdb_url=bare, couchdb_user=user, couchdb_password=password, log_json=False)
    async with CouchClient(settings.couchdb_url, auth=settings.couchdb_auth()) as client:
        session = await client.request("GET", "_session")
        assert session["userCtx"]["name"] == user and "_admin" in session["userCtx"]["roles"]


@pytest.mark.integration
async def test_a_member_account_works_with_documents_but_not_design_documents(couchdb3_url: str) -> None:
    """What a service running with its member account can and cannot do on CouchDB 3.5."""
    parts = urlsplit(couchdb3_url)
    bare = f"http://{parts.hostname}:{parts.port}"
    suffix = uuid.uuid4().hex[:8]
    name, password, db_name, other = f"svc-{suffix}", f"pw-{uuid.uuid4().hex}", f"jobs-{suffix}", f"other-{suffix}"
    design = DesignDocument("jobs", {"by_x": View("function (doc) { emit(doc.x, null); }")})
    async with CouchClient(couchdb3_url) as admin:
        await ensure_member_account(admin, name, password, [db_name])
        await ensure_member_account(admin, name, password, [db_name])  # idempotent: password set again
        await sync_design_documents(admin.db(db_name), [design])  # the admin step writes the design documents
        await admin.db(other).ensure()
        await ensure_member_account(admin, f"intruder-{suffix}", "x", [other])  # another service's database
        security = await admin.request("GET", f"{db_name}/_security")
        assert security["members"]["names"] == [name]

    async with CouchClient(bare, auth=(name, password)) as member:
        db = member.db(db_name)
        await db.ensure()  # exists: fine for a member, which may not create databases
        await db.put({"_id": "j1", "x": 1})
        await db.put_local("cursor", {"seq": "1"})
        assert (await db.view("jobs", "by_x")).rows[0]["id"] == "j1"
        assert await sync_design_documents(db, [design]) == []  # unchanged: nothing to write
        with pytest.raises(CouchError) as denied:
            await db.put({"_id": "_design/extra", "views": {}})
        assert denied.value.status == 403
        with pytest.raises(CouchError) as refused:
            await member.db(f"new-{suffix}").ensure()
        assert refused.value.status in (401, 403)
        with pytest.raises(CouchError) as foreign:
            await member.db(other).get_or_none("x")
        assert foreign.value.status == 403

    async with CouchClient(bare, auth=(name, "wrong")) as stranger:
        with pytest.raises(CouchError) as unauthorized:
            await stranger.db(db_name).get_or_none("j1")
        assert unauthorized.value.status == 401


ENVIRON = {
    "PATH": "/usr/bin",
    "HOME": "/root",
    "GITHUB_TOKEN": "not ours: left alone",
    "PRODFLOW_IDENTITY_SECRET": "s1",
    "PRODFLOW_COUCHDB_URL": "http://admin:s2@h:1",
    "PRODFLOW_COUCHDB_PASSWORD": "s3",
    "REQUEST_API_SMTP_PASSWORD": "s4",
    "GATEWAY_BOOTSTRAP_TOKEN": "s5",
    "SUBMITTER_DATABASE_URL": "postgresql://u:s6@db/x",
    "prodflow_identity_secret": "s7",
    "PRODFLOW_DATA_DIR": "/data",
    "PRODFLOW_JOB_ID": "j1",
}


def test_code_we_run_gets_the_environment_without_the_services_secrets() -> None:
    kept = without_service_secrets(ENVIRON)
    assert kept == {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "GITHUB_TOKEN": "not ours: left alone",
        "PRODFLOW_DATA_DIR": "/data",
        "PRODFLOW_JOB_ID": "j1",
    }
    # The local backend's wrapper runs without prodflow installed and keeps a copy of the rule: the same answer.
    assert local_runner.job_environment(ENVIRON) == kept
