"""Bodies and answers of ``/api/webhooks``."""

from __future__ import annotations

from typing import Annotated

from prodflow_core.strict import StrictBool, StrictModel, StrictNonNegativeInt
from pydantic import BaseModel, Field

EXPERIMENT_PATTERN = r"^[a-z0-9][a-z0-9_-]{1,31}$"
LABEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{2,63}$"
TYPE_GLOB_PATTERN = r"^[A-Za-z0-9_.*?\[\]!-]{1,128}$"
EVENT_ID_PATTERN = r"^evt-[0-9A-Za-z]{1,64}$"

Experiment = Annotated[str, Field(pattern=EXPERIMENT_PATTERN)]
Label = Annotated[str, Field(pattern=LABEL_PATTERN)]
TypeGlob = Annotated[
    str, Field(pattern=TYPE_GLOB_PATTERN, description="a CloudEvent type or an fnmatch glob: org.prodflow.job.*")
]
URL_PATTERN = r"^https?://[A-Za-z0-9._~%!$&'()*+,;=:\[\]-]+(?:[/?#][^\s]*)?$"
Url = Annotated[
    str,
    Field(min_length=10, max_length=2048, pattern=URL_PATTERN, description="http:// or https:// URL of the receiver"),
]
Description = Annotated[str, Field(max_length=500)]


class WebhookIn(StrictModel):
    """A new subscription. No ``experiments`` means every experiment (admins only)."""

    url: Url
    event_types: list[TypeGlob] = Field(min_length=1, max_length=50)
    experiments: list[Experiment] = Field(default_factory=list, max_length=50)
    labels: list[Label] = Field(default_factory=list, max_length=200, description="only events of these labels")
    description: Description = ""
    active: StrictBool = True


class WebhookPatch(StrictModel):
    """Fields to change; ``active: true`` also resumes a ``failing`` subscription."""

    url: Url | None = None
    event_types: list[TypeGlob] | None = Field(None, min_length=1, max_length=50)
    experiments: list[Experiment] | None = Field(None, max_length=50)
    labels: list[Label] | None = Field(None, max_length=200)
    description: Description | None = None
    active: StrictBool | None = None


class WebhookOut(BaseModel):
    """A subscription as shown (never its secret)."""

    id: str
    url: str
    event_types: list[str]
    experiments: list[str]
    labels: list[str]
    description: str
    active: bool
    state: str = Field(description="ok, or failing (gave up; resumes when re-enabled or on replay)")
    failing_since: str | None
    pending: int = Field(description="events queued and not yet delivered")
    owner: str
    created_at: str
    updated_at: str


class WebhookCreated(WebhookOut):
    """The creation answer: the only time the secret is shown."""

    secret: str = Field(description="whsec_… : verify deliveries with it (Standard Webhooks); shown once")


class WebhookList(BaseModel):
    """The subscriptions the caller may see."""

    items: list[WebhookOut]


class RotateIn(StrictModel):
    """How long the old secret keeps signing (beside the new one)."""

    overlap_s: StrictNonNegativeInt | None = Field(None, description="default NOTIFIER_ROTATION_OVERLAP_S (24 h)")


class SecretOut(BaseModel):
    """A new secret, shown once."""

    id: str
    secret: str
    previous_valid_until: str | None


class DeliveryOut(BaseModel):
    """One delivery attempt."""

    event_id: str
    attempt: int
    status_code: int | None
    latency_ms: float
    error: str | None
    at: str


class DeliveryList(BaseModel):
    """The last attempts, newest first."""

    items: list[DeliveryOut]


class ReplayIn(StrictModel):
    """Deliver again every event of the stream from this one on (in the stream's order)."""

    from_event_id: Annotated[str, Field(pattern=EVENT_ID_PATTERN)]


class ReplayOut(BaseModel):
    """How many events were queued for the subscription."""

    queued: int
