"""Tables of the webhook domain: provider ingress (receipts, unroutable events) and the
delivery outbox with its attempts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from engine.store.base import Base, UTCDateTime, utcnow


class ProviderEventReceipt(Base):
    """A provider event already processed: a second delivery of it is stored no more."""

    __tablename__ = "provider_event_receipts"

    provider: Mapped[str] = mapped_column(String(32), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class UnroutableProviderEvent(Base):
    """A provider event for a session the engine does not know (counted for the admins)."""

    __tablename__ = "unroutable_provider_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(32))
    provider_session: Mapped[str] = mapped_column(String(128))
    event_type: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[str] = mapped_column(String(128))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


# Values of WebhookDelivery.status.
PENDING = "PENDING"
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
HELD = "HELD"


class WebhookDelivery(Base):
    """The outbox: one event on its way to its dashboard, written with the change it describes.

    `payload` holds the exact JSON body, so every attempt (and every redelivery) sends the
    same bytes under the same `webhook-id` (the event id).
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        # The claim's filters, so the rows of a dashboard at its share are skipped in the index.
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at", "agency_id", "lease_expires_at"),
        Index("ix_webhook_deliveries_agency", "agency_id", "delivery_id"),
    )

    delivery_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(40), unique=True)
    agency_id: Mapped[str] = mapped_column(ForeignKey("dashboard_registrations.agency_id"))
    event_type: Mapped[str] = mapped_column(String(32))
    tenant_id: Mapped[str] = mapped_column(String(64), default="")
    session_id: Mapped[str] = mapped_column(String(40), default="")
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    #: When the next attempt is due (NULL once succeeded or failed for good).
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: A worker claimed the row until then; after it, another worker may take it over.
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    succeeded_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class DeliveryAttempt(Base):
    """One HTTP attempt of a delivery, with what the dashboard answered."""

    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("webhook_deliveries.delivery_id"), index=True)
    attempt_number: Mapped[int] = mapped_column(Integer)
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: HTTP status; 0 when no response arrived.
    response_status: Mapped[int] = mapped_column(Integer, default=0)
    #: The first 1 KiB of the response body (decoded leniently).
    response_excerpt: Mapped[str] = mapped_column(Text, default="")
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str] = mapped_column(String(500), default="")
