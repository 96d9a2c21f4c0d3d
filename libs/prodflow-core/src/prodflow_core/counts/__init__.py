"""Job counts kept incrementally from the job databases' ``_changes`` (ARCHITECTURE: reads that stay cheap).

:mod:`~prodflow_core.counts.ledger` applies batches of changed documents; :mod:`~prodflow_core.counts.reads`
answers summaries, label lists, campaign and site counts from the kept rows; :mod:`~prodflow_core.counts.pages`
reads the ledger's rows page by page (the monitor's job listings).
"""

from prodflow_core.counts.ledger import (
    ARCHIVED_MARK,
    Contribution,
    CountsChange,
    CountsCheckpoints,
    JobCounter,
    archival_tombstone,
    contribution_of,
    counted_docs,
    plan_change,
)
from prodflow_core.counts.pages import LedgerRange, ledger_keys
from prodflow_core.counts.reads import (
    LABEL_COUNTS,
    ModuleCount,
    ModuleStats,
    campaign_counts,
    count_differences,
    database_status_counts,
    home_of,
    jobs_in_statuses,
    known_experiments,
    label_counts,
    label_experiments,
    label_home,
    label_jobs,
    label_sites,
    label_status_counts,
    labels_after,
    module_count,
    module_stats,
    site_counts,
)
from prodflow_core.counts.tables import LISTING_INDEXES, count_tables, keep_listing_indexes

__all__ = [
    "ARCHIVED_MARK",
    "LABEL_COUNTS",
    "LISTING_INDEXES",
    "Contribution",
    "CountsChange",
    "CountsCheckpoints",
    "JobCounter",
    "LedgerRange",
    "ModuleCount",
    "ModuleStats",
    "archival_tombstone",
    "campaign_counts",
    "contribution_of",
    "count_differences",
    "count_tables",
    "counted_docs",
    "database_status_counts",
    "home_of",
    "jobs_in_statuses",
    "keep_listing_indexes",
    "known_experiments",
    "label_counts",
    "label_experiments",
    "label_home",
    "label_jobs",
    "label_sites",
    "label_status_counts",
    "labels_after",
    "ledger_keys",
    "module_count",
    "module_stats",
    "plan_change",
    "site_counts",
]
