"""Settings of the gateway (env prefix ``GATEWAY_``; shared ones ``PRODFLOW_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from prodflow_core.settings import ServiceSettings
from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

DEFAULT_PORT = 8000


class GatewaySettings(ServiceSettings):
    """Settings of the gateway."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore", populate_by_name=True)

    port: int = DEFAULT_PORT
    database_url: str | None = None
    request_api_url: str = "http://127.0.0.1:8001"
    submitter_url: str = "http://127.0.0.1:8002"
    monitor_url: str = "http://127.0.0.1:8003"
    cycle_runner_url: str = "http://127.0.0.1:8004"
    proxy_timeout_s: float = 60.0
    connect_timeout_s: float = 5.0
    max_body_bytes: int = 64 * 1024 * 1024
    identity_ttl_s: int = 60
    bootstrap_token: str | None = None
    admin_token_file: Path | None = None
    sse_heartbeat_s: float = 15.0
    sse_window: int = Field(10_000, ge=1)
    """Recent changes of the event stream kept in memory for SSE clients (``GATEWAY_SSE_WINDOW``)."""
    token_cache_s: float = 10.0
    upstream_pools: int = Field(8, ge=1)
    """Connection pools per service, used in turn (``GATEWAY_UPSTREAM_POOLS``)."""
    upstream_pool_connections: int = Field(64, ge=1)
    """Connections per pool (``GATEWAY_UPSTREAM_POOL_CONNECTIONS``): 8 x 64 = 512 per service by default."""

    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Origins whose browser pages may call the API (``GATEWAY_CORS_ORIGINS``, comma separated, e.g.
    ``https://prodflow.example.org``); empty, the default: no CORS headers, browsers allow same-origin only."""

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return [part.strip() for part in value.split(",") if part.strip()] if isinstance(value, str) else value

    @field_validator("cors_origins")
    @classmethod
    def _explicit_origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            parts = urlsplit(origin)
            bare = parts.path in {"", "/"} and not parts.query and not parts.fragment
            if "*" in origin or parts.scheme not in {"http", "https"} or not parts.netloc or not bare:
                raise ValueError(f"{origin!r} is not an origin (scheme://host[:port]; no '*')")
        return [origin.rstrip("/") for origin in origins]

    def sql_url(self) -> str:
        """The SQL database: ``GATEWAY_DATABASE_URL`` or an SQLite file under the data folder."""
        return self.database_url or self.sqlite_url("gateway")

    def admin_token_path(self) -> Path:
        """Where the first admin token is written (mode 0600)."""
        return self.admin_token_file or self.data_dir / "gateway-admin-token"

    def service_urls(self) -> dict[str, str]:
        """Base URL of each service, by service name."""
        return {
            "request-api": self.request_api_url,
            "submitter": self.submitter_url,
            "monitor": self.monitor_url,
            "cycle-runner": self.cycle_runner_url,
        }
