"""Notification mails: what an approval mail says, and sending one over SMTP."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

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


@dataclass(frozen=True)
class Mail:
    """A mail to send; ``attachment`` is sent as ``application/json`` named ``attachment_name``."""

    recipients: tuple[str, ...]
    subject: str
    body: str
    attachment_name: str | None = None
    attachment: bytes | None = None


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
    lines += ["", "-- ", "prodflow request-api"]
    return Mail(
        recipients=tuple(to),
        subject=f"[prodflow] {experiment} request {request_id} approved: {label}",
        body="\n".join(lines) + "\n",
        attachment_name=f"{label}.jobs.json",
        attachment=jobs_json,
    )


def message(sender: str, mail: Mail) -> EmailMessage:
    """The MIME message of ``mail``."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(mail.recipients)
    msg["Subject"] = mail.subject
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "prodflow")
    msg.set_content(mail.body)
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
