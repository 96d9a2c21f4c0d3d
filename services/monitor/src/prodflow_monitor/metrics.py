"""Prometheus metrics of one monitor process (its own registry, so several apps in one process stay apart)."""

from __future__ import annotations

from collections.abc import Iterable

from prodflow_core.couch.compaction import StoreReading
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class MonitorMetrics:
    """The counters, gauges and histograms ``/metrics`` exposes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.jobs = Gauge(
            "prodflow_jobs",
            "Job documents by database and status (kept counts)",
            ["database", "status"],
            registry=self.registry,
        )
        self.active = Gauge(
            "prodflow_monitor_active_jobs",
            "Jobs this replica watches at their backend",
            ["database"],
            registry=self.registry,
        )
        self.moves = Counter(
            "prodflow_monitor_transitions",
            "Job status moves written by this replica",
            ["database", "status"],
            registry=self.registry,
        )
        self.conflicts = Counter(
            "prodflow_monitor_conflicts",
            "Writes refused with 409 and re-applied on a fresh read",
            ["database"],
            registry=self.registry,
        )
        self.transfers = Counter(
            "prodflow_monitor_transfers",
            "Output transfers to storage elements by result",
            ["result"],
            registry=self.registry,
        )
        self.transfer_bytes = Counter(
            "prodflow_monitor_transfer_bytes",
            "Bytes copied to storage elements and verified",
            registry=self.registry,
        )
        self.events = Counter("prodflow_monitor_events", "Events published by type", ["type"], registry=self.registry)
        self.cycle_seconds = Histogram(
            "prodflow_monitor_cycle_seconds",
            "Duration of one polling cycle",
            registry=self.registry,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.backend_seconds = Histogram(
            "prodflow_monitor_backend_status_seconds",
            "Duration of one backend status call",
            ["backend"],
            registry=self.registry,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.backend_errors = Counter(
            "prodflow_monitor_backend_errors", "Backend status calls that failed", ["site"], registry=self.registry
        )
        self.compactions = Counter(
            "prodflow_monitor_compactions",
            "Compactions started by the maintenance, by database and target (database or _design/<name>)",
            ["database", "target"],
            registry=self.registry,
        )
        self.store_gauges = {
            "file": Gauge(
                "prodflow_couch_file_bytes",
                "Bytes a job database or view index file takes on disk, where the server reports it",
                ["database", "design"],
                registry=self.registry,
            ),
            "active": Gauge(
                "prodflow_couch_active_bytes",
                "Bytes of live data in a job database or view index file, where the server reports it",
                ["database", "design"],
                registry=self.registry,
            ),
            "fragmentation": Gauge(
                "prodflow_couch_fragmentation_ratio",
                "1 - active / file bytes: the share a compaction would free (absent where unknown)",
                ["database", "design"],
                registry=self.registry,
            ),
        }

    def show_stores(self, stores: Iterable[StoreReading]) -> None:
        """Replace the size gauges with ``stores`` (``design=""`` for a database itself); a figure the server
        does not report is left out, never shown as 0."""
        for gauge in self.store_gauges.values():
            gauge.clear()
        for store in stores:
            figures = {
                "file": store.sizes.file,
                "active": store.sizes.active,
                "fragmentation": store.sizes.fragmentation,
            }
            for name, value in figures.items():
                if value is not None:
                    self.store_gauges[name].labels(store.database, store.design or "").set(value)
