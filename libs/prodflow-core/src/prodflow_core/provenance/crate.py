"""Workflow Run RO-Crates: a run (a Snakemake run of a cycle, the jobs of a SNO+ label) as a zip other tools read.

A :class:`CrateRecord` is plain data; :func:`crate_zip` turns it into an RO-Crate 1.1 zip built with the
``rocrate`` package. With a workflow the crate is a Workflow Run Crate (https://w3id.org/ro/wfrun/workflow/0.5):
the workflow is the ``ComputationalWorkflow`` main entity and the instrument of the run's ``CreateAction``;
without one it is a Process Run Crate (https://w3id.org/ro/wfrun/process/0.5), each action's instrument a
``SoftwareApplication``. Data files are referenced, not copied (outputs can be GBs): their ``@id`` is an absolute
URI (a storage element URL, or ``file://`` on the file system that holds them), which RO-Crate calls a web-based
data entity, with ``contentSize`` and an ``adler32`` term. Small files given with their ``content`` (the
Snakefile, config.json) are put into the zip under their relative ``@id``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any, Literal

from rocrate.model.contextentity import ContextEntity  # type: ignore[import-untyped]
from rocrate.model.entity import Entity  # type: ignore[import-untyped]
from rocrate.rocrate import ROCrate  # type: ignore[import-untyped]

RO_CRATE_VERSION = "1.1"
PROCESS_RUN_CRATE = "https://w3id.org/ro/wfrun/process/0.5"
WORKFLOW_RUN_CRATE = "https://w3id.org/ro/wfrun/workflow/0.5"
WORKFLOW_RO_CRATE = "https://w3id.org/workflowhub/workflow-ro-crate/1.0"
WFRUN_CONTEXT = "https://w3id.org/ro/terms/workflow-run/context"
ADLER32_TERM = "urn:prodflow:terms:adler32"
"""The ad hoc term of a file's adler32 (schema.org has no checksum property; the grid's checksum is adler32)."""
_STATUS = {
    "completed": "http://schema.org/CompletedActionStatus",
    "failed": "http://schema.org/FailedActionStatus",
    "active": "http://schema.org/ActiveActionStatus",
    "potential": "http://schema.org/PotentialActionStatus",
}
Status = Literal["completed", "failed", "active", "potential"]


@dataclass(frozen=True)
class CrateFile:
    """A file of the crate: referenced by an absolute URI ``id``, or put in the zip at the relative ``id`` when
    ``content`` is given."""

    id: str
    name: str
    size: int | None = None
    adler32: str | None = None
    path: str | None = None
    """Where the producing tool saw the file (a path under the cycle folder): the entity's ``alternateName``."""
    content: bytes | None = None
    encoding_format: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class CrateSoftware:
    """A piece of software: a tool an action ran, or a pinned package or checkout of the environment."""

    id: str
    name: str
    version: str | None = None
    url: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class CrateAgent:
    """Who started an action."""

    id: str
    name: str


@dataclass(frozen=True)
class CrateAction:
    """One execution: of the workflow (a run) or of a tool (a job); ``instrument`` is the id of the workflow or of a
    :class:`CrateSoftware`, ``inputs``/``outputs`` ids of :class:`CrateFile`."""

    id: str
    name: str
    instrument: str
    agent: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    parameters: dict[str, str] = field(default_factory=dict)
    status: Status = "completed"
    description: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class CrateWorkflow:
    """The workflow a Workflow Run Crate describes; ``file`` carries the workflow's main file (with content)."""

    file: CrateFile
    language: str = "snakemake"
    version: str | None = None
    url: str | None = None
    software: list[str] = field(default_factory=list)
    """Ids of the :class:`CrateSoftware` the workflow runs with (its ``softwareRequirements``)."""
    tools: list[str] = field(default_factory=list)
    """Ids of the :class:`CrateSoftware` standing for its steps (its ``hasPart``)."""


@dataclass(frozen=True)
class CrateRecord:
    """Everything a crate says: its name, the workflow (``None``: a Process Run Crate) and what the actions used."""

    name: str
    description: str
    actions: list[CrateAction]
    files: list[CrateFile]
    software: list[CrateSoftware] = field(default_factory=list)
    agents: list[CrateAgent] = field(default_factory=list)
    workflow: CrateWorkflow | None = None
    date_published: str | None = None
    license: str | None = None


def crate_zip(record: CrateRecord) -> bytes:
    """The crate of ``record`` as zip bytes (blocking: call it in a worker thread on a request path)."""
    crate = build_crate(record)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rocrate warns for entities without a source: the referenced files
        return b"".join(crate.stream_zip())


def build_crate(record: CrateRecord) -> ROCrate:
    """The ``rocrate`` object of ``record`` (before it is written)."""
    crate = ROCrate(version=RO_CRATE_VERSION)
    crate.metadata.extra_contexts.append(WFRUN_CONTEXT)
    crate.metadata.extra_terms["adler32"] = ADLER32_TERM
    crate.name = record.name
    crate.description = record.description
    if record.date_published:
        crate.datePublished = record.date_published
    if record.license:
        crate.license = record.license
    files = {f.id: _add_file(crate, f) for f in record.files}
    software = {s.id: _add_software(crate, s) for s in record.software}
    agents = {a.id: crate.add(ContextEntity(crate, a.id, {"@type": "Person", "name": a.name})) for a in record.agents}
    instruments: dict[str, Entity] = dict(software)
    profiles = [PROCESS_RUN_CRATE]
    if record.workflow is not None:
        instruments[record.workflow.file.id] = _add_workflow(crate, record.workflow, software, files)
        profiles = [PROCESS_RUN_CRATE, WORKFLOW_RUN_CRATE, WORKFLOW_RO_CRATE]
    crate.root_dataset["conformsTo"] = [_profile(crate, p) for p in profiles]
    actions = [_add_action(crate, a, instruments, agents, files) for a in record.actions]
    crate.root_dataset["mentions"] = actions
    return crate


def _add_file(crate: ROCrate, item: CrateFile) -> Entity:
    props: dict[str, Any] = {"name": item.name}
    if item.size is not None:
        props["contentSize"] = str(item.size)
    if item.adler32:
        props["adler32"] = item.adler32
    if item.path:
        props["alternateName"] = item.path
    if item.encoding_format:
        props["encodingFormat"] = item.encoding_format
    if item.description:
        props["description"] = item.description
    if item.content is not None:
        return crate.add_file(BytesIO(item.content), dest_path=item.id, properties=props)
    return crate.add_file(item.id, properties=props)


def _add_software(crate: ROCrate, item: CrateSoftware) -> Entity:
    props: dict[str, Any] = {"@type": "SoftwareApplication", "name": item.name}
    if item.version:
        props["softwareVersion"] = item.version
    if item.url:
        props["url"] = item.url
    if item.description:
        props["description"] = item.description
    return crate.add(ContextEntity(crate, item.id, props))


def _add_workflow(
    crate: ROCrate, workflow: CrateWorkflow, software: dict[str, Entity], files: dict[str, Entity]
) -> Entity:
    main = workflow.file
    props: dict[str, Any] = {"name": main.name}
    if main.description:
        props["description"] = main.description
    if workflow.version:
        props["version"] = workflow.version
    if workflow.url:
        props["url"] = workflow.url
    source = BytesIO(main.content) if main.content is not None else main.id
    dest = main.id if main.content is not None else None
    entity = crate.add_workflow(source, dest_path=dest, main=True, lang=workflow.language, properties=props)
    if workflow.software:
        entity["softwareRequirements"] = [software[s] for s in workflow.software]
    if workflow.tools:
        entity["hasPart"] = [software[s] for s in workflow.tools]
    files.pop(main.id, None)
    return entity


def _add_action(
    crate: ROCrate,
    action: CrateAction,
    instruments: dict[str, Entity],
    agents: dict[str, Entity],
    files: dict[str, Entity],
) -> Entity:
    props: dict[str, Any] = {"@type": "CreateAction", "name": action.name, "actionStatus": _STATUS[action.status]}
    if action.description:
        props["description"] = action.description
    if action.started_at:
        props["startTime"] = action.started_at
    if action.ended_at:
        props["endTime"] = action.ended_at
    if action.error and action.status == "failed":
        props["error"] = action.error
    parameters = [
        crate.add(ContextEntity(crate, f"{action.id}-{key}", {"@type": "PropertyValue", "name": key, "value": value}))
        for key, value in action.parameters.items()
    ]
    entity = crate.add_action(instruments[action.instrument], identifier=action.id, properties=props)
    objects = [files[i] for i in action.inputs if i in files] + parameters
    if objects:
        entity["object"] = objects
    results = [files[i] for i in action.outputs if i in files]
    if results:
        entity["result"] = results
    if action.agent is not None:
        entity["agent"] = agents[action.agent]
    return entity


def _profile(crate: ROCrate, uri: str) -> Entity:
    name = {
        PROCESS_RUN_CRATE: "Process Run Crate",
        WORKFLOW_RUN_CRATE: "Workflow Run Crate",
        WORKFLOW_RO_CRATE: "Workflow RO-Crate",
    }[uri]
    existing = crate.get(uri)
    if existing is not None:
        return existing
    version = uri.rsplit("/", 1)[-1]
    return crate.add(ContextEntity(crate, uri, {"@type": "CreativeWork", "name": name, "version": version}))
