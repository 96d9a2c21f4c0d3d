"""Notification mails: what an approval mail says, and sending one over SMTP."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from html import escape

import aiosmtplib

from prodflow_request_api.settings import RequestApiSettings


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how mail is sent."""

    host: str | None
    port: int
    sender: str
    starttls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout_s: float = 30.0

    @classmethod
    def from_settings(cls, settings: RequestApiSettings) -> SmtpConfig:
        """The SMTP configuration of the service's settings."""
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.smtp_from,
            starttls=settings.smtp_starttls,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            timeout_s=settings.smtp_timeout_s,
        )


KINDS = ("approval", "outcome", "digest")
"""The kinds of mail a user may opt out of (``PUT /api/notifications/me``)."""


@dataclass(frozen=True)
class Mail:
    """A mail to send; ``attachment`` is sent as ``application/json`` named ``attachment_name``.

    ``html`` is the HTML alternative of ``body`` (default: ``body`` as preformatted text); ``list_id`` and
    ``unsubscribe`` become the ``List-Id`` and ``List-Unsubscribe`` headers.
    """

    recipients: tuple[str, ...]
    subject: str
    body: str
    attachment_name: str | None = None
    attachment: bytes | None = None
    html: str | None = None
    list_id: str | None = None
    unsubscribe: str | None = None
    kind: str | None = None
    dedup_key: str | None = None


def list_id(kind: str, experiment: str) -> str:
    """The ``List-Id`` of one kind of mail of one experiment (RFC 2919)."""
    return f"prodflow {kind} mail of {experiment} <{kind}.{experiment}.prodflow.invalid>"


def unsubscribe_url(public_url: str) -> str:
    """Where a user turns a kind of mail off (``PUT``, logged in)."""
    return f"{public_url.rstrip('/')}/api/notifications/me"


def stop_lines(kind: str, public_url: str) -> list[str]:
    """The footer of every mail: how to stop receiving this kind."""
    return [
        "",
        "-- ",
        "prodflow request-api",
        f"You get this {kind} mail as a contact of the request or on the experiment's list. To stop it:",
        f"  uv run prodflow notifications set --{kind} off --address YOUR@ADDRESS",
        f'  or PUT {unsubscribe_url(public_url)} {{"address": "YOUR@ADDRESS", "{kind}": false}}',
        "Managers edit the experiment's lists at /api/notifications/experiments/EXPERIMENT.",
    ]


def html_of(body: str) -> str:
    """``body`` as an HTML document (preformatted: the text mail's columns line up)."""
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>'
        f'<pre style="font-family: monospace">{escape(body)}</pre></body></html>\n'
    )


def recipients(contacts: Iterable[str], mailing_list: Iterable[str]) -> tuple[str, ...]:
    """The request's contacts then the experiment's mailing list, each address once (case-insensitive)."""
    seen: dict[str, str] = {}
    for address in (*contacts, *mailing_list):
        seen.setdefault(address.lower(), address)
    return tuple(seen.values())


def approval_mail(
    *,
    request_id: str,
    experiment: str,
    label: str,
    title: str,
    approver: str,
    note: str,
    jobs: int,
    sha256: str,
    jobs_json: bytes,
    to: Sequence[str],
    public_url: str,
) -> Mail:
    """The mail that tells contacts and the mailing list a request was approved, jobs.json attached."""
    lines = [
        f"The production request {request_id} of {experiment} was approved by {approver}.",
        "",
        f"  title:      {title}",
        f"  label:      {label}",
        f"  jobs:       {jobs}",
        f"  jobs.json:  /api/requests/{request_id}/jobs.json (attached)",
        f"  sha256:     {sha256}",
    ]
    if note:
        lines += ["", "Note from the approver:", note]
    lines += stop_lines("approval", public_url)
    return Mail(
        recipients=tuple(to),
        subject=f"[prodflow] {experiment} request {request_id} approved: {label}",
        body="\n".join(lines) + "\n",
        attachment_name=f"{label}.jobs.json",
        attachment=jobs_json,
        list_id=list_id("approval", experiment),
        unsubscribe=unsubscribe_url(public_url),
        kind="approval",
    )


def message(sender: str, mail: Mail) -> EmailMessage:
    """The MIME message of ``mail``."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(mail.recipients)
    msg["Subject"] = mail.subject
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "prodflow")
    if mail.list_id:
        msg["List-Id"] = mail.list_id
    if mail.unsubscribe:
        msg["List-Unsubscribe"] = f"<{mail.unsubscribe}>"
    msg.set_content(mail.body)
    msg.add_alternative(mail.html or html_of(mail.body), subtype="html")
    if mail.attachment is not None:
        msg.add_attachment(
            mail.attachment, maintype="application", subtype="json", filename=mail.attachment_name or "attachment"
        )
    return msg


class MailNotConfigured(RuntimeError):
    """No SMTP host is set: mails wait in the outbox."""


async def send(config: SmtpConfig, mail: Mail) -> None:
    """Send ``mail`` now; raises on any SMTP or network failure (the outbox retries)."""
    if not config.host:
        raise MailNotConfigured("REQUEST_API_SMTP_HOST is not set")
    await aiosmtplib.send(
        message(config.sender, mail),
        sender=config.sender,
        recipients=list(mail.recipients),
        hostname=config.host,
        port=config.port,
        username=config.username,
        password=config.password,
        start_tls=config.starttls,
        use_tls=False,
        timeout=config.timeout_s,
    )
