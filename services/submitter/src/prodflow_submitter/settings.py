"""Settings of submitter (env prefix ``SUBMITTER_``; shared ones ``PRODFLOW_``)."""

from __future__ import annotations

from pathlib import Path

from prodflow_core.settings import ServiceSettings
from pydantic_settings import SettingsConfigDict

DEFAULT_PORT = 8002


class SubmitterSettings(ServiceSettings):
    """Settings of submitter."""

    model_config = SettingsConfigDict(env_prefix="SUBMITTER_", extra="ignore", populate_by_name=True)

    port: int = DEFAULT_PORT
    database_url: str | None = None
    request_api_url: str = "http://127.0.0.1:8001"
    monitor_url: str = "http://127.0.0.1:8003"
    """Asked for the .exactly of an archived label (whose job documents left the database)."""
    sites_file: Path | None = None
    """A YAML or JSON file of sites (``{"sites": [...]}`` or a list), upserted at start-up."""
    default_site: str = "local"
    """Site of campaigns that name none (also of ``request.approved`` without a site)."""
    embedded_local_site: bool = True
    """Create site ``local`` (backend ``local``) at start-up when no site exists."""
    default_command_template: str | None = None
    """Command template of jobs whose module has none in the catalog and whose site and campaign name none."""
    submit_interval_s: float = 1.0
    submit_batch: int = 500
    """At most this many jobs go to one site's backend per round of the submission loop."""
    bulk_chunk: int = 2000
    job_database_prefix: str = ""
    """Put before ``data-production`` / ``data-processing`` (tests; deployments sharing one CouchDB)."""
    run_submission_loop: bool = True
    follow_events: bool = True
    catalog_timeout_s: float = 10.0
    changes_longpoll_s: float = 10.0
    """How long one ``_changes`` request (job databases, event stream) waits; also bounds shutdown."""
    counted_wait_s: float = 30.0
    """How long an operation on a label's or campaign's jobs waits for the kept counts to take in every change
    made before it (they select the jobs); then a 503 problem."""

    def sql_url(self) -> str:
        """The SQL database: ``SUBMITTER_DATABASE_URL`` or an SQLite file under the data folder."""
        return self.database_url or self.sqlite_url("submitter")

    @property
    def exactly_dir(self) -> Path:
        """Where campaigns' .exactly files are kept."""
        return self.data_dir / "exactly"

    def backend_dir(self, site: str) -> Path:
        """The default ``work_dir`` of a site's backend."""
        return (self.data_dir / "backends" / site).resolve()

    def output_root(self, site: str) -> Path:
        """The default ``output_root`` of a site: jobs write their outputs below it."""
        return (self.data_dir / "outputs" / site).resolve()
