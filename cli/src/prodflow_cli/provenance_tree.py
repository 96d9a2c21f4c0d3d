"""A :class:`~prodflow_core.provenance.schema.Provenance` as a tree of text lines: pure functions, no I/O.

A job output reads file → job (its attempts, command, software) → campaign → request (its state changes). A cycle
file reads file → its cycle (config and pins) and the file DAG from the asked file down through its inputs; a file
that is an input of several steps is drawn once and named again as "shown above".
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

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
    SnakemakeStep,
    SoftwarePin,
)

SEP = " · "


@dataclass(frozen=True)
class Node:
    """One line of the tree and the lines under it."""

    text: str
    children: list[Node] = field(default_factory=list)


def provenance_tree(provenance: Provenance) -> Node:
    """The whole chain of one file as a tree (its root is the file)."""
    root = Node(_file_line(provenance.file, with_path=True))
    if provenance.kind == "job-output" and provenance.job_output is not None:
        root.children.append(_job_output(provenance.job_output))
    elif provenance.kind == "cycle-file" and provenance.cycle_file is not None:
        root.children.extend(_cycle_file(provenance.cycle_file))
    else:
        root.children.append(Node(f"no {provenance.kind} record in the answer"))
    return root


def render(node: Node) -> list[str]:
    """The tree as text lines drawn with box characters (the root unindented)."""
    lines = [node.text]
    lines.extend(_render_children(node.children, ""))
    return lines


def render_provenance(provenance: Provenance) -> str:
    """The chain of one file as printable text, one line per node."""
    return "\n".join(render(provenance_tree(provenance)))


def _render_children(children: Sequence[Node], prefix: str) -> Iterable[str]:
    for index, child in enumerate(children):
        last = index == len(children) - 1
        yield prefix + ("└── " if last else "├── ") + child.text
        yield from _render_children(child.children, prefix + ("    " if last else "│   "))


# --- job outputs -------------------------------------------------------------------------------------------------


def _job_output(record: JobOutputProvenance) -> Node:
    job = _job(record.job, record.attempt)
    job.children.append(_campaign(record.campaign, record.request))
    return job


def _job(job: JobProvenance, wrote: int) -> Node:
    text = _join(
        f"job {_clean(job.id)}",
        _pair("label", job.label),
        _pair("module", job.module),
        _pair("run", job.run),
        _pair("chunk", job.chunk),
        _pair("pass", job.pass_number),
        _pair("seed", job.seed),
        _pair("events", job.events),
        _pair("status", job.status),
        _pair("parent", job.parent),
    )
    children = [_attempt(attempt, wrote) for attempt in job.attempts]
    if not any(attempt.attempt == wrote for attempt in job.attempts):
        children.append(Node(f"attempt {wrote} wrote this file (not in the job's history)"))
    children.append(Node(f"command: {_clean(job.command)}" if job.command else "command: not recorded"))
    children.append(_software(job.software))
    return Node(text, children)


def _attempt(attempt: Attempt, wrote: int) -> Node:
    backend = _join(_clean(attempt.backend) if attempt.backend else None, _clean(attempt.backend_id))
    return Node(
        _join(
            f"attempt {attempt.attempt}",
            _clean(attempt.outcome),
            "wrote this file" if attempt.attempt == wrote else None,
            _pair("site", attempt.site),
            f"backend {backend}" if backend else None,
            _pair("exit", attempt.exit_code),
            _pair("submitted", attempt.submitted_at),
            _pair("started", attempt.started_at),
            _pair("finished", attempt.finished_at),
            f"reason: {_clean(attempt.reason)}" if attempt.reason else None,
        )
    )


def _software(software: dict[str, Any]) -> Node:
    if not software:
        return Node("software: not recorded")
    return Node("software", [Node(f"{_clean(key)}: {_value(value)}") for key, value in software.items()])


def _campaign(campaign: CampaignProvenance | None, request: RequestProvenance | None) -> Node:
    if campaign is None:
        node = Node("campaign: none (a job filed without a campaign)")
    else:
        node = Node(
            _join(
                f"campaign {_clean(campaign.id)}",
                _pair("site", campaign.site),
                _pair("pass", campaign.pass_number),
                _pair("kind", campaign.kind),
                _pair("from campaign", campaign.parent_campaign),
                f"created by {_clean(campaign.created_by)} at {_clean(campaign.created_at)}",
            )
        )
    node.children.append(_request(request))
    return node


def _request(request: RequestProvenance | None) -> Node:
    if request is None:
        return Node("request: none (a jobs.json uploaded without a request)")
    approval = (
        f"approved by {_clean(request.approved_by)}"
        + (f" at {_clean(request.approved_at)}" if request.approved_at else "")
        if request.approved_by
        else "not approved"
    )
    text = _join(
        f"request {_clean(request.id)} {json.dumps(_clean(request.title), ensure_ascii=False)}",
        _pair("requester", request.requester),
        _pair("state", request.state),
        approval,
    )
    children = [Node(f"jobs.json sha256 {_clean(request.jobs_json_sha256) or 'not recorded'}")]
    children.append(
        Node("history", [_change(change.state, change.at, change.by, change.note) for change in request.history])
    )
    if not request.history:
        children[-1].children.append(Node("no state change recorded"))
    return Node(text, children)


def _change(state: str, at: str, by: str, note: str) -> Node:
    return Node(_join(f"{_clean(at)} {_clean(state)} by {_clean(by)}", f"why: {_clean(note)}" if note else None))


# --- cycle files -------------------------------------------------------------------------------------------------


def _cycle_file(record: CycleFileProvenance) -> list[Node]:
    nodes = {node.file.path or node.file.name: node for node in record.files}
    files = Node("files (each made from the files under it)")
    if record.files:
        first = record.files[0]
        files.children.append(_dag(first.file.path or first.file.name, nodes, set()))
    return [_cycle(record.cycle), files]


def _cycle(cycle: CycleProvenance) -> Node:
    text = _join(
        f"cycle {_clean(cycle.name)}",
        _pair("experiment", cycle.experiment),
        _pair("config.json sha256", cycle.config_sha256),
    )
    pins = Node("software pins", [_pin(pin) for pin in cycle.pins] or [Node("none recorded")])
    return Node(text, [pins])


def _pin(pin: SoftwarePin) -> Node:
    return Node(
        _join(
            f"{_clean(pin.name)} ({pin.kind})",
            _clean(pin.version) if pin.version else None,
            _pair("commit", pin.commit),
            _clean(pin.source) if pin.source else None,
        )
    )


def _dag(path: str, nodes: dict[str, CycleFileNode], seen: set[str]) -> Node:
    node = nodes.get(path)
    if node is None:
        return Node(f"{_clean(path)}{SEP}no record of this file")
    if path in seen:
        return Node(f"{_clean(path)}{SEP}shown above")
    seen.add(path)
    text = _join(_clean(path), _step(node.made_by), _file_line(node.file, with_path=False))
    return Node(text, [_dag(child, nodes, seen) for child in node.inputs])


def _step(step: SnakemakeStep | None) -> str:
    if step is None:
        return "no recorded step made it"
    wildcards = ", ".join(f"{_clean(k)}={_clean(v)}" for k, v in step.wildcards.items())
    return _join(
        _pair("rule", step.rule),
        _pair("run", step.run_id),
        _pair("jobid", step.jobid),
        f"wildcards {wildcards}" if wildcards else None,
        _pair("finished", step.finished_at),
    )


# --- shared ------------------------------------------------------------------------------------------------------


def _file_line(record: FileRecord, *, with_path: bool) -> str:
    where = record.url or record.path or record.name
    return _join(
        f"file {_clean(where)}" if with_path else None,
        _pair("size", record.size),
        _pair("adler32", record.adler32),
        _pair("recorded", record.recorded_at) if with_path else None,
    )


def _pair(name: str, value: object) -> str | None:
    return None if value is None or value == "" else f"{name} {_clean(str(value))}"


def _join(*parts: str | None) -> str:
    return SEP.join(part for part in parts if part)


def _value(value: Any) -> str:
    if isinstance(value, str):
        return _clean(value)
    return _clean(json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False, default=str))


_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def _clean(text: str | None) -> str:
    """Server data on one line: control characters (newlines, escapes) become spaces."""
    return "" if text is None else _CONTROL.sub(" ", text).strip()
