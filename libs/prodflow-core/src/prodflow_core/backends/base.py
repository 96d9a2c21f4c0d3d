"""The compute-backend interface: ``submit(jobs) -> ids``, ``status(ids) -> states``, ``cancel(ids)``.

Every call is batch-oriented and async. A backend is built from a site's ``options`` (see each backend's
``from_options``) and may be called from any process: everything it needs to answer ``status`` lives at the
backend (files, the batch system), not in the calling process.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from prodflow_core.backends.journal import Changed


class BackendStatus(StrEnum):
    """Normalised state of a job at its backend."""

    PENDING = "pending"  # accepted, not started (queued, held, staging)
    RUNNING = "running"
    COMPLETED = "completed"  # finished with exit code 0
    FAILED = "failed"  # finished with a non-zero exit code, killed by the system, timed out
    CANCELLED = "cancelled"  # cancelled by us (or an operator)
    MISSING = "missing"  # the backend does not know the id (lost, purged, or never submitted)
    UNKNOWN = "unknown"  # the backend answered something we cannot interpret

    @property
    def is_final(self) -> bool:
        return self in {BackendStatus.COMPLETED, BackendStatus.FAILED, BackendStatus.CANCELLED}


class BackendJob(BaseModel):
    """One job handed to a backend: a shell command run in its output folder."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="Unique per (job, attempt): jobdocs.backend_job_name; re-sending it is harmless")
    command: str = Field(description="A /bin/sh command line, already filled from the module's command template")
    output_dir: Path = Field(description="Working folder of the job; its output files land here")
    env: dict[str, str] = Field(default_factory=dict)
    walltime_s: int | None = None


class BackendState(BaseModel):
    """What a backend says about one of its jobs."""

    model_config = ConfigDict(frozen=True)

    backend_id: str
    state: BackendStatus
    native_state: str = Field("", description="The backend's own word (RUNNING, Done, 4, ...)")
    exit_code: int | None = None
    started_at: str | None = None
    finished_at: str | None = None
    reason: str = ""


class BackendError(RuntimeError):
    """A backend refused or failed a call (its command failed, its folder is unusable, ...)."""


class Backend(abc.ABC):
    """A place that runs jobs. Subclasses set ``name`` and implement the three calls."""

    name: str = ""

    @classmethod
    @abc.abstractmethod
    def from_options(cls, options: Mapping[str, Any]) -> Backend:
        """A backend configured from a site's ``options``."""

    @abc.abstractmethod
    async def submit(self, jobs: Sequence[BackendJob]) -> list[str]:
        """Hand ``jobs`` over; returns their backend ids in the same order.

        Backends that can tell (local, slurm) return the existing id for a name already submitted and not lost,
        so a re-send after a crash does not run a job twice.
        """

    @abc.abstractmethod
    async def status(self, backend_ids: Sequence[str]) -> dict[str, BackendState]:
        """The state of each id (ids the backend does not know come back as ``missing``)."""

    @abc.abstractmethod
    async def cancel(self, backend_ids: Sequence[str]) -> None:
        """Cancel the jobs; cancelling a finished or unknown job is not an error."""

    async def lookup(self, names: Sequence[str]) -> dict[str, str]:
        """Backend ids of jobs already submitted under ``names`` (for reconciling after a crash).

        The default knows nothing: such a backend's jobs caught between submit and record are sent again.
        """
        return {}

    async def resume(self) -> None:
        """Called once when a service starts: pick up work left by an earlier process (default: nothing)."""
        return None

    names_are_ids: bool = False
    """True if :meth:`submit` answers each job's name as its id: the id is known before the submission, so the
    submitter records it with its claim and writes nothing after a submission that went through."""

    keeps_journal: bool = False
    """True if the backend names the jobs that changed (:meth:`changed_since`), so a poller can skip the rest."""

    async def changed_since(self, cursor: str | None) -> Changed:
        """Backend ids whose state may have changed after ``cursor`` (``None``: from now on, no ids), and the
        cursor to ask with next time. Only for backends with ``keeps_journal``.
        """
        raise BackendError(f"the {self.name} backend keeps no change journal")

    async def journal_moved(self, cursor: str) -> bool:
        """True if :meth:`changed_since` ``cursor`` would name jobs (cheap: asked several times a second)."""
        return False
