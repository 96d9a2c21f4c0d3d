"""Compute backends behind one interface (:class:`Backend`), found by name in a registry.

``make_backend(site.backend, site.options)`` builds one; submitter submits and cancels through it, monitor asks
``status``. Names: ``local``, ``slurm``, ``dirac``, ``htcondor``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prodflow_core.backends.base import Backend, BackendError, BackendJob, BackendState, BackendStatus
from prodflow_core.backends.dirac import DiracBackend
from prodflow_core.backends.htcondor import HTCondorBackend
from prodflow_core.backends.local import LocalBackend
from prodflow_core.backends.slurm import SlurmBackend

BACKENDS: dict[str, type[Backend]] = {
    cls.name: cls for cls in (LocalBackend, SlurmBackend, DiracBackend, HTCondorBackend)
}


def backend_names() -> list[str]:
    """The names a site's ``backend`` may take."""
    return sorted(BACKENDS)


def make_backend(name: str, options: Mapping[str, Any]) -> Backend:
    """The backend ``name`` configured from a site's ``options``; :class:`BackendError` if unknown or misconfigured."""
    try:
        cls = BACKENDS[name]
    except KeyError:
        raise BackendError(f"unknown backend {name!r}; known: {', '.join(backend_names())}") from None
    return cls.from_options(options)


__all__ = [
    "BACKENDS",
    "Backend",
    "BackendError",
    "BackendJob",
    "BackendState",
    "BackendStatus",
    "DiracBackend",
    "HTCondorBackend",
    "LocalBackend",
    "SlurmBackend",
    "backend_names",
    "make_backend",
]
