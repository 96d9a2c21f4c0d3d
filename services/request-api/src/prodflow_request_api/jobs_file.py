"""From a production request to its jobs.json (FORMATS.md): check it against the catalog, then expand it.

Pure functions over plain data. The bytes are canonical (``prodflow_core.jobs_json.dumps``: sorted keys,
compact separators, UTF-8, one trailing newline); modules keep the request's order and runs are listed in
ascending order without repeats, so the same request always gives the same bytes.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prodflow_core.jobs_json import FORMAT, AmbiguousEventMode, EventMode, dumps, event_mode, module_job_count
from prodflow_core.problems import FieldError

from prodflow_request_api.catalog import CatalogView, ModuleSpec
from prodflow_request_api.schemas import ModuleEntry, RequestForm

_SHOWN = 20  # unknown runs named in one error message

_FIELDS_OF_MODE: Mapping[EventMode, frozenset[str]] = {
    EventMode.BY_TIME: frozenset({"t_run", "t_format", "n_runs"}),
    EventMode.BY_EVENTS: frozenset({"n_ev", "ev_per_run"}),
    EventMode.RUN_BY_RUN: frozenset({"n_runs", "run_numbers", "run_ranges"}),
    EventMode.RUN_BY_RUN_EVENTS: frozenset({"n_ev", "ev_per_run", "run_numbers", "run_ranges"}),
}
_MODE_FIELDS = frozenset().union(*_FIELDS_OF_MODE.values())


@dataclass(frozen=True)
class JobsFile:
    """A generated jobs.json: the document, its canonical bytes, their SHA-256 and the job count."""

    document: dict[str, Any]
    content: bytes
    sha256: str
    jobs: int


def run_span(form: RequestForm) -> tuple[int, int] | None:
    """The lowest and highest run the request names (numbers or ranges), or ``None`` when it names none."""
    low: int | None = None
    high: int | None = None
    for entry in form.modules:
        for first, last in _spans(entry):
            low = first if low is None else min(low, first)
            high = last if high is None else max(high, last)
    return None if low is None or high is None else (low, high)


def _spans(entry: ModuleEntry) -> Iterable[tuple[int, int]]:
    if entry.run_numbers:
        yield min(entry.run_numbers), max(entry.run_numbers)
    for run_range in entry.run_ranges or ():
        yield run_range.first, run_range.last


def check_request(form: RequestForm, catalog: CatalogView) -> list[FieldError]:
    """Every way ``form`` disagrees with the catalog, one error per bad field (empty: the request is good).

    ``catalog.runs`` must hold at least the known runs within :func:`run_span` of the request.
    """
    errors: list[FieldError] = []
    seen: dict[tuple[str, str | None], int] = {}
    for index, entry in enumerate(form.modules):
        where = f"modules.{index}"
        spec = catalog.modules.get(entry.module)
        if spec is None:
            known = ", ".join(sorted(catalog.modules)) or "none"
            errors.append(
                _error(
                    f"{where}.module",
                    f"unknown module {entry.module!r} for {catalog.experiment}; known modules: {known}",
                    "unknown_module",
                )
            )
            continue
        key = (entry.module, entry.label)
        if key in seen:
            errors.append(
                _error(
                    f"{where}.module",
                    f"{entry.module!r} is already entry {seen[key]} with the same label: their jobs would share ids",
                    "duplicate_module",
                )
            )
        seen.setdefault(key, index)
        errors.extend(_check_entry(where, entry, spec, form, catalog))
    return errors


def _check_entry(
    where: str, entry: ModuleEntry, spec: ModuleSpec, form: RequestForm, catalog: CatalogView
) -> list[FieldError]:
    errors: list[FieldError] = []
    if spec.rat_versions and form.rat_v not in spec.rat_versions:
        errors.append(
            _error(
                f"{where}.module",
                f"{entry.module!r} does not exist for rat_v {form.rat_v!r} (versions: {', '.join(spec.rat_versions)})",
                "module_version",
            )
        )
    if form.kind not in spec.kinds:
        errors.append(
            _error(
                f"{where}.module",
                f"{entry.module!r} is for {' and '.join(spec.kinds)}, not {form.kind}",
                "kind_mismatch",
            )
        )
    mode_or_error = _mode(where, entry, spec)
    if isinstance(mode_or_error, FieldError):
        return [*errors, mode_or_error]
    mode = mode_or_error
    errors.extend(_check_mode_fields(where, entry, spec, mode))
    if mode.uses_runs:
        errors.extend(_check_runs(where, entry, catalog))
    errors.extend(_check_template(where, entry, spec))
    return errors


def _mode(where: str, entry: ModuleEntry, spec: ModuleSpec) -> EventMode | FieldError:
    """The entry's event mode, or the error saying why it has none the module allows."""
    has_runs = entry.run_numbers is not None or entry.run_ranges is not None
    runs_field = f"{where}.run_numbers" if entry.run_numbers is not None else f"{where}.run_ranges"
    try:
        mode = event_mode(_shape(entry))
    except AmbiguousEventMode as exc:
        if not has_runs and spec.needs_runs and entry.t_run is None:
            return _runs_required(where, entry, spec)
        return _error(where, str(exc), "ambiguous_event_mode")
    if mode in spec.event_modes:
        return mode
    allowed = ", ".join(spec.event_modes)
    if mode.uses_runs and not spec.takes_runs:
        return _error(
            runs_field,
            f"{entry.module!r} is generic (no detector runs): it takes no run_numbers or run_ranges (modes: {allowed})",
            "generic_with_runs",
        )
    if not mode.uses_runs and spec.needs_runs:
        return _runs_required(where, entry, spec)
    return _error(
        where, f"event mode {mode} does not match module {entry.module!r} (modes: {allowed})", "event_mode_mismatch"
    )


def _runs_required(where: str, entry: ModuleEntry, spec: ModuleSpec) -> FieldError:
    modes = ", ".join(spec.event_modes)
    return _error(
        f"{where}.run_numbers",
        f"{entry.module!r} is simulated run by run ({modes}): give run_numbers or run_ranges",
        "runs_required",
    )


def _shape(entry: ModuleEntry) -> dict[str, Any]:
    """The entry's fields as event-mode detection sees them: run ranges count as run numbers."""
    shape = entry.model_dump(exclude_none=True, exclude={"run_ranges"})
    if entry.run_ranges is not None:
        shape.setdefault("run_numbers", [])
    return shape


def _check_mode_fields(where: str, entry: ModuleEntry, spec: ModuleSpec, mode: EventMode) -> list[FieldError]:
    errors: list[FieldError] = []
    present = set(entry.model_dump(exclude_none=True))
    for name in sorted((present & _MODE_FIELDS) - _FIELDS_OF_MODE[mode]):
        errors.append(_error(f"{where}.{name}", f"not used by {mode} entries", "field_not_allowed"))
    if mode is EventMode.BY_TIME:
        errors.extend(
            _error(f"{where}.{name}", f"required by {mode} entries", "missing")
            for name in ("t_format", "n_runs")
            if name not in present
        )
    by_events = mode in (EventMode.BY_EVENTS, EventMode.RUN_BY_RUN_EVENTS)
    if by_events and entry.ev_per_run is None and spec.default_ev_per_run is None:
        message = f"{entry.module!r} has no default events per job in the catalog: give ev_per_run"
        errors.append(_error(f"{where}.ev_per_run", message, "missing"))
    return errors


def _check_runs(where: str, entry: ModuleEntry, catalog: CatalogView) -> list[FieldError]:
    errors: list[FieldError] = []
    if entry.run_numbers is not None:
        if not entry.run_numbers and not entry.run_ranges:
            errors.append(_error(f"{where}.run_numbers", "is empty: a run-by-run entry needs runs", "runs_required"))
        unknown = sorted({run for run in entry.run_numbers if run not in catalog.runs})
        if unknown:
            shown = ", ".join(map(str, unknown[:_SHOWN])) + (
                f" and {len(unknown) - _SHOWN} more" if len(unknown) > _SHOWN else ""
            )
            errors.append(
                _error(
                    f"{where}.run_numbers",
                    f"{len(unknown)} runs are not in the run list of {catalog.experiment}: {shown}",
                    "unknown_runs",
                )
            )
    if entry.run_ranges is not None:
        if not entry.run_ranges and not entry.run_numbers:
            errors.append(_error(f"{where}.run_ranges", "is empty: a run-by-run entry needs runs", "runs_required"))
        for index, run_range in enumerate(entry.run_ranges):
            if not _in_range(catalog.sorted_runs, run_range.first, run_range.last):
                errors.append(
                    _error(
                        f"{where}.run_ranges.{index}",
                        f"{run_range.first}-{run_range.last} holds no run of the run list of {catalog.experiment}",
                        "unknown_runs",
                    )
                )
    return errors


def _check_template(where: str, entry: ModuleEntry, spec: ModuleSpec) -> list[FieldError]:
    given = entry.template or {}
    params = ", ".join(sorted(spec.template_params)) or "none"
    errors = [
        _error(
            f"{where}.template.{key}",
            f"not a template parameter of {entry.module!r} (parameters: {params})",
            "unknown_template_param",
        )
        for key in sorted(given)
        if key not in spec.template_params
    ]
    missing = sorted(key for key, default in spec.template_params.items() if default is None and key not in given)
    if missing:
        errors.append(
            _error(
                f"{where}.template",
                f"{entry.module!r} needs template values for: {', '.join(missing)}",
                "missing_template_param",
            )
        )
    return errors


def _error(field: str, message: str, kind: str) -> FieldError:
    return FieldError(field=field, message=message, type=kind)


def _in_range(sorted_runs: Sequence[int], first: int, last: int) -> Sequence[int]:
    return sorted_runs[bisect_left(sorted_runs, first) : bisect_right(sorted_runs, last)]


def expand_runs(entry: ModuleEntry, sorted_runs: Sequence[int]) -> list[int]:
    """The runs of an entry: its run numbers and the known runs inside its ranges, ascending, no repeats.

    ``sorted_runs`` are the known runs in ascending order.
    """
    runs = set(entry.run_numbers or ())
    for run_range in entry.run_ranges or ():
        runs.update(_in_range(sorted_runs, run_range.first, run_range.last))
    return sorted(runs)


def module_entry(entry: ModuleEntry, spec: ModuleSpec, runs: Sequence[int], priority: int | None) -> dict[str, Any]:
    """The jobs.json module entry of a (checked) request entry: defaults of the catalog filled in."""
    mode = event_mode(_shape(entry))
    out: dict[str, Any] = {"module": entry.module}
    if mode is EventMode.BY_TIME:
        out.update(t_run=entry.t_run, t_format=entry.t_format, n_runs=entry.n_runs)
    if mode in (EventMode.BY_EVENTS, EventMode.RUN_BY_RUN_EVENTS):
        out.update(n_ev=entry.n_ev, ev_per_run=entry.ev_per_run or spec.default_ev_per_run)
    if mode is EventMode.RUN_BY_RUN:
        out["n_runs"] = entry.n_runs or 1
    if mode.uses_runs:
        out["run_numbers"] = list(runs)
    template = {**{k: v for k, v in spec.template_params.items() if v is not None}, **(entry.template or {})}
    if template:
        out["template"] = template
    if entry.label is not None:
        out["label"] = entry.label
    chosen = entry.priority if entry.priority is not None else priority
    if chosen is not None:
        out["priority"] = chosen
    return out


def build_jobs_file(form: RequestForm, catalog: CatalogView, request_id: str | None) -> JobsFile:
    """The jobs.json of a request that :func:`check_request` passed."""
    modules = [
        module_entry(entry, catalog.modules[entry.module], expand_runs(entry, catalog.sorted_runs), form.priority)
        for entry in form.modules
    ]
    document: dict[str, Any] = {
        "format": FORMAT,
        "request_id": request_id,
        "experiment": form.experiment,
        "kind": form.kind,
        "label": form.label,
        "contacts": list(dict.fromkeys(str(c) for c in form.contacts)),
        "ratdb_tag": form.ratdb_tag,
        "rat_v": form.rat_v,
        "modules": modules,
    }
    content = dumps(document)
    jobs = sum(module_job_count(m) for m in modules)
    return JobsFile(document, content, hashlib.sha256(content).hexdigest(), jobs)


def summarise(jobs_file: JobsFile, catalog: CatalogView) -> list[dict[str, Any]]:
    """Per module entry: its event mode, job count, runs and runs per detector-conditions tag."""
    summary = []
    for entry in jobs_file.document["modules"]:
        runs = entry.get("run_numbers", [])
        conditions = Counter(catalog.runs.get(run, "") for run in runs)
        summary.append(
            {
                "module": entry["module"],
                "mode": str(event_mode(entry)),
                "jobs": module_job_count(entry),
                "runs": len(runs),
                "conditions": dict(sorted(conditions.items())),
            }
        )
    return summary
