"""The module & run catalog: what an experiment can produce, and the detector runs it can simulate.

Plain data and pure functions; storage is in :mod:`prodflow_request_api.catalog_store`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from prodflow_core.command_template import template_problems
from prodflow_core.jobs_json import EventMode
from prodflow_core.strict import StrictModel, StrictPositiveInt
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Kind = Literal["production", "processing"]
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}$"
EXPERIMENT_PATTERN = r"^[a-z0-9][a-z0-9_-]{1,31}$"


ModuleName = Annotated[str, Field(pattern=NAME_PATTERN)]
ParamValue = str | int | float | bool


class ModuleSpec(StrictModel):
    """A module (macro) of the catalog."""

    description: str = ""
    event_modes: list[EventMode] = Field(min_length=1)
    kinds: list[Kind] = Field(default=["production"], min_length=1)
    command: str = Field(min_length=1, description="command template a job runs, with {placeholders}")
    template_params: dict[str, ParamValue | None] = Field(
        default_factory=dict, description="template parameter → default value (null: the request must give it)"
    )
    default_ev_per_run: StrictPositiveInt | None = Field(None, description="events per job when a request gives none")
    rat_versions: list[str] = Field(default_factory=list, description="software versions it exists for; empty: all")

    @model_validator(mode="after")
    def _command_is_a_safe_template(self) -> ModuleSpec:
        if problems := template_problems(self.command, self.template_params):
            raise ValueError("command " + "; ".join(problems))
        return self

    @field_validator("event_modes", "kinds")
    @classmethod
    def _no_repeats(cls, values: list[Any]) -> list[Any]:
        return list(dict.fromkeys(values))

    @property
    def needs_runs(self) -> bool:
        """True if every allowed mode simulates real detector runs."""
        return all(mode.uses_runs for mode in self.event_modes)

    @property
    def takes_runs(self) -> bool:
        """True if some allowed mode simulates real detector runs."""
        return any(mode.uses_runs for mode in self.event_modes)


class Module(ModuleSpec):
    """A module with its name and experiment, as the API shows it."""

    model_config = ConfigDict(extra="forbid")

    experiment: str
    name: str


class RunSpan(StrictModel):
    """Runs ``first``..``last`` (inclusive) of one detector-conditions tag, as the seed file lists them."""

    first: StrictPositiveInt
    last: StrictPositiveInt
    conditions: str = ""

    @model_validator(mode="after")
    def _ordered(self) -> RunSpan:
        if self.last < self.first:
            raise ValueError("last must not be below first")
        return self


class Run(StrictModel):
    """A detector run and its detector-conditions tag."""

    run: StrictPositiveInt
    conditions: str = ""


class ExperimentSeed(StrictModel):
    """One experiment of the seed file."""

    description: str = ""
    mailing_list: list[str] = Field(default_factory=list)
    modules: dict[str, ModuleSpec] = Field(default_factory=dict)
    runs: list[RunSpan] = Field(default_factory=list)


class CatalogSeed(BaseModel):
    """The seed file: experiment → its catalog."""

    experiments: dict[str, ExperimentSeed]


def runs_of(spans: Iterable[RunSpan]) -> list[Run]:
    """Every run of the spans, in run order (a later span wins for a run listed twice)."""
    by_run: dict[int, str] = {}
    for span in spans:
        for run in range(span.first, span.last + 1):
            by_run[run] = span.conditions
    return [Run(run=run, conditions=by_run[run]) for run in sorted(by_run)]


def load_seed(path: Path | None = None) -> CatalogSeed:
    """Read a seed file (default: ``catalog.yaml`` shipped in this package)."""
    if path is None:
        text = resources.files("prodflow_request_api").joinpath("catalog.yaml").read_text(encoding="utf-8")
    else:
        text = path.read_text(encoding="utf-8")
    return CatalogSeed.model_validate(yaml.safe_load(text))


@dataclass(frozen=True)
class CatalogView:
    """What validating one request needs: the experiment's modules and the known runs in the request's span."""

    experiment: str
    modules: Mapping[str, ModuleSpec]
    runs: Mapping[int, str] = field(default_factory=dict)
    """Known runs (run → conditions tag); may be limited to the span of runs the request names."""
    mailing_list: tuple[str, ...] = ()

    @cached_property
    def sorted_runs(self) -> list[int]:
        """The known runs in ascending order."""
        return sorted(self.runs)
