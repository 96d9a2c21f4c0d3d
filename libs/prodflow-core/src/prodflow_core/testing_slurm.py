"""pytest fixture ``slurm``: a real single-node Slurm for the session (registered by :mod:`prodflow_core.testing`)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from prodflow_core.backends.slurm_cluster import SlurmCluster, SlurmUnavailable, missing_requirement, slurm_cluster
from prodflow_core.couch.server import free_port


@pytest.fixture(scope="session")
def slurm() -> Iterator[SlurmCluster]:
    """A real single-node Slurm (slurm-wlm) in a temporary folder, stopped after the session.

    Backends reach it with options ``slurm_conf=str(slurm.conf)`` and ``jobcomp_log=str(slurm.jobcomp_log)``.
    Skips, naming the reason, only where it cannot start (packages missing, not root).
    """
    reason = missing_requirement()
    if reason:
        pytest.skip(f"single-node Slurm unavailable: {reason}")
    with tempfile.TemporaryDirectory(prefix="prodflow-slurm-") as folder:
        try:
            cluster_cm = slurm_cluster(Path(folder), free_port(), free_port())
            cluster = cluster_cm.__enter__()
        except SlurmUnavailable as exc:
            pytest.skip(f"single-node Slurm did not start: {exc}")
        try:
            yield cluster
        finally:
            cluster_cm.__exit__(None, None, None)
