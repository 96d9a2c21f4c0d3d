"""Settings of request-api (env prefix ``REQUEST_API_``; shared ones ``PRODFLOW_``)."""

from __future__ import annotations

from pathlib import Path

from prodflow_core.settings import ServiceSettings
from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

DEFAULT_PORT = 8001


class RequestApiSettings(ServiceSettings):
    """Settings of request-api.

    Mail goes out over SMTP (``REQUEST_API_SMTP_HOST``/``_PORT``/``_FROM``); without a host, approval mails wait in
    the outbox until one is configured. ``REQUEST_API_MAILING_LISTS`` (JSON, experiment → addresses) overrides the
    mailing list the catalog gives an experiment.
    """

    model_config = SettingsConfigDict(env_prefix="REQUEST_API_", extra="ignore", populate_by_name=True)

    port: int = DEFAULT_PORT
    database_url: str | None = None

    catalog_seed: Path | None = None
    """A YAML catalog loaded at start for experiments not yet in the database (default: the packaged one)."""

    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str = "prodflow@localhost"
    smtp_starttls: bool = False
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout_s: float = 30.0
    mailing_lists: dict[str, list[str]] = {}

    public_url: str = "http://127.0.0.1:8000"
    """The gateway's address as users reach it: links in mails (jobs, where to stop a kind of mail)."""
    digest_interval_s: float = 3600.0
    """At most one failure digest per experiment in this time."""
    digest_gather_s: float = 60.0
    """A digest waits this long after the first failure it reports, so one burst of failures makes one mail."""

    mail_max_attempts: int = 12
    mail_retry_s: float = 30.0
    """First pause after a failed delivery; doubled after each further failure up to ``mail_retry_max_s``."""
    mail_retry_max_s: float = 3600.0
    outbox_poll_s: float = 5.0
    """How often the outbox workers look for due mails and unpublished events without being woken."""
    follow_events: bool = True
    """Follow the event stream (campaign.created, label.completed) to move requests on."""
    events_longpoll_s: float = 20.0
    """How long one longpoll of the event stream waits for news (also bounds how long shutdown waits for it)."""

    def sql_url(self) -> str:
        """The SQL database: ``REQUEST_API_DATABASE_URL`` or an SQLite file under the data folder."""
        return self.database_url or self.sqlite_url("request-api")
