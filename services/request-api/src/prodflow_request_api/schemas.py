"""Bodies and answers of the request-api HTTP API."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from prodflow_core.strict import StrictBool, StrictInt, StrictModel, StrictPositiveFloat, StrictPositiveInt
from pydantic import BaseModel, EmailStr, Field, model_validator

from prodflow_request_api.catalog import EXPERIMENT_PATTERN, Kind, ParamValue, Run, RunSpan

LABEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{2,63}$"
Label = Annotated[str, Field(pattern=LABEL_PATTERN, description="production label, " + LABEL_PATTERN)]
Experiment = Annotated[str, Field(pattern=EXPERIMENT_PATTERN)]
TimeUnit = Literal["second", "minute", "hour", "day", "week", "year"]


class RunRange(StrictModel):
    """Runs ``first``..``last`` inclusive: every run of the catalog's run list in that span."""

    first: StrictPositiveInt
    last: StrictPositiveInt

    @model_validator(mode="after")
    def _ordered(self) -> RunRange:
        if self.last < self.first:
            raise ValueError("last must not be below first")
        return self


class ModuleEntry(StrictModel):
    """One module of a request: a jobs.json module entry, plus ``run_ranges`` as a shorthand for run lists.

    The event mode follows from the fields: ``t_run`` (by time), ``n_ev`` (by events), ``run_numbers`` or
    ``run_ranges`` (run-by-run), ``n_ev`` with runs (run-by-run with events).
    """

    module: str = Field(min_length=1)
    t_run: StrictPositiveInt | StrictPositiveFloat | None = Field(None, description="simulated live time per job")
    t_format: TimeUnit | None = Field(None, description="unit of t_run")
    n_runs: StrictPositiveInt | None = Field(None, description="jobs (by time) or jobs per run (run-by-run)")
    n_ev: StrictPositiveInt | None = Field(None, description="events in total (by events) or per run")
    ev_per_run: StrictPositiveInt | None = Field(None, description="events per job (default from the catalog)")
    run_numbers: list[StrictPositiveInt] | None = None
    run_ranges: list[RunRange] | None = None
    template: dict[str, ParamValue] | None = None
    label: Label | None = None
    priority: StrictInt | None = Field(None, description="larger first; default: the request's priority")


class RequestForm(StrictModel):
    """A production request as filed (FORMATS.md)."""

    experiment: Experiment
    title: str = Field(min_length=1, max_length=300)
    kind: Kind = "production"
    rat_v: str = Field(min_length=1, max_length=64, description="software version")
    modules: list[ModuleEntry] = Field(min_length=1, max_length=500)
    label: Label
    ratdb_tag: str | None = Field(None, max_length=200, description="frozen conditions-database tag")
    contacts: list[EmailStr] = Field(min_length=1, max_length=50)
    site: str | None = Field(None, max_length=100, description="site preference")
    justification: str = Field("", max_length=20000, description="why; the form's comment")
    priority: StrictInt | None = Field(None, description="default priority of the modules")


class RequestPatch(StrictModel):
    """Changes to a draft; absent fields stay as they are (the experiment cannot change)."""

    title: str | None = Field(None, min_length=1, max_length=300)
    kind: Kind | None = None
    rat_v: str | None = Field(None, min_length=1, max_length=64)
    modules: list[ModuleEntry] | None = Field(None, min_length=1, max_length=500)
    label: Label | None = None
    ratdb_tag: str | None = Field(None, max_length=200)
    contacts: list[EmailStr] | None = Field(None, min_length=1, max_length=50)
    site: str | None = Field(None, max_length=100)
    justification: str | None = Field(None, max_length=20000)
    priority: StrictInt | None = None


class Note(StrictModel):
    """Why a state change is made (kept in the history)."""

    note: str = Field("", max_length=5000)


class HistoryEntry(BaseModel):
    """One state change."""

    state: str
    at: str
    by: str
    note: str = ""


class MailStatus(BaseModel):
    """Where a notification mail is."""

    recipients: list[str]
    subject: str
    status: Literal["pending", "sent", "failed"]
    attempts: int
    last_error: str | None = None
    sent_at: str | None = None


class RequestOut(BaseModel):
    """A production request as the API shows it."""

    id: str
    experiment: str
    title: str
    kind: str
    rat_v: str
    modules: list[dict[str, Any]]
    label: str
    ratdb_tag: str | None
    contacts: list[str]
    site: str | None
    justification: str
    priority: StrictInt | None
    state: str
    requester: str
    created_at: str
    updated_at: str
    allowed: list[str] = Field(description="states this request can move to next")
    jobs: int | None = Field(None, description="job count of the approved jobs.json")
    jobs_json: str | None = Field(None, description="where the approved jobs.json is")
    jobs_json_sha256: str | None = None
    campaign_id: str | None = None
    history: list[HistoryEntry] = []
    notifications: list[MailStatus] = []


class RequestPage(BaseModel):
    """A page of requests, newest first; ``next`` is the cursor of the page after (``None`` at the end)."""

    items: list[RequestOut]
    total: int
    limit: int
    offset: int
    next: str | None = None


class ModuleSummary(BaseModel):
    """How one module entry expands."""

    module: str
    mode: str
    jobs: int
    runs: int = Field(description="detector runs it simulates (0 for generic modules)")
    conditions: dict[str, int] = Field(default_factory=dict, description="detector-conditions tag → runs")


class Preview(BaseModel):
    """A dry run: the jobs.json a request would make, nothing stored."""

    jobs: int
    modules: list[ModuleSummary]
    jobs_json: dict[str, Any]
    jobs_json_sha256: str


class Reason(StrictModel):
    """Why a request is rejected (required: the requester reads it)."""

    note: str = Field(min_length=1, max_length=5000)


class ExperimentIn(StrictModel):
    """An experiment of the catalog, as an admin sets it."""

    description: str = Field("", max_length=2000)
    mailing_list: list[EmailStr] = Field(default_factory=list, max_length=50)


class ExperimentOut(BaseModel):
    """An experiment of the catalog."""

    experiment: str
    description: str
    mailing_list: list[str]
    modules: list[str] = []
    runs: int = 0


MAX_RUNS_WRITTEN = 200_000
"""At most this many runs per run-list write, one by one or in spans."""


class RunsIn(StrictModel):
    """Runs to add to a run list (``runs`` one by one, ``spans`` as inclusive ranges of one conditions tag)."""

    runs: list[Run] = Field(default_factory=list, max_length=MAX_RUNS_WRITTEN)
    spans: list[RunSpan] = Field(default_factory=list, max_length=10_000)
    replace: StrictBool = Field(False, description="drop every run not given here")

    @model_validator(mode="after")
    def _spans_within_limit(self) -> RunsIn:
        # spans are expanded run by run: bound them before, like `runs` (first 1, last 10**18 would never end)
        total = sum(span.last - span.first + 1 for span in self.spans)
        if total > MAX_RUNS_WRITTEN:
            raise ValueError(f"spans cover {total} runs; at most {MAX_RUNS_WRITTEN} at once")
        return self


class RunPage(BaseModel):
    """A page of a run list, in run order."""

    items: list[Run]
    total: int
    limit: int
    offset: int


class RunsWritten(BaseModel):
    """How many runs were written."""

    runs: int


class NotificationsIn(StrictModel):
    """What the caller changes about their mail: the address it reaches, and kinds on (true) or off (false).

    A field left out is kept; ``null`` sets a kind back to the default (on).
    """

    address: EmailStr | None = Field(None, description="the address the caller's mail reaches (contacts, lists)")
    approval: StrictBool | None = Field(None, description="approval mails (jobs.json attached)")
    outcome: StrictBool | None = Field(None, description="a request completed, failed, or its campaign cancelled")
    digest: StrictBool | None = Field(None, description="failure digests of the experiment's support list")


class NotificationsOut(BaseModel):
    """The caller's address and the kinds of mail it gets."""

    user: str
    address: str | None
    approval: bool
    outcome: bool
    digest: bool


class ListsIn(StrictModel):
    """An experiment's lists; a field left out is kept, ``support_list: null`` sends digests to the mailing list."""

    mailing_list: list[EmailStr] | None = Field(None, max_length=50)
    support_list: list[EmailStr] | None = Field(None, max_length=50)


class ListsOut(BaseModel):
    """An experiment's lists as mail is sent to them, and who on them turned a kind off."""

    experiment: str
    mailing_list: list[str]
    support_list: list[str] | None = Field(description="null: digests go to the mailing list")
    digest_to: list[str] = Field(description="where failure digests go, after opt-outs")
    opted_out: dict[str, list[str]] = Field(description="kind → addresses on the lists that turned it off")
