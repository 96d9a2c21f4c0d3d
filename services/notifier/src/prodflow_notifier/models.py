"""SQL tables of the notifier: subscriptions, the delivery outbox, the events it carries, attempts, the checkpoint.

Times of the delivery machinery are Unix seconds (floats): they are compared and added to, never shown as such.
"""

# No ``from __future__ import annotations``: SQLModel reads these annotations at class creation.

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


class SubscriptionRow(SQLModel, table=True):
    """A webhook subscription. ``state`` is ``ok`` or ``failing`` (gave up after ``give_up_after_s``).

    ``secret`` signs deliveries; after a rotation ``previous_secret`` signs them too until ``previous_until``.
    """

    __tablename__ = "webhook_subscription"

    id: str = Field(primary_key=True)
    owner: str
    url: str
    description: str = ""
    event_types: list[str] = Field(sa_column=Column(JSON, nullable=False))
    experiments: list[str] = Field(sa_column=Column(JSON, nullable=False))
    labels: list[str] = Field(sa_column=Column(JSON, nullable=False))
    active: bool = True
    state: str = "ok"
    secret: str
    previous_secret: str | None = None
    previous_until: float | None = None
    failing_since: str | None = None
    created_at: str
    updated_at: str


class WebhookEventRow(SQLModel, table=True):
    """The body of an event that at least one subscription is to receive (stored once, however many)."""

    __tablename__ = "webhook_event"

    id: str = Field(primary_key=True)
    body: str = Field(sa_column=Column(Text, nullable=False))


class OutboxRow(SQLModel, table=True):
    """One event to deliver to one subscription; ``id`` is its position (deliveries follow it per subscription)."""

    __tablename__ = "webhook_outbox"
    __table_args__ = (
        UniqueConstraint("subscription_id", "event_id", name="uq_webhook_outbox_subscription_event"),
        # a subscription's line, oldest first: its head is one index seek, whatever the backlog of others
        Index("ix_webhook_outbox_line", "subscription_id", "delivered_at", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    subscription_id: str = Field(index=True)
    event_id: str
    attempts: int = 0
    next_at: float = 0.0
    first_failed_at: float | None = None
    delivered_at: float | None = None


class DeliveryRow(SQLModel, table=True):
    """One delivery attempt, as ``GET /api/webhooks/{id}/deliveries`` shows it."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (Index("ix_webhook_delivery_subscription", "subscription_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    subscription_id: str
    event_id: str
    attempt: int
    status_code: int | None = None
    latency_ms: float
    error: str | None = None
    at: str


class CheckpointRow(SQLModel, table=True):
    """Where the follower of the event stream resumes; written in the transaction of the rows it added."""

    __tablename__ = "webhook_checkpoint"

    consumer: str = Field(primary_key=True)
    seq: str


TABLES = [
    SQLModel.metadata.tables[str(model.__tablename__)]
    for model in (SubscriptionRow, WebhookEventRow, OutboxRow, DeliveryRow, CheckpointRow)
]
