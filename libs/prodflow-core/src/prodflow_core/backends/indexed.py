"""What the batch-system backends (slurm, dirac, htcondor) share: a name → backend id index, batch folders.

The index is one small JSON file per job name under ``<work_dir>/names``, written right after the batch system
accepted the job, so a re-send of the same name returns the recorded id instead of submitting twice, and
:meth:`~prodflow_core.backends.base.Backend.lookup` finds jobs a crashed submitter did not record.
"""

from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import Sequence
from pathlib import Path

from prodflow_core.backends.base import Backend, BackendJob
from prodflow_core.backends.local_folder import folder_name, read_json, write_json


class IndexedBackend(Backend):
    """A backend whose ``submit`` sends only names it has not submitted before."""

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = Path(work_dir)

    def _index(self, name: str) -> Path:
        return self.work_dir / "names" / folder_name(name)

    async def lookup(self, names: Sequence[str]) -> dict[str, str]:
        entries = {name: read_json(self._index(name)) for name in names}
        return {name: str(entry["id"]) for name, entry in entries.items() if entry is not None}

    async def submit(self, jobs: Sequence[BackendJob]) -> list[str]:
        known = await self.lookup([job.name for job in jobs])
        new = [job for job in jobs if job.name not in known]
        if new:
            submitted = await self.submit_new(new)
            await asyncio.to_thread(self._record, submitted)
            known.update(submitted)
        return [known[job.name] for job in jobs]

    @abc.abstractmethod
    async def submit_new(self, jobs: list[BackendJob]) -> dict[str, str]:
        """Submit jobs never submitted before; returns their backend ids by name."""

    def _record(self, ids: dict[str, str]) -> None:
        for name, backend_id in ids.items():
            write_json(self._index(name), {"id": backend_id})

    def new_batch(self) -> Path:
        """A fresh folder for one batch's scripts and logs (and the index folder, if missing)."""
        batch = self.work_dir / "batches" / f"b{time.time_ns()}"
        batch.mkdir(parents=True)
        (self.work_dir / "names").mkdir(exist_ok=True)
        return batch
