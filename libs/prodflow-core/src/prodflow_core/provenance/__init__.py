"""Provenance: where an output came from, as services record it and as ``GET /api/provenance`` answers."""

from prodflow_core.provenance.schema import (
    Attempt,
    CampaignProvenance,
    CycleFileNode,
    CycleFileProvenance,
    CycleProvenance,
    FileRecord,
    JobOutputProvenance,
    JobProvenance,
    Provenance,
    RequestProvenance,
    RequestStateChange,
    SnakemakeStep,
    SoftwarePin,
)

__all__ = [
    "Attempt",
    "CampaignProvenance",
    "CycleFileNode",
    "CycleFileProvenance",
    "CycleProvenance",
    "FileRecord",
    "JobOutputProvenance",
    "JobProvenance",
    "Provenance",
    "RequestProvenance",
    "RequestStateChange",
    "SnakemakeStep",
    "SoftwarePin",
]
