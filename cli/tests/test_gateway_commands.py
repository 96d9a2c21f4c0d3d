"""login/whoami, tokens, health and events against a real gateway and CouchDB-API server."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cli_support import ADMIN_TOKEN, Cli, Gateway
from prodflow_cli.exits import ExitCode
from prodflow_cli.main import app
from prodflow_core.couch.server import free_port
from prodflow_core.events import make_event
from typer.testing import CliRunner

pytestmark = pytest.mark.integration


def test_login_saves_a_checked_token_and_whoami_uses_it(cli: Cli) -> None:
    refused = cli("login", "--token", "pf_wrong", token="-")
    assert refused.code == ExitCode.UNAUTHENTICATED
    assert refused.stderr.strip() == "error: 401 Unauthenticated: unknown, revoked or expired token"
    assert not cli.config.exists()

    done = cli("login", "--token", "-", input=ADMIN_TOKEN + "\n", token="-")
    assert done.code == 0, done.stderr
    assert cli.config.exists() and ADMIN_TOKEN in cli.config.read_text()

    cli.token = None  # from now on only the saved file holds the token
    me = cli("whoami", "--json")
    assert me.code == 0 and me.json()["user"] == "admin" and me.json()["roles"] == ["admin"]
    assert "admin" in cli("whoami").stdout

    assert cli("logout").code == 0
    missing = cli("whoami")
    assert missing.code == ExitCode.UNAUTHENTICATED
    assert "prodflow login" in missing.stderr


def test_login_with_a_data_dir_finds_its_gateway_there(gateway: Gateway, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "gateway-admin-token").write_text(ADMIN_TOKEN + "\n")
    (data / "gateway-url").write_text(gateway.url + "\n")  # what 'prodflow up' writes once it is up
    config = tmp_path / "config.json"
    env = {"PRODFLOW_URL": None, "PRODFLOW_TOKEN": None, "PRODFLOW_CONFIG": str(config)}
    done = CliRunner().invoke(app, ["login", "--data-dir", str(data)], env=env)
    assert done.exit_code == 0, done.stderr
    assert json.loads(config.read_text()) == {"url": gateway.url, "token": ADMIN_TOKEN}


def test_tokens_create_list_revoke(cli: Cli) -> None:
    created = cli("tokens", "create", "carol", "-e", "snoplus", "-r", "reader", "--description", "ci", "--json")
    assert created.code == 0, created.stderr
    token = created.json()
    assert token["token"].startswith("pf_") and token["roles"] == ["reader"]

    listed = cli("tokens", "list", "--user", "carol", "--json").json()
    assert [t["id"] for t in listed] == [token["id"]] and "token" not in listed[0]
    assert token["id"] in cli("tokens", "list").stdout

    as_carol = cli("whoami", "--json", token=token["token"])
    assert as_carol.json()["user"] == "carol"
    forbidden = cli("tokens", "list", token=token["token"])
    assert forbidden.code == ExitCode.FORBIDDEN
    assert forbidden.stderr.startswith("error: 403 Forbidden: 'carol' lacks the 'admin' role")

    assert cli("tokens", "revoke", token["id"]).code == 0
    assert cli("whoami", token=token["token"]).code == ExitCode.UNAUTHENTICATED
    assert cli("tokens", "revoke", "tok-missing").code == ExitCode.NOT_FOUND


def test_tokens_rotate_and_expire_in(cli: Cli) -> None:
    created = cli("tokens", "create", "dave", "-e", "*", "-r", "reader", "--expires-in", "2d", "--json").json()
    expires = datetime.fromisoformat(created["expires_at"]).replace(tzinfo=UTC)
    assert abs(expires - (datetime.now(UTC) + timedelta(days=2))) < timedelta(minutes=1)
    assert cli("tokens", "create", "dave", "-e", "*", "-r", "reader", "--expires-in", "soon").code == 2

    rotated = cli("tokens", "rotate", created["id"], token=created["token"])  # a token may rotate itself
    assert rotated.code == 0, rotated.stderr
    secret = next(line for line in rotated.stdout.split() if line.startswith("pf_"))
    assert cli("whoami", token=created["token"]).code == ExitCode.UNAUTHENTICATED
    assert cli("whoami", "--json", token=secret).json()["token_id"] == created["id"]
    assert "last used" in cli("tokens", "list", "--user", "dave").stdout


def test_audit_lists_token_changes_newest_first_for_admins_only(cli: Cli) -> None:
    created = cli("tokens", "create", "erin", "-e", "*", "-r", "reader", "--json").json()
    assert cli("tokens", "revoke", created["id"]).code == 0

    def entries() -> list[dict[str, object]]:
        found: list[dict[str, object]] = cli("audit", "--path", "/api/auth/tokens", "--json").json()
        return [e for e in found if e["target"] == created["id"]]

    deadline = time.monotonic() + 5
    while len(entries()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [(e["method"], e["status"], e["user"]) for e in entries()] == [
        ("DELETE", 200, "admin"),
        ("POST", 201, "admin"),
    ]
    table = cli("audit", "--user", "admin", "--limit", "1")
    assert table.code == 0 and "DELETE" in table.stdout and "more with --limit" in table.stderr
    reader = cli("tokens", "create", "fay", "-e", "*", "-r", "reader", "--json").json()
    assert cli("audit", token=reader["token"]).code == ExitCode.FORBIDDEN


def test_validation_errors_are_one_line_and_json_on_request(cli: Cli) -> None:
    bad = cli("tokens", "create", "x y", "-e", "snoplus", "-r", "wizard")
    assert bad.code == ExitCode.INVALID
    assert len(bad.stderr.strip().splitlines()) == 1
    assert "user:" in bad.stderr and "roles.0:" in bad.stderr
    as_json = cli("tokens", "create", "x y", "-e", "snoplus", "-r", "wizard", "--json")
    assert as_json.stdout == ""  # errors never go to stdout
    problem = json.loads(as_json.stderr)
    assert problem["status"] == 422 and problem["exit_code"] == ExitCode.INVALID
    assert {e["field"] for e in problem["errors"]} == {"user", "roles.0"}


def test_health_reports_down_services_with_its_own_exit_code(cli: Cli) -> None:
    result = cli("health")
    assert result.code == ExitCode.UNHEALTHY
    assert "couchdb" in result.stdout and "request-api" in result.stdout and "down" in result.stdout
    document = cli("health", "--json").json()
    assert document["checks"]["couchdb"] == "ok" and document["services"]["monitor"]["status"] == "down"
    one = cli("health", "monitor")
    assert one.code == ExitCode.SERVER_ERROR and "502 Bad gateway: monitor is unreachable" in one.stderr


def test_unreachable_gateway(cli: Cli) -> None:
    cli.url = f"http://127.0.0.1:{free_port()}"
    result = cli("whoami")
    assert result.code == ExitCode.UNREACHABLE
    assert result.stderr.startswith(f"error: cannot reach the gateway at {cli.url}")


def test_events_replay_filter_and_resume(cli: Cli, gateway: Gateway, couch_url: str) -> None:
    db = f"{couch_url}/{gateway.settings.events_db}"
    httpx.put(db, timeout=10)
    for n, short in enumerate(["request.submitted", "job.completed", "job.completed", "label.completed"]):
        event = make_event(short, "/tests/cli", subject=f"s{n}", experiment="snoplus", data={"n": n})
        assert httpx.put(f"{db}/{event.id}", json=event.document(), timeout=10).status_code in (201, 202)

    every = cli("events", "--from-start", "--limit", "4", "--json")
    assert every.code == 0, every.stderr
    events = every.lines()
    assert [e["subject"] for e in events] == ["s0", "s1", "s2", "s3"]
    assert all(e["stream_id"] and e["id"].startswith("evt-") for e in events)

    jobs = cli("events", "--from-start", "--type", "job.completed", "--limit", "2", "--json").lines()
    assert [e["data"]["n"] for e in jobs] == [1, 2]

    resumed = cli("events", "--since", events[1]["stream_id"], "--limit", "2", "--json").lines()
    assert [e["subject"] for e in resumed] == ["s2", "s3"]

    human = cli("events", "--from-start", "--limit", "1")
    assert "request.submitted" in human.stdout and "n=0" in human.stdout
