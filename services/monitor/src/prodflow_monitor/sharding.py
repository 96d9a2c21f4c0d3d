"""How several monitor replicas split the job space: by a stable hash of the label.

A label belongs to replica ``fnv1a_32(label) % replicas``. Every job of a label is therefore watched by one
replica only, which also decides when the label is complete, so ``label.completed`` has one author. The hash
does not depend on the process (unlike Python's ``hash``), so every replica computes the same split.
"""

from __future__ import annotations

from prodflow_core.jobdocs import parse_job_id

_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193


def label_hash(label: str) -> int:
    """32-bit FNV-1a of the label's UTF-8 bytes."""
    value = _FNV_OFFSET
    for byte in label.encode():
        value = ((value ^ byte) * _FNV_PRIME) & 0xFFFFFFFF
    return value


def replica_of(label: str, replicas: int) -> int:
    """The replica that owns ``label``."""
    return label_hash(label) % replicas


class Shard:
    """The part of the job space one replica owns."""

    def __init__(self, index: int = 0, replicas: int = 1) -> None:
        if not 0 <= index < replicas:
            raise ValueError(f"replica index {index} outside 0 .. {replicas - 1}")
        self.index = index
        self.replicas = replicas

    def owns_label(self, label: str) -> bool:
        """True if this replica watches the jobs of ``label``."""
        return self.replicas == 1 or replica_of(label, self.replicas) == self.index

    def owns_job(self, doc_id: str) -> bool:
        """True if this replica watches job ``doc_id`` (``False`` for ids that are not job ids)."""
        try:
            label = parse_job_id(doc_id)[0]
        except ValueError:
            return False
        return self.owns_label(label)

    def __str__(self) -> str:
        return f"{self.index}of{self.replicas}"
