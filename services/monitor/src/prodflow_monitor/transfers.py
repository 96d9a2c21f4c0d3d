"""Outputs of finished jobs: found in the job's folder, copied to the site's storage element with adler32, and
what the job document becomes (``completed`` with its outputs, a retry after a back-off, or ``partFail``)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prodflow_core.backends import Backend, BackendError, LocalBackend
from prodflow_core.backends.local_folder import read_json
from prodflow_core.events import utc_now
from prodflow_core.jobdocs import COMPLETED, TRANSFERRING, job_output_dir, parse_job_id

from prodflow_monitor.active import ActiveJobs, backend_id_of
from prodflow_monitor.metrics import MonitorMetrics
from prodflow_monitor.provenance.records import OutputRecords, Written
from prodflow_monitor.reconcile import Move, after_part_fail, apply_moves
from prodflow_monitor.report import CycleReport
from prodflow_monitor.settings import MonitorSettings
from prodflow_monitor.sites import Site, SiteDirectory, policy_for
from prodflow_monitor.storage import OutputFile, TransferError, output_files, transfer_outputs

_log = logging.getLogger("prodflow.monitor.transfers")
Doc = dict[str, Any]


def output_folder(doc: Mapping[str, Any], site: Site | None, backend: Backend | None) -> Path | None:
    """Where the job wrote its outputs.

    In order: the job's own ``output_dir`` (or ``backend.output_dir``) as submitter recorded it; the site's
    ``options.output_root`` with :func:`job_output_dir`; for the ``local`` backend, the folder its job spec names.
    """
    for value in (doc.get("output_dir"), (doc.get("backend") or {}).get("output_dir")):
        if value:
            return Path(str(value))
    if site is not None and site.options.get("output_root"):
        return job_output_dir(Path(str(site.options["output_root"])), str(doc["_id"]))
    backend_id = backend_id_of(doc)
    if isinstance(backend, LocalBackend) and backend_id:
        spec = read_json(backend.root.job_dir(backend_id) / "spec.json")
        if spec and spec.get("output_dir"):
            return Path(str(spec["output_dir"]))
    return None


def destination_of(doc: Mapping[str, Any], storage_element: str) -> str:
    """The storage element folder of a job's outputs: ``<se>/<label>/<module>/<run>_<chunk>_p<pass>``."""
    label, module, run, chunk, pass_number = parse_job_id(str(doc["_id"]))
    return f"{storage_element.rstrip('/')}/{label}/{module}/{run}_{chunk}_p{pass_number}"


@dataclass
class _Transfer:
    outputs: list[OutputFile] | None
    error: str | None


class OutputTransfers:
    """Copies the outputs of transferring jobs, at most ``transfer_concurrency`` at once, and backs off failures."""

    def __init__(
        self, settings: MonitorSettings, sites: SiteDirectory, metrics: MonitorMetrics, records: OutputRecords | None
    ) -> None:
        self.settings = settings
        self.records = records
        self.sites = sites
        self.metrics = metrics
        self.default_storage_element = f"file://{(settings.data_dir / 'se').resolve()}"
        self._after: dict[str, float] = {}
        self._gate = asyncio.Semaphore(settings.transfer_concurrency)

    def forget(self, doc_id: str) -> None:
        """The job is no longer transferring: drop its back-off."""
        self._after.pop(doc_id, None)

    async def quick_to_copy(self, docs: list[Doc], site: Site, backend: Backend) -> list[Doc]:
        """Those of ``docs`` (just finished at ``site``) whose outputs are at most ``copy_at_once_bytes``: copied in
        the same cycle, their documents are written once instead of twice (``transferring``, then ``completed``),
        holding their slots only as long as a small copy takes."""
        limit = self.settings.copy_at_once_bytes

        def small(doc: Doc) -> bool:
            folder = output_folder(doc, site, backend)
            if folder is None or not folder.is_dir():
                return False  # the transfer's own error path, with its retries, reports it
            total = 0
            for _name, path in output_files(folder):
                total += path.stat().st_size
                if total > limit:
                    return False
            return True

        if limit <= 0 or not docs:
            return []
        return await asyncio.to_thread(lambda: [doc for doc in docs if small(doc)])

    def ready(self, active: ActiveJobs) -> tuple[list[Doc], bool]:
        """Up to ``transfer_batch`` transferring jobs not backing off, and whether more are waiting."""
        now = time.monotonic()
        docs = [
            doc
            for doc_id in active.transferring
            if (doc := active.docs[doc_id]) and self._after.get(doc_id, 0.0) <= now
        ]
        return docs[: self.settings.transfer_batch], len(docs) > self.settings.transfer_batch

    async def copy(self, database: str, docs: list[Doc], report: CycleReport) -> Callable[[Doc], Doc | None]:
        """Copy the outputs of ``docs`` and record which attempt wrote each; returns the change that records each
        outcome on the current document."""
        sites_by_name = {name: await self.sites.site(name) for name in {doc.get("site") for doc in docs}}
        sites = {str(doc["_id"]): sites_by_name[doc.get("site")] for doc in docs}
        began = time.monotonic()
        results = await asyncio.gather(*(self._transfer(doc, sites[str(doc["_id"])]) for doc in docs))
        report.transfer_s += time.monotonic() - began
        outcome = {str(doc["_id"]): result for doc, result in zip(docs, results, strict=True)}
        at = utc_now()
        if self.records is not None:
            await self.records.write(_written(database, docs, results), at)

        def change(fresh: Doc) -> Doc | None:
            if fresh.get("status") != TRANSFERRING:
                return None
            result = outcome[str(fresh["_id"])]
            if result.outputs is not None:
                new = apply_moves(fresh, [Move(COMPLETED, f"{len(result.outputs)} outputs registered")], at)
                new["outputs"] = [output.as_json() for output in result.outputs]
                new.pop("transfer", None)
                return new
            attempts = int((fresh.get("transfer") or {}).get("attempts", 0)) + 1
            if attempts >= self.settings.transfer_attempts:
                reason = f"outputs not transferred after {attempts} tries: {result.error}"
                policy = policy_for(fresh, sites[str(fresh["_id"])])
                new = apply_moves(fresh, after_part_fail(fresh, reason, policy), at)
                new.pop("transfer", None)
                return new
            return {**fresh, "transfer": {"attempts": attempts, "error": result.error, "at": at}, "updated_at": at}

        return change

    def record(self, written: list[Doc], report: CycleReport) -> None:
        """Count the outcomes written; a failed copy is tried again after a back-off that doubles."""
        for doc in written:
            transfer = doc.get("transfer")
            if transfer:
                report.transfer_failures += 1
                delay = self.settings.transfer_backoff_s * 2 ** (int(transfer["attempts"]) - 1)
                self._after[str(doc["_id"])] = time.monotonic() + delay
            elif doc.get("status") == COMPLETED:
                report.transferred += 1

    async def _transfer(self, doc: Doc, site: Site | None) -> _Transfer:
        try:
            backend = self.sites.backend(site) if site is not None else None
        except BackendError:
            backend = None
        folder = output_folder(doc, site, backend)
        if folder is None:
            self.metrics.transfers.labels("failed").inc()
            return _Transfer(None, "the job's output folder is unknown (no output_dir, no site output_root)")
        se = (site.storage_element if site is not None else "") or self.default_storage_element
        async with self._gate:
            try:
                outputs = await asyncio.to_thread(transfer_outputs, folder, destination_of(doc, se))
            except TransferError as exc:
                self.metrics.transfers.labels("failed").inc()
                _log.warning("transfer of %s failed: %s", doc["_id"], exc)
                return _Transfer(None, str(exc))
        self.metrics.transfers.labels("ok").inc()
        self.metrics.transfer_bytes.inc(sum(output.size for output in outputs))
        return _Transfer(outputs, None)


def _written(database: str, docs: list[Doc], results: list[_Transfer]) -> list[Written]:
    return [
        Written(
            database=database, job_id=str(doc["_id"]), attempt=int(doc.get("attempt", 1)),
            experiment=str(doc.get("experiment", "")), label=str(doc.get("label", "")), name=output.name,
            url=output.url, size=output.size, adler32=output.adler32,
        )
        for doc, result in zip(docs, results, strict=True)
        for output in result.outputs or ()
    ]  # fmt: skip
