"""The gateway's audit log over the whole embedded system: each state-changing call leaves exactly one entry.

Approvals, cancels, token changes, site edits and campaign creation go through the gateway of ``prodflow up`` (the
submission loop off: no job runs); the audit log then holds one entry per call made, with who, which token and
roles, the experiment, the target and the outcome.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from system_support import System, embedded_system

pytestmark = pytest.mark.integration
MODULE = "ToyAudit"


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    extra_env = {"SUBMITTER_RUN_SUBMISSION_LOOP": "false"}
    with embedded_system(tmp_path_factory.mktemp("audit"), extra_env) as running:
        yield running


class Calls:
    """Clients of the gateway that tag each call with a fresh request id, remembered with what it should log."""

    def __init__(self, system: System) -> None:
        self.system = system
        self.expected: dict[str, dict[str, Any]] = {}

    def call(self, token: str, method: str, path: str, *, ok: int = 200, **kwargs: Any) -> httpx.Response:
        rid = uuid.uuid4().hex
        headers = {"Authorization": f"Bearer {token}", "X-Request-ID": rid}
        answer = httpx.request(method, self.system.gateway + path, headers=headers, timeout=30, **kwargs)
        assert answer.status_code == ok, f"{method} {path}: {answer.status_code} {answer.text}"
        self.expected[rid] = {"method": method, "path": path, "status": answer.status_code}
        answer.request_id = rid  # type: ignore[attr-defined]
        return answer

    def expect(self, answer: httpx.Response, **fields: Any) -> None:
        self.expected[answer.request_id].update(fields)  # type: ignore[attr-defined]


def _form(label: str) -> dict[str, Any]:
    return {
        "experiment": "snoplus",
        "title": "audit trail",
        "kind": "production",
        "rat_v": "7.0.15",
        "modules": [{"module": MODULE, "n_ev": 20, "ev_per_run": 10, "run_numbers": [100151, 100152]}],
        "label": label,
        "contacts": ["alice@snolab.example.org"],
        "justification": "audit test",
    }


def _made(answer: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = answer.json()
    return body


def test_each_state_changing_call_leaves_exactly_one_entry(system: System) -> None:
    calls = Calls(system)
    admin = system.token
    me = httpx.get(f"{system.gateway}/api/auth/whoami", headers={"Authorization": f"Bearer {admin}"}).json()
    module = {"description": "toy", "event_modes": ["run_by_run_events"], "kinds": ["production"],
              "command": "echo {module} {run}", "default_ev_per_run": 10}  # fmt: skip
    put = calls.call(admin, "PUT", f"/api/catalog/snoplus/modules/{MODULE}", ok=201, json=module)
    calls.expect(put, target=MODULE, experiment="snoplus", user="admin")

    # Token changes: create (x2), rotate, and (at the end) revoke.
    maker = {"experiments": ["snoplus"], "description": "audit"}
    made_alice = calls.call(
        admin, "POST", "/api/auth/tokens", ok=201, json={"user": "alice", "roles": ["requester"], **maker}
    )
    made_maria = calls.call(
        admin, "POST", "/api/auth/tokens", ok=201, json={"user": "maria", "roles": ["manager"], **maker}
    )
    alice_id, maria = _made(made_alice)["id"], _made(made_maria)
    calls.expect(made_alice, target=alice_id, user="admin", token_id=me["token_id"], roles=["admin"])
    calls.expect(made_maria, target=maria["id"])
    rotated = calls.call(admin, "POST", f"/api/auth/tokens/{alice_id}/rotate")
    calls.expect(rotated, target=alice_id, user="admin")
    alice = _made(rotated)["token"]

    # An approval.
    filed = calls.call(alice, "POST", "/api/requests", ok=201, json=_form("2026-12_audit_v1"))
    request_id = _made(filed)["id"]
    calls.expect(filed, target=request_id, experiment="snoplus", user="alice", token_id=alice_id, roles=["requester"])
    calls.expect(calls.call(alice, "POST", f"/api/requests/{request_id}/submit"), target=request_id)
    approved = calls.call(maria["token"], "POST", f"/api/requests/{request_id}/approve", json={"note": "go"})
    calls.expect(
        approved, target=request_id, experiment="snoplus", user="maria", token_id=maria["id"], roles=["manager"]
    )

    # A cancel.
    other = _made(calls.call(alice, "POST", "/api/requests", ok=201, json=_form("2026-12_audit_v2")))["id"]
    cancelled = calls.call(alice, "POST", f"/api/requests/{other}/cancel")
    calls.expect(cancelled, target=other, experiment="snoplus", user="alice")

    # A site edit.
    site = httpx.get(f"{system.gateway}/api/sites", headers={"Authorization": f"Bearer {admin}"}).json()[0]
    spec = {k: site[k] for k in ("backend", "storage_element", "max_attempts", "retry_exit_codes", "options")}
    edited = calls.call(admin, "PUT", f"/api/sites/{site['name']}", json={**spec, "max_running": 3})
    calls.expect(edited, target=site["name"], user="admin")

    # A campaign made from a previewed jobs.json.
    preview = calls.call(maria["token"], "POST", "/api/requests/preview", json=_form("2026-12_audit_v3"))
    calls.expect(preview, target=None, experiment="snoplus")
    campaign = calls.call(maria["token"], "POST", "/api/campaigns", ok=201, json={"jobs": _made(preview)["jobs_json"]})
    calls.expect(campaign, target=_made(campaign)["id"], experiment="snoplus", user="maria", roles=["manager"])

    revoked = calls.call(admin, "DELETE", f"/api/auth/tokens/{maria['id']}")
    calls.expect(revoked, target=maria["id"])

    entries = _audit(system, len(calls.expected))
    assert len(entries) == len(calls.expected)  # the whole log: only the calls above, each once
    by_request = {e["request_id"]: e for e in entries}
    assert set(by_request) == set(calls.expected)
    for rid, fields in calls.expected.items():
        entry = by_request[rid]
        assert {k: entry[k] for k in fields} == fields, entry
        assert entry["client"] == "127.0.0.1" and entry["at"]
    assert [e["request_id"] for e in entries] == list(calls.expected)[::-1]  # newest first


def _audit(system: System, expected: int) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {system.token}"}
    deadline = time.monotonic() + 10
    while True:
        page = httpx.get(f"{system.gateway}/api/audit", params={"limit": 1000}, headers=headers, timeout=30)
        assert page.status_code == 200, page.text
        items: list[dict[str, Any]] = page.json()["items"]
        if len(items) >= expected or time.monotonic() > deadline:
            return items
        time.sleep(0.1)
