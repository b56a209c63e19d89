"""Tables of provider ingress: event receipts (deduplication) and unroutable events."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
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
