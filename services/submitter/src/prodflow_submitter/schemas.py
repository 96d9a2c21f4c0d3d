"""Request and response bodies of the submitter API, and the jobs.json it reads."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from prodflow_core.backends import backend_names
from prodflow_core.command_template import quoted_placeholders
from prodflow_core.jobdocs import JOB_DATABASES
from prodflow_core.jobs_json import AmbiguousEventMode, event_mode
from prodflow_core.strict import (
    StrictBool,
    StrictInt,
    StrictInt32,
    StrictModel,
    StrictNonNegativeInt,
    StrictPositiveFloat,
    StrictPositiveInt,
    StrictPositiveInt32,
)
from pydantic import BaseModel, Field, JsonValue, field_validator, model_validator

NAME = r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}$"
LABEL = r"^[A-Za-z0-9][A-Za-z0-9_.-]{2,63}$"
SITE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
Database = Literal["data-production", "data-processing"]
QueuePolicy = Literal["runlevel", "newfirst", "priority", "serial"]
DEFAULT_QUEUE_ORDER: tuple[QueuePolicy, ...] = ("priority", "serial")
TemplateValue = str | int | float | bool | None
assert set(JOB_DATABASES) == {"data-production", "data-processing"}


class ModuleEntry(StrictModel):
    """One module entry of jobs.json (FORMATS.md); its event mode follows from the fields it carries."""

    module: Annotated[str, Field(pattern=NAME)]
    t_run: StrictPositiveFloat | None = None
    t_format: str | None = None
    n_runs: StrictPositiveInt | None = None
    n_ev: StrictPositiveInt | None = None
    ev_per_run: StrictPositiveInt | None = None
    run_numbers: list[StrictNonNegativeInt] | None = None
    template: dict[str, TemplateValue] = Field(default_factory=dict)
    label: Annotated[str, Field(pattern=LABEL)] | None = None
    priority: StrictInt = 0

    @model_validator(mode="after")
    def _fields_of_one_mode(self) -> ModuleEntry:
        entry = self.model_dump(exclude_none=True)
        try:
            mode = event_mode(entry, has_run_list=True)
        except AmbiguousEventMode as exc:
            raise ValueError(str(exc)) from exc
        if mode == "by_time" and (self.n_runs is None or not self.t_format):
            raise ValueError("by time needs t_run, t_format and n_runs")
        if mode in {"by_events", "run_by_run_events"} and self.ev_per_run is None:
            raise ValueError("by events needs n_ev and ev_per_run")
        return self


class JobsFile(StrictModel):
    """SNO+'s job description file, with prodflow's optional top-level fields."""

    rat_v: str = Field(min_length=1)
    modules: list[ModuleEntry] = Field(min_length=1)
    format: str | None = None
    request_id: str | None = None
    experiment: str | None = None
    kind: Literal["production", "processing"] | None = None
    label: Annotated[str, Field(pattern=LABEL)] | None = None
    contacts: list[str] | None = None
    ratdb_tag: str | None = None


class CampaignCreate(StrictModel):
    """``POST /api/campaigns``: a jobs.json and where its jobs go."""

    jobs: JobsFile
    experiment: str | None = Field(None, description="default: jobs.experiment")
    label: Annotated[str, Field(pattern=LABEL)] | None = Field(None, description="default label of modules")
    database: Database | None = Field(None, description="default: from jobs.kind, else data-production")
    site: Annotated[str, Field(pattern=SITE_NAME)] | None = Field(None, description="default: the default site")
    pass_number: StrictPositiveInt | None = Field(None, description="default: the next free pass of the label")
    request_id: str | None = None
    run_list: list[StrictNonNegativeInt] | None = Field(
        None, description="runs for run-by-run modules without run_numbers (production_submit.py -L)"
    )
    ratdb_tag: str | None = Field(None, description="frozen conditions tag (production_submit.py -t)")
    command_template: str | None = Field(
        None,
        description="overrides the catalog's and the site's template: admin only, unless the site sets "
        "allow_campaign_commands",
    )


class ModuleSummary(BaseModel):
    module: str
    label: str
    jobs: int
    events: int


class CampaignOut(BaseModel):
    """A campaign with its job counts (``counts``: live, by status)."""

    id: str
    experiment: str
    label: str
    labels: list[str]
    request_id: str | None
    database: str
    site: str
    pass_number: int = Field(serialization_alias="pass")
    kind: str
    parent_campaign: str | None
    state: str
    jobs: int
    created: int = Field(description="documents this submission created (the rest existed already)")
    rat_v: str
    ratdb_tag: str | None
    created_by: str
    created_at: datetime
    counts: dict[str, int] = Field(default_factory=dict)
    exactly: str


class CampaignPreview(BaseModel):
    """What ``dry_run=true`` would create."""

    dry_run: Literal[True] = True
    experiment: str
    labels: list[str]
    database: str
    site: str
    pass_number: int = Field(serialization_alias="pass")
    jobs: int
    modules: list[ModuleSummary]
    job_ids: list[str] = Field(description="the first 100 job ids")
    exactly_lines: int
    command_templates: dict[str, str]


class SiteSpec(StrictModel):
    """A site (FORMATS.md), plus its queue order and an optional default command template."""

    backend: str = Field(json_schema_extra={"enum": list[JsonValue](backend_names())})
    storage_element: str = Field(min_length=1)
    max_running: StrictPositiveInt32 = 100
    max_attempts: StrictPositiveInt32 = 3
    retry_exit_codes: list[StrictInt32] = Field(default_factory=list)
    max_walltime_s: StrictPositiveInt32 | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    queue_order: list[QueuePolicy] = Field(default_factory=lambda: list(DEFAULT_QUEUE_ORDER))
    command_template: str | None = Field(None, description="the command its jobs run where the catalog gives none")
    allow_campaign_commands: StrictBool = Field(
        False, description="let managers give a campaign its own command template (off: admins only)"
    )

    @field_validator("command_template")
    @classmethod
    def _placeholders_unquoted(cls, template: str | None) -> str | None:
        if template is not None and (quoted := quoted_placeholders(template)):
            raise ValueError(f"placeholders inside quotes or after a backslash {quoted}: values are quoted when filled")
        return template


class SiteFileEntry(SiteSpec):
    """A site in the sites file: its name plus the spec."""

    name: Annotated[str, Field(pattern=SITE_NAME)]


class SiteOut(BaseModel):
    name: str
    backend: str
    storage_element: str
    max_running: int
    max_attempts: int
    retry_exit_codes: list[int]
    max_walltime_s: int | None
    options: dict[str, Any]
    queue_order: list[str]
    command_template: str | None
    allow_campaign_commands: bool
    drained: bool
    source: str
    counts: dict[str, int] = Field(default_factory=dict)


class CancelBody(StrictModel):
    """Cancel all non-final jobs, or only ``job_ids`` among them."""

    job_ids: list[str] | None = None
    reason: str = ""


class LabelCancelBody(CancelBody):
    database: Database


class ResubmitBody(StrictModel):
    """Resubmit the failed (``failed``, ``partFail``) jobs of a label, or only ``job_ids`` among them."""

    database: Database
    mode: Literal["next_pass", "next_attempt"] = "next_pass"
    job_ids: list[str] | None = None
    site: Annotated[str, Field(pattern=SITE_NAME)] | None = Field(None, description="next_pass: default the old site")
    reason: str = ""


class OperationOut(BaseModel):
    """The outcome of a bulk operation."""

    label: str | None = None
    database: str
    job_ids: list[str]
    skipped: list[str] = Field(default_factory=list, description="named but not in a state the operation applies to")
    campaign: str | None = Field(None, description="next_pass: the campaign of the new pass")
    pass_number: int | None = Field(None, serialization_alias="pass")
