"""Settings of the gateway (env prefix ``GATEWAY_``; shared ones ``PRODFLOW_``)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from prodflow_core.durations import parse_duration
from prodflow_core.settings import ServiceSettings
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

DEFAULT_PORT = 8000
NEVER = frozenset({"", "0", "none", "never"})


class GatewaySettings(ServiceSettings):
    """Settings of the gateway."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore", populate_by_name=True)

    port: int = DEFAULT_PORT
    database_url: str | None = None
    request_api_url: str = "http://127.0.0.1:8001"
    submitter_url: str = "http://127.0.0.1:8002"
    monitor_url: str = "http://127.0.0.1:8003"
    cycle_runner_url: str = "http://127.0.0.1:8004"
    notifier_url: str = "http://127.0.0.1:8005"
    proxy_timeout_s: float = 60.0
    connect_timeout_s: float = 5.0
    max_body_bytes: int = 64 * 1024 * 1024
    identity_ttl_s: int = 60
    bootstrap_token: SecretStr | None = None
    """Fixes the secret of the first admin token (``GATEWAY_BOOTSTRAP_TOKEN``: docker-compose, tests)."""
    admin_token_file: Path | None = None
    sse_heartbeat_s: float = 15.0
    sse_window: int = Field(10_000, ge=1)
    """Recent changes of the event stream kept in memory for SSE clients (``GATEWAY_SSE_WINDOW``)."""
    sse_window_bytes: int = Field(64 * 1024 * 1024, ge=0)
    """At most this much of their SSE frames (``GATEWAY_SSE_WINDOW_BYTES``), the newest change whatever its size: a
    ``job.*`` event of a big label lists up to 1,000 jobs. A client behind the window reads CouchDB until it joins."""
    sse_settle_s: float = Field(0.05, ge=0.0, le=1.0)
    """After a read of the event stream that came back short, the window waits this long before the next
    (``GATEWAY_SSE_SETTLE_S``): an event reaches SSE clients at most this much later, and a busy stream is read in
    batches instead of once per event written (each read costs CouchDB 3.5 ~2 ms of CPU)."""
    token_cache_s: float = Field(1.0, ge=0.0, le=1.0)
    """How long a token's identity is remembered (``GATEWAY_TOKEN_CACHE_S``, at most 1 s): a revocation made through
    another gateway replica applies here within that time (through this one: at once)."""
    token_default_ttl: timedelta | None = timedelta(days=90)
    """Lifetime of a token created without ``expires_at``/``expires_in`` (``GATEWAY_TOKEN_DEFAULT_TTL``: seconds or
    ``90d``, ``12h``, ...; ``never`` or ``0`` for no default expiry). The first admin token never expires."""
    token_last_used_every_s: float = Field(60.0, gt=0.0)
    """A token's ``last_used_at`` is written at most this often (``GATEWAY_TOKEN_LAST_USED_EVERY_S``)."""
    auth_failure_limit: int = Field(20, ge=1)
    """Failed authentications from one client address within ``auth_failure_window_s`` before it is answered 429
    (``GATEWAY_AUTH_FAILURE_LIMIT``; counted per gateway replica)."""
    auth_failure_window_s: float = Field(60.0, gt=0.0)
    """The window of ``auth_failure_limit`` (``GATEWAY_AUTH_FAILURE_WINDOW_S``)."""
    upstream_connections: int = Field(512, ge=1)
    """Connections kept open to each service at most (``GATEWAY_UPSTREAM_CONNECTIONS``); more calls wait."""

    @field_validator("token_default_ttl", mode="before")
    @classmethod
    def _duration_or_never(cls, value: Any) -> timedelta | None:
        if value is None or (isinstance(value, str) and value.strip().lower() in NEVER):
            return None
        ttl = parse_duration(value)
        return ttl if ttl.total_seconds() > 0 else None

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
            "notifier": self.notifier_url,
        }
