"""Mail through the whole system (``prodflow up``, every service a real process, a real SMTP server on loopback):

one request runs to ``completed`` and one to ``failed`` on the local backend; each mails its contacts once with
its counts (the failed one with its failing module and exit code), a contact who opted out over the gateway gets
nothing, and the failures reach the experiment's support list as one digest.
"""

from __future__ import annotations

import email
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from prodflow_core.couch.server import free_port
from system_support import System, embedded_system, gateway_client, put_toy_module, snoplus_token, wait_for

pytestmark = pytest.mark.integration

SUPPORT = "snoplus-vo-support@example.org"  # the packaged catalog's SNO+ list
RUNS = [100151, 100152]
GOOD = ("ToyMailGood", "head -c 1024 /dev/urandom > {output_dir}/{module}_r{run}_p{pass}.dat && echo events {events}")
BAD = ("ToyMailBad", "echo 'no geometry'; exit 3")


@dataclass
class Inbox:
    """What the SMTP server received, parsed."""

    mails: list[tuple[list[str], EmailMessage]] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        message = email.message_from_bytes(envelope.original_content or envelope.content, policy=default)  # type: ignore[arg-type]
        assert isinstance(message, EmailMessage)
        self.mails.append((list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

    def about(self, words: str) -> list[tuple[list[str], str]]:
        """(recipients, plain text) of the mails whose subject contains ``words``."""
        found = []
        for to, message in self.mails:
            if words in str(message["Subject"]):
                part = message.get_body(preferencelist=("plain",))
                assert part is not None
                found.append((to, str(part.get_content()).replace("\r\n", "\n")))
        return found


@pytest.fixture(scope="module")
def inbox() -> Iterator[tuple[Inbox, int]]:
    received, port = Inbox(), free_port()
    controller = Controller(received, hostname="127.0.0.1", port=port)
    controller.start()
    yield received, port
    controller.stop()


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory, inbox: tuple[Inbox, int]) -> Iterator[System]:
    env = {
        "REQUEST_API_SMTP_HOST": "127.0.0.1",
        "REQUEST_API_SMTP_PORT": str(inbox[1]),
        "REQUEST_API_SMTP_FROM": "prodflow@snolab.example.org",
        "REQUEST_API_DIGEST_GATHER_S": "2",
        "REQUEST_API_OUTBOX_POLL_S": "0.5",
    }
    with embedded_system(tmp_path_factory.mktemp("mail"), extra_env=env) as running:
        yield running


def _form(label: str, module: str, contacts: list[str]) -> dict[str, Any]:
    return {
        "experiment": "snoplus",
        "title": f"toy {module}",
        "kind": "production",
        "rat_v": "7.0.15",
        "modules": [{"module": module, "n_ev": 100, "ev_per_run": 100, "run_numbers": RUNS}],
        "label": label,
        "contacts": contacts,
        "justification": "mail test",
    }


@pytest.mark.timeout(120)
def test_outcomes_and_digest_reach_the_right_people_once(system: System, inbox: tuple[Inbox, int]) -> None:
    received = inbox[0]
    with gateway_client(system, system.token) as admin:
        for module, command in (GOOD, BAD):
            put_toy_module(admin, module, command, "mail test payload")
        requester, manager = snoplus_token(admin, "alice", "requester"), snoplus_token(admin, "maria", "manager")
        carol = snoplus_token(admin, "carol", "reader")
    with gateway_client(system, carol) as client:
        answer = client.put("/api/notifications/me", json={"address": "carol@queens.example.org", "outcome": False})
        assert answer.status_code == 200, answer.text
    contacts = ["alice@snolab.example.org", "carol@queens.example.org"]
    ids: dict[str, str] = {}
    with gateway_client(system, requester) as alice, gateway_client(system, manager) as maria:
        for label, module in (("2026-12_MailGood_v1", GOOD[0]), ("2026-12_MailBad_v1", BAD[0])):
            filed = alice.post("/api/requests", json=_form(label, module, contacts))
            assert filed.status_code == 201, filed.text
            ids[label] = filed.json()["id"]
            assert alice.post(f"/api/requests/{ids[label]}/submit").is_success
            assert maria.post(f"/api/requests/{ids[label]}/approve").status_code == 200

        def final() -> bool | None:
            found = [alice.get(f"/api/requests/{i}").json()["state"] for i in ids.values()]
            return found == ["completed", "failed"] or None

        wait_for(final, 100, "one request completed and one failed")
        lists = maria.get("/api/notifications/experiments/snoplus").json()
        assert lists["digest_to"] == [SUPPORT] and lists["opted_out"]["digest"] == []

    def mailed() -> bool | None:
        done = received.about(" completed: ") and received.about(" failed: ") and received.about("failure digest")
        return bool(done) or None

    wait_for(mailed, 30, "the outcome mails and the digest", every_s=0.2)
    time.sleep(3)  # nothing more follows
    (good,) = received.about(f"{ids['2026-12_MailGood_v1']} completed: 2026-12_MailGood_v1")
    assert good[0] == ["alice@snolab.example.org"]  # carol opted out; the list gets no outcome mail
    assert "jobs:       completed 2" in good[1] and "events:     200 done of 200 requested" in good[1]
    assert "uv run prodflow grab 2026-12_MailGood_v1 --to ./2026-12_MailGood_v1" in good[1]
    (bad,) = received.about(f"{ids['2026-12_MailBad_v1']} failed: 2026-12_MailBad_v1")
    assert bad[0] == ["alice@snolab.example.org"]
    assert "jobs:       failed 2" in bad[1] and f"{BAD[0]}: 3 (2 jobs)" in bad[1]
    assert f"{system.gateway}/#/jobs?label=2026-12_MailBad_v1&status=failed" in bad[1]
    (digest,) = received.about("failure digest")
    assert digest[0] == [SUPPORT]
    assert "== 2026-12_MailBad_v1 ==" in digest[1] and "failed 2" in digest[1] and f"{BAD[0]}: exit 3 x2" in digest[1]
    assert len(received.about(" approved: ")) == 2
