"""No secret of the system leaks: the whole system on a CouchDB 3.5 that requires a password.

``prodflow up`` runs against a real Apache CouchDB 3.5 (admin party off: the password travels in
``PRODFLOW_COUCHDB_URL``), with a random identity secret and an SMTP server that requires a login, every service
logging at DEBUG (httpx then logs each CouchDB request). A production flow runs (request → approval → mail →
campaign → jobs complete → grab), a token is created, used and revoked, problems and health answers are collected;
each job prints its whole environment. Then every secret the test made (the CouchDB password, the admin token, the
tokens made on the way, the identity secret, the SMTP password) is looked for in: everything ``prodflow up``
printed, every file of its data folder (service logs, job logs and outputs, SQLite databases) but the admin token
file, CouchDB's own log, every document of every database (the events first), and every answer collected.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from prodflow_cli.runner import SERVICES
from prodflow_core.couch import CouchClient
from prodflow_core.couch.couchdb3 import LocalCouchDB3Server, couchdb3_dist, couchdb3_missing_reason
from prodflow_core.couch.server import free_port
from system_support import System, embedded_system, gateway_client, put_toy_module, wait_for

pytestmark = pytest.mark.integration
LABEL = "2026-12_ToyBi214_secrets"
MODULE = "ToyWaterBi214"
# Each job prints its environment first: a secret a job could read would land in its log.
TOY_COMMAND = (
    "env; head -c 1024 /dev/urandom > {output_dir}/{module}_r{run}_s{chunk}_p{pass}.dat && echo events {events}"
)
SMTP_USER = "prodflow-mailer"


@dataclass
class Mailbox:
    """An SMTP server's handler and authenticator: the logins it accepted and the mails it got."""

    password: str
    logins: list[str] = field(default_factory=list)
    mails: list[Envelope] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, _server: SMTP, _session: Session, _envelope: Envelope, _mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data.password.decode() == self.password
        if ok:
            with self.lock:
                self.logins.append(data.login.decode())
        return AuthResult(success=ok)

    async def handle_DATA(self, _server: SMTP, _session: Session, envelope: Envelope) -> str:  # noqa: N802
        with self.lock:
            self.mails.append(envelope)
        return "250 Message accepted for delivery"


@pytest.fixture
def couchdb3(tmp_path: Path) -> Iterator[LocalCouchDB3Server]:
    """A new CouchDB 3.5 for each run: every database starts empty (ids and events of a run repeat)."""
    if couchdb3_dist() is None:
        pytest.skip(couchdb3_missing_reason())
    with LocalCouchDB3Server(data_dir=tmp_path / "couchdb3") as server:
        yield server


@pytest.fixture(scope="module")
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox(password=f"smtp-{secrets.token_urlsafe(18)}")
    port = free_port()
    controller = Controller(
        box, hostname="127.0.0.1", port=port, authenticator=box, auth_require_tls=False, auth_required=True
    )
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


def _token(admin: httpx.Client, user: str, roles: list[str]) -> dict[str, Any]:
    made = admin.post("/api/auth/tokens", json={"user": user, "experiments": ["snoplus"], "roles": roles})
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    return body


def _run_production(system: System, answers: list[str], made: list[str]) -> None:
    """Request → submit → approve → jobs run and complete → grab, through the gateway."""
    with gateway_client(system, system.token) as admin:
        put_toy_module(admin, MODULE, TOY_COMMAND, "toy Bi-214 in water (secrets test payload)")
        requester, manager = _token(admin, "alice", ["requester"]), _token(admin, "maria", ["manager"])
        made += [requester["token"], manager["token"]]
        answers.append(json.dumps(requester | {"token": "(the secret, checked on its own)"}))
    form = {
        "experiment": "snoplus",
        "title": "toy Bi-214, one water run",
        "kind": "production",
        "rat_v": "7.0.15",
        "modules": [{"module": MODULE, "n_ev": 200, "ev_per_run": 200, "run_numbers": [100151]}],
        "label": LABEL,
        "contacts": ["alice@snolab.example.org"],
        "justification": "secrets test",
    }
    with gateway_client(system, requester["token"]) as alice, gateway_client(system, manager["token"]) as maria:
        filed = alice.post("/api/requests", json=form)
        assert filed.status_code == 201, filed.text
        request_id = filed.json()["id"]
        assert alice.post(f"/api/requests/{request_id}/submit").is_success
        forbidden = alice.post(f"/api/requests/{request_id}/approve", json={"note": "self"})
        assert forbidden.status_code == 403, forbidden.text
        answers.append(forbidden.text)
        approved = maria.post(f"/api/requests/{request_id}/approve", json={"note": "go"})
        assert approved.status_code == 200, approved.text

        def completed() -> dict[str, Any] | None:
            body: dict[str, Any] = alice.get(f"/api/requests/{request_id}").json()
            assert body["state"] not in {"failed", "cancelled"}, body
            return body if body["state"] == "completed" else None

        answers.append(json.dumps(wait_for(completed, 120, "the request to complete")))
        manifest = alice.get(f"/api/grab/{LABEL}")
        assert manifest.status_code == 200 and manifest.json()["files"], manifest.text
        answers.append(manifest.text)


def _make_use_and_revoke_a_token(system: System, answers: list[str], made: list[str]) -> None:
    with gateway_client(system, system.token) as admin:
        token = _token(admin, "temp", ["reader"])
        made.append(token["token"])
        with gateway_client(system, token["token"]) as temp:
            assert temp.get("/api/auth/whoami").json()["user"] == "temp"
            answers.append(admin.get("/api/auth/tokens").text)
            revoked = admin.delete(f"/api/auth/tokens/{token['id']}")
            assert revoked.status_code == 200, revoked.text
            answers.append(revoked.text)
            refused = temp.get("/api/auth/whoami")
            assert refused.status_code == 401, refused.text
            answers.append(refused.text)
        for path in ("/api/requests/no-such-request", "/api/labels/no-such-label/summary", "/api/no/such/route"):
            answers.append(admin.get(path).text)  # 404 problems
        answers.append(admin.post("/api/auth/tokens", json={"user": ""}).text)  # 422
        for service in ("request-api", "submitter", "monitor", "cycle-runner"):
            answers.append(admin.get(f"/api/health/{service}").text)
    with httpx.Client(base_url=system.gateway, timeout=30) as anonymous:
        answers.append(anonymous.get("/healthz").text)
        answers.append(anonymous.get("/api/requests", headers={"Authorization": "Bearer pf_not-a-token"}).text)


def _couchdb_passwords(pids: list[int]) -> dict[str, str]:
    """The CouchDB accounts the processes ``pids`` run with (their environment), by user."""
    found = {}
    for pid in pids:
        environ = dict(
            entry.split("=", 1) for entry in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in entry
        )
        if "PRODFLOW_COUCHDB_PASSWORD" in environ:
            found[environ["PRODFLOW_COUCHDB_USER"]] = environ["PRODFLOW_COUCHDB_PASSWORD"]
    return found


async def _all_documents(couch_url: str) -> dict[str, str]:
    """Every document of every database (``_users`` included), as JSON text by database."""
    async with CouchClient(couch_url) as couch:
        names: list[str] = await couch.request("GET", "_all_dbs")
        return {
            name: json.dumps((await couch.db(name).all_docs(include_docs=True)).rows)
            for name in names
            if name != "_replicator"
        }


def _files(folder: Path, *, skip: set[Path]) -> dict[str, str]:
    return {
        str(path): path.read_bytes().decode("utf-8", "replace")
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path not in skip
    }


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
@pytest.mark.parametrize("accounts", ["admin-url", "member-accounts"])
def test_no_secret_appears_in_logs_events_or_answers(
    accounts: str, couchdb3: LocalCouchDB3Server, mailbox: tuple[Mailbox, int], tmp_path: Path
) -> None:
    """The flow runs on an event loop of its own thread: in the whole suite an earlier test can leave the main
    thread's loop marked running, and pytest-asyncio's runner then refuses to start."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _no_secret_leaks(accounts, couchdb3, mailbox, tmp_path)).result()


async def _no_secret_leaks(
    accounts: str, couchdb3: LocalCouchDB3Server, mailbox: tuple[Mailbox, int], tmp_path: Path
) -> None:
    """``admin-url``: every service uses the admin's URL with its password; ``member-accounts``: ``prodflow up
    --member-accounts`` sets up one CouchDB account per service and each runs with its own (by settings)."""
    box, smtp_port = mailbox
    identity_secret = secrets.token_urlsafe(32)
    env = {
        "PRODFLOW_COUCHDB_URL": couchdb3.url,  # http://admin:<password>@127.0.0.1:port
        "PRODFLOW_IDENTITY_SECRET": identity_secret,
        "PRODFLOW_LOG_LEVEL": "DEBUG",
        "REQUEST_API_SMTP_HOST": "127.0.0.1",
        "REQUEST_API_SMTP_PORT": str(smtp_port),
        "REQUEST_API_SMTP_USERNAME": SMTP_USER,
        "REQUEST_API_SMTP_PASSWORD": box.password,
        "REQUEST_API_OUTBOX_POLL_S": "0.5",
    }
    data_dir = tmp_path / "system"
    answers: list[str] = []
    made: list[str] = []
    up_args = ["--member-accounts"] if accounts == "member-accounts" else []
    with embedded_system(data_dir, env, up_args) as system:
        service_passwords = _couchdb_passwords(system.pids)
        _run_production(system, answers, made)
        _make_use_and_revoke_a_token(system, answers, made)
        wait_for(lambda: box.mails, 30, "the approval mail")
        printed = "".join(system.lines) + system.stop()
    assert box.logins and set(box.logins) == {SMTP_USER}  # request-api logged in with the password
    couch_log = couchdb3.log_path.read_text(errors="replace")
    if accounts == "member-accounts":
        assert len(service_passwords) == len(SERVICES), service_passwords.keys()  # one account per service
        for user in service_passwords:
            assert f" 127.0.0.1 {user} " in couch_log, f"no request of {user} in CouchDB's log"
    else:
        assert not service_passwords

    sources = {
        "prodflow up output": printed,
        "answers": "\n".join(answers),
        "couchdb.log": couch_log,
        **_files(data_dir, skip={data_dir / "gateway-admin-token"}),
        **{f"database {name}": docs for name, docs in (await _all_documents(couchdb3.url)).items()},
    }
    # The sources are the real thing: logs with CouchDB requests, jobs' environments, stored events.
    logs = "".join(text for name, text in sources.items() if name.endswith(".log"))
    assert f"CouchDB GET http://127.0.0.1:{couchdb3.port}/" in logs  # each CouchDB call, at DEBUG
    assert "PATH=" in logs and "PRODFLOW_JOB_NAME=" in logs  # a job's printed environment
    assert "org.prodflow.label.completed" in sources["database prodflow-events"]
    assert f"couchdb       http://admin:***@127.0.0.1:{couchdb3.port}" in printed

    wanted = {
        "CouchDB password": couchdb3.password,
        "admin token": system.token,
        "identity secret": identity_secret,
        "SMTP password": box.password,
        **{f"token #{i}": token for i, token in enumerate(made)},
        **{f"CouchDB password of {user}": password for user, password in service_passwords.items()},
    }
    leaks = [
        f"{what} in {where}" for what, secret in wanted.items() for where, text in sources.items() if secret in text
    ]
    assert not leaks, leaks
