"""Settings of monitor (env prefix ``MONITOR_``; shared ones ``PRODFLOW_``)."""

from __future__ import annotations

from prodflow_core.jobdocs import JOB_DATABASES
from prodflow_core.settings import ServiceSettings
from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

DEFAULT_PORT = 8003


class MonitorSettings(ServiceSettings):
    """Settings of monitor."""

    model_config = SettingsConfigDict(env_prefix="MONITOR_", extra="ignore", populate_by_name=True)

    port: int = DEFAULT_PORT
    database_url: str | None = Field(
        None, description="SQL database of the kept job counts (replicas share it); default an SQLite file"
    )
    databases: tuple[str, ...] = JOB_DATABASES
    submitter_url: str = "http://127.0.0.1:8002"
    request_api_url: str = Field("http://127.0.0.1:8001", description="request-api, asked for provenance chains")
    cycle_runner_url: str = Field("http://127.0.0.1:8004", description="cycle-runner, asked for cycle files' chains")
    peer_timeout_s: float = Field(10.0, gt=0, description="Timeout of one call to another service")
    sites_ttl_s: float = Field(60.0, description="How long the sites fetched from submitter are reused")
    replica_index: int = Field(0, ge=0, description="This replica's number, 0 .. replicas - 1")
    replicas: int = Field(1, ge=1, le=1024, description="How many monitor replicas share the job space")
    run_loop: bool = Field(True, description="Drive job state (False: serve the API only)")
    cycle_s: float = Field(5.0, gt=0, description="Longest pause between two cycles of backend polling")
    status_batch: int = Field(500, ge=1, description="Backend ids per status call")
    sweep_s: float = Field(
        120.0,
        gt=0,
        description="At a site whose backend keeps a change journal, each active job is also polled "
        "once per sweep_s (in slices): the safety net for changes the journal cannot show",
    )
    journal_poll_s: float = Field(0.05, gt=0, description="How often backends' change journals are checked")
    resync_s: float = Field(300.0, gt=0, description="Re-read the index of active jobs this often (safety net)")
    lost_grace_s: float = Field(60.0, ge=0, description="A job unknown to its backend this soon after submission")
    transfer_concurrency: int = Field(8, ge=1)
    transfer_batch: int = Field(200, ge=1, description="Jobs whose outputs are copied per cycle (then written)")
    transfer_attempts: int = Field(5, ge=1, description="Failed output transfers before the job is partFail")
    transfer_backoff_s: float = Field(10.0, ge=0, description="Pause before retrying a failed transfer (doubles)")
    copy_at_once_bytes: int = Field(
        16 * 1024 * 1024,
        ge=0,
        description="A finished job's outputs up to this size are copied in the cycle that sees it finish, and its "
        "document is written once (transferring and completed); larger ones are written transferring first, which "
        "frees the job's slot, and copied after; 0 always does the latter",
    )
    followed_docs: int = Field(
        50_000,
        ge=0,
        description="Job documents held as last followed (~1 KB each), read by job lists and by the loop's writes "
        "instead of CouchDB; 0 holds none",
    )
    label_scope_ttl_s: float = Field(
        5.0,
        ge=0,
        description="How long a job list reuses which experiments hold its label (an experiment that gets jobs "
        "of a label already listed shows up this much later); 0 reads it every time",
    )
    changes_batch: int = Field(1000, ge=1)
    lookahead_s: float = Field(
        0.5,
        ge=0,
        description="While a job feed is behind, how often the changes past it are looked at and the labels with "
        "few of them counted at once (prodflow_monitor.lookahead); 0 turns it off",
    )
    changes_longpoll_s: float = Field(10.0, gt=0)
    maintenance_s: float = Field(
        300.0,
        ge=0,
        description="Pause between two maintenance passes over the job databases (compaction, view cleanup), run "
        "by replica 0 when it drives job state; 0 turns maintenance off",
    )
    compact_fragmentation: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Compact a job database or view index when 1 - active/file size reaches this share",
    )
    compact_min_bytes: int = Field(
        16 * 1024 * 1024, ge=0, description="Leave database and view index files smaller than this alone"
    )

    @model_validator(mode="after")
    def _replica_in_range(self) -> MonitorSettings:
        if self.replica_index >= self.replicas:
            raise ValueError(f"replica_index {self.replica_index} must be below replicas {self.replicas}")
        return self

    def sql_url(self) -> str:
        """The SQL database: ``MONITOR_DATABASE_URL`` or an SQLite file under the data folder."""
        return self.database_url or self.sqlite_url("monitor")
