"""Settings shared by every service.

Each service subclasses :class:`ServiceSettings` with its own env prefix (``SUBMITTER_``, ``MONITOR_``, ...);
the fields defined here are shared by all services and read from ``PRODFLOW_*`` variables.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_COUCHDB_URL = "http://127.0.0.1:5984"
DEFAULT_IDENTITY_SECRET = "prodflow-dev-secret-change-me"  # noqa: S105 - embedded default, override in production


def _shared(name: str) -> AliasChoices:
    return AliasChoices(f"PRODFLOW_{name.upper()}", name)


class ServiceSettings(BaseSettings):
    """Base of every service's settings: shared ``PRODFLOW_`` fields plus the service's own prefix."""

    model_config = SettingsConfigDict(env_prefix="PRODFLOW_", extra="ignore", populate_by_name=True)

    couchdb_url: str = Field(DEFAULT_COUCHDB_URL, validation_alias=_shared("couchdb_url"))
    identity_secret: str = Field(DEFAULT_IDENTITY_SECRET, validation_alias=_shared("identity_secret"))
    data_dir: Path = Field(Path(".data"), validation_alias=_shared("data_dir"))
    log_level: str = Field("INFO", validation_alias=_shared("log_level"))
    log_json: bool = Field(True, validation_alias=_shared("log_json"))
    events_db: str = Field("prodflow-events", validation_alias=_shared("events_db"))

    def sqlite_url(self, service: str) -> str:
        """The default SQL URL of a service: an SQLite file under the data folder."""
        return f"sqlite+aiosqlite:///{(self.data_dir / f'{service}.sqlite').resolve()}"
