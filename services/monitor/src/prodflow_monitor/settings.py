"""Settings of monitor (env prefix ``MONITOR_``; shared ones ``PRODFLOW_``)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from prodflow_core.settings import ServiceSettings

DEFAULT_PORT = 8003


class MonitorSettings(ServiceSettings):
    """Settings of monitor."""

    model_config = SettingsConfigDict(env_prefix="MONITOR_", extra="ignore", populate_by_name=True)

    port: int = DEFAULT_PORT
    database_url: str | None = None

    def sql_url(self) -> str:
        """The SQL database: ``MONITOR_DATABASE_URL`` or an SQLite file under the data folder."""
        return self.database_url or self.sqlite_url("monitor")
