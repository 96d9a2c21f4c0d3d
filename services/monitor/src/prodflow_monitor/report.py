"""What one monitor cycle did: counts and where the time went (logs, tests, the benchmark)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class CycleReport:
    """What one cycle did (for logs, tests and the benchmark)."""

    polled: int = 0
    moved: int = 0
    transferred: int = 0
    transfer_failures: int = 0
    seconds: float = 0.0
    backend_s: float = 0.0
    write_s: float = 0.0
    transfer_s: float = 0.0
    moves: dict[str, int] = field(default_factory=dict)
