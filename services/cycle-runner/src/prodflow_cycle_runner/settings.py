"""Settings of cycle-runner (env prefix ``CYCLE_RUNNER_``; shared ones ``PRODFLOW_``)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from prodflow_core.settings import ServiceSettings

DEFAULT_PORT = 8004


class CycleRunnerSettings(ServiceSettings):
    """Settings of cycle-runner."""

    model_config = SettingsConfigDict(env_prefix="CYCLE_RUNNER_", extra="ignore", populate_by_name=True)

    port: int = DEFAULT_PORT
    database_url: str | None = None

    def sql_url(self) -> str:
        """The SQL database: ``CYCLE_RUNNER_DATABASE_URL`` or an SQLite file under the data folder."""
        return self.database_url or self.sqlite_url("cycle-runner")
