"""Composing notification mails and the retry schedule, without a server."""

from __future__ import annotations

from prodflow_request_api.mail import approval_mail, message, recipients
from prodflow_request_api.outbox import retry_delay


def test_recipients_keep_order_and_drop_repeats() -> None:
    assert recipients(["a@x.org", "B@y.org"], ["b@Y.org", "list@x.org", "A@x.org"]) == (
        "a@x.org",
        "B@y.org",
        "list@x.org",
    )


def test_approval_mail_carries_jobs_json() -> None:
    content = b'{"format":"prodflow.jobs/1"}\n'
    mail = approval_mail(
        request_id="req-000042",
        experiment="snoplus",
        label="L_v1",
        title="Bi214",
        approver="maria",
        note="for the paper",
        jobs=12,
        sha256="ab" * 32,
        jobs_json=content,
        to=["a@x.org"],
        public_url="https://prodflow.example.org",
    )
    msg = message("prodflow@x.org", mail)
    assert msg["To"] == "a@x.org" and msg["From"] == "prodflow@x.org"
    assert msg["Subject"] == "[prodflow] snoplus request req-000042 approved: L_v1"
    (attachment,) = list(msg.iter_attachments())
    assert attachment.get_filename() == "L_v1.jobs.json"
    assert attachment.get_payload(decode=True) == content
    assert msg["List-Id"] == "prodflow approval mail of snoplus <approval.snoplus.prodflow.invalid>"
    assert msg["List-Unsubscribe"] == "<https://prodflow.example.org/api/notifications/me>"
    html = msg.get_body(preferencelist=("html",))
    assert html is not None and "approved by maria" in html.get_content()
    text = mail.body
    assert "prodflow notifications set --approval off" in text
    assert "for the paper" in text and "/api/requests/req-000042/jobs.json" in text and "ab" * 32 in text


def test_retry_delay_doubles_up_to_the_cap() -> None:
    assert [retry_delay(n, 30) for n in (1, 2, 3)] == [30, 60, 120]
    assert retry_delay(40, 30) == 3600
    assert retry_delay(5, 0.2, max_s=0.5) == 0.5
