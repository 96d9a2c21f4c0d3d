"""Snakemake logger plugin of prodflow: one JSON object per Snakemake log event, appended to a file.

Snakemake loads it with ``--logger prodflow --logger-prodflow-events FILE``. The cycle-runner tails the file and
turns it into run progress (jobs done / total, rules, failures) and into the provenance record of every file a job
made (its rule, wildcards and input files), without parsing Snakemake's text output.
This module runs inside the cycle's environment, where Snakemake is installed.
"""

# mypy: ignore-errors
# No `from __future__ import annotations`: Snakemake reads the settings' field types at run time.
import json
import time
from dataclasses import dataclass, field
from logging import LogRecord
from typing import Any

from snakemake_interface_logger_plugins.base import LogHandlerBase
from snakemake_interface_logger_plugins.common import LogEvent
from snakemake_interface_logger_plugins.settings import LogHandlerSettingsBase

_JOB_FIELDS = ("jobid", "rule_name", "wildcards", "input", "output")
"""What progress and provenance need of a started job: its rule, wildcards and file paths. Reasons, resources and
shell commands are in the text log (and cost time on big DAGs)."""
_ERROR_FIELDS = ("jobid", "rule_name", "wildcards", "output", "log")


@dataclass
class LogHandlerSettings(LogHandlerSettingsBase):
    """``--logger-prodflow-events FILE``: where the JSON lines go."""

    events: str | None = field(
        default=None,
        metadata={"help": "File to append one JSON line per Snakemake log event to.", "env_var": True, "type": str},
    )


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_clean(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def event_of(record: LogRecord) -> dict[str, Any] | None:
    """The JSON object for one Snakemake log record, or ``None`` for records without a structured event."""
    kind = getattr(record, "event", None)
    if kind is None:
        return None
    doc: dict[str, Any] = {"event": str(kind), "t": round(record.created, 3)}
    if kind == LogEvent.PROGRESS:
        doc.update(done=record.done, total=record.total)
    elif kind == LogEvent.RUN_INFO:
        doc["stats"] = _clean(getattr(record, "stats", {}))
    elif kind == LogEvent.JOB_INFO:
        doc.update({k: _clean(getattr(record, k, None)) for k in _JOB_FIELDS if hasattr(record, k)})
    elif kind == LogEvent.JOB_ERROR:
        doc.update({k: _clean(getattr(record, k, None)) for k in _ERROR_FIELDS if hasattr(record, k)})
    elif kind == LogEvent.JOB_STARTED:
        doc["jobs"] = _clean(getattr(record, "jobs", []))
    elif kind == LogEvent.JOB_FINISHED:
        doc["jobid"] = getattr(record, "job_id", None)
    elif kind == LogEvent.WORKFLOW_STARTED:
        doc.update(workflow_id=str(getattr(record, "workflow_id", "")), snakefile=str(getattr(record, "snakefile", "")))
    elif kind in (LogEvent.ERROR, LogEvent.GROUP_ERROR):
        doc.update(exception=str(getattr(record, "exception", "")), message=record.getMessage()[:2000])
    elif kind in (LogEvent.SHELLCMD, LogEvent.DEBUG_DAG, LogEvent.RULEGRAPH, LogEvent.RESOURCES_INFO):
        return None
    return doc


class LogHandler(LogHandlerBase):
    """Appends :func:`event_of` records to the events file, flushed per record so a tail sees them at once."""

    def __post_init__(self) -> None:
        path = self.settings.events if self.settings is not None else None
        self._out = open(path, "a", encoding="utf-8", buffering=1) if path else None  # noqa: SIM115
        # A dry run starts no job: its plan (run_info) is the progress; one line per planned job would only cost time.
        self._skipped = {LogEvent.JOB_INFO} if getattr(self.common_settings, "dryrun", False) else set()

    def emit(self, record: LogRecord) -> None:
        if self._out is None:
            return
        if getattr(record, "event", None) in self._skipped:
            return
        try:
            doc = event_of(record)
            if doc is not None:
                self._out.write(json.dumps(doc, separators=(",", ":")) + "\n")
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        if self._out is not None:
            self._out.write(json.dumps({"event": "closed", "t": round(time.time(), 3)}) + "\n")
            self._out.close()
            self._out = None
        super().close()

    @property
    def writes_to_stream(self) -> bool:
        return False

    @property
    def writes_to_file(self) -> bool:
        return False

    @property
    def has_filter(self) -> bool:
        return True

    @property
    def has_formatter(self) -> bool:
        return True

    @property
    def needs_rulegraph(self) -> bool:
        return False
