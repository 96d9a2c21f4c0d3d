"""Settings shared by every service.

Each service subclasses :class:`ServiceSettings` with its own env prefix (``SUBMITTER_``, ``MONITOR_``, ...);
the fields defined here are shared by all services and read from ``PRODFLOW_*`` variables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from prodflow_core.credentials import redact_url

DEFAULT_COUCHDB_URL = "http://127.0.0.1:5984"
DEFAULT_IDENTITY_SECRET = "prodflow-dev-secret-change-me"  # noqa: S105 - embedded default, override in production
DEFAULT_JOB_SHARDS = 1


def _shared(name: str) -> AliasChoices:
    return AliasChoices(f"PRODFLOW_{name.upper()}", name)


class ServiceSettings(BaseSettings):
    """Base of every service's settings: shared ``PRODFLOW_`` fields plus the service's own prefix."""

    model_config = SettingsConfigDict(env_prefix="PRODFLOW_", extra="ignore", populate_by_name=True)

    couchdb_url: str = Field(DEFAULT_COUCHDB_URL, validation_alias=_shared("couchdb_url"))
    """The CouchDB server; credentials may be its userinfo (``http://user:password@host:5984``)."""
    couchdb_user: str | None = Field(None, validation_alias=_shared("couchdb_user"))
    """CouchDB user name (``PRODFLOW_COUCHDB_USER``), used instead of the URL's userinfo when set."""
    couchdb_password: SecretStr | None = Field(None, validation_alias=_shared("couchdb_password"))
    """CouchDB password (``PRODFLOW_COUCHDB_PASSWORD``), with ``couchdb_user``."""
    couchdb_job_shards: int = Field(DEFAULT_JOB_SHARDS, ge=1, le=256, validation_alias=_shared("couchdb_job_shards"))
    """Shards (CouchDB 3's ``q``) of a job database when a service creates it (``PRODFLOW_COUCHDB_JOB_SHARDS``).
    Ignored by PouchDB Server and for a database that exists. One by default, not the server's 2: every
    ``_changes`` read, ``_bulk_docs`` and ``_bulk_get`` goes to each shard, which on one node cost a third of
    CouchDB's CPU per job (README, "Choosing q"); a cluster spreading writes over nodes sets more."""
    identity_key: SecretStr = Field(SecretStr(DEFAULT_IDENTITY_SECRET), validation_alias=_shared("identity_secret"))
    """The key that signs identity headers (``PRODFLOW_IDENTITY_SECRET``); read it as :attr:`identity_secret`."""
    opentelemetry: bool = Field(False, validation_alias=_shared("opentelemetry"))
    """FastAPI's native OpenTelemetry spans, metrics and logs (``PRODFLOW_OPENTELEMETRY``), to the global
    providers (e.g. of ``opentelemetry-instrument``). Off by default: FastAPI otherwise asks on every request
    whether a provider is configured, ~3 % of the gateway's CPU under ``bench/load.py``."""
    data_dir: Path = Field(Path(".data"), validation_alias=_shared("data_dir"))
    log_level: str = Field("INFO", validation_alias=_shared("log_level"))
    log_json: bool = Field(True, validation_alias=_shared("log_json"))
    events_db: str = Field("prodflow-events", validation_alias=_shared("events_db"))

    @property
    def identity_secret(self) -> str:
        """The identity key as text (for signing and checking identity headers; never show it)."""
        return self.identity_key.get_secret_value()

    def couchdb_auth(self) -> tuple[str, str] | None:
        """``(user, password)`` from ``couchdb_user``/``couchdb_password``; ``None``: the URL's userinfo, if any."""
        if not self.couchdb_user:
            return None
        password = self.couchdb_password.get_secret_value() if self.couchdb_password else ""
        return self.couchdb_user, password

    def __repr_args__(self) -> Any:
        # URLs (CouchDB, SQL) may carry a password as userinfo; secrets proper are SecretStr and show as '**********'.
        for name, value in super().__repr_args__():
            yield name, redact_url(value) if isinstance(value, str) else value

    def sqlite_url(self, service: str) -> str:
        """The default SQL URL of a service: an SQLite file under the data folder."""
        return f"sqlite+aiosqlite:///{(self.data_dir / f'{service}.sqlite').resolve()}"
