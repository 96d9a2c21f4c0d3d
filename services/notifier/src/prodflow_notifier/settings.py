"""Settings of the notifier (env prefix ``NOTIFIER_``; shared ones ``PRODFLOW_``)."""

from __future__ import annotations

from prodflow_core.settings import ServiceSettings
from pydantic_settings import SettingsConfigDict

DEFAULT_PORT = 8005


class NotifierSettings(ServiceSettings):
    """Settings of the notifier.

    Outbound requests go only to public addresses, or to those an admin lists in ``NOTIFIER_ALLOWED_NETWORKS``
    (CIDRs, JSON list) or ``NOTIFIER_ALLOWED_HOSTS`` (host names, JSON list); loopback, link-local, private,
    multicast, unspecified and reserved addresses are refused otherwise, at creation and at every connection.
    """

    model_config = SettingsConfigDict(env_prefix="NOTIFIER_", extra="ignore", populate_by_name=True)

    port: int = DEFAULT_PORT
    database_url: str | None = None

    allowed_networks: list[str] = []
    """CIDRs a subscription may reach even though they are not public (``["10.1.0.0/16"]``)."""
    allowed_hosts: list[str] = []
    """Host names a subscription may reach whatever they resolve to (admin's choice)."""

    workers: int = 16
    """Subscriptions delivered to at once; one slow receiver holds one of them."""
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 10.0
    """A receiver must answer within this time (a 2xx within it is a success)."""
    retry_base_s: float = 5.0
    """The pause after a first failed attempt; doubled after each further one (with jitter) up to ``retry_max_s``."""
    retry_max_s: float = 3600.0
    give_up_after_s: float = 86_400.0
    """A delivery failing for this long marks its subscription ``failing`` (the outbox is kept)."""
    poll_s: float = 5.0
    """How often delivery looks for due rows when nothing woke it."""
    events_longpoll_s: float = 20.0
    events_settle_s: float = 0.25
    """After reading the event stream, wait this long before the next read: a webhook leaves at most this much later,
    and a busy stream is read in batches instead of once per event written (each read costs the CouchDB-API server
    ~2 ms of CPU)."""
    rotation_overlap_s: float = 86_400.0
    """After a secret rotation, deliveries are signed with the old secret too for this long."""
    deliveries_kept: int = 200
    """Delivery attempts kept per subscription for ``GET /api/webhooks/{id}/deliveries``."""

    def sql_url(self) -> str:
        """The SQL database: ``NOTIFIER_DATABASE_URL`` or an SQLite file under the data folder."""
        return self.database_url or self.sqlite_url("notifier")
