"""Tables of the sessions domain: session bindings, conversations, messages."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.store.base import Base, UTCDateTime, utcnow

# Message directions.
INBOUND = "INBOUND"
OUTBOUND = "OUTBOUND"


class SessionBinding(Base):
    """A messaging session and the agency and tenant it belongs to.

    The provider knows the session as `provider_session`; every provider event is routed
    to its dashboard through this row.
    """

    __tablename__ = "sessions"
    __table_args__ = (
        UniqueConstraint("provider", "provider_session"),
        Index("ix_sessions_agency_session", "agency_id", "session_id"),
    )

    session_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    agency_id: Mapped[str] = mapped_column(ForeignKey("dashboard_registrations.agency_id"))
    tenant_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    provider: Mapped[str] = mapped_column(String(32))
    provider_session: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    #: The paired WhatsApp account; empty until paired and after a logout.
    account_id: Mapped[str] = mapped_column(String(64), default="")
    #: The caller's metadata as a JSON object of strings.
    metadata_json: Mapped[str] = mapped_column(Text, default="{}")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: Set by DeleteSession: the session is gone from the API, its history is kept.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Conversation(Base):
    """All messages of one session with one peer."""

    __tablename__ = "conversations"
    __table_args__ = (
        UniqueConstraint("session_id", "peer"),
        Index("ix_conversations_agency_tenant_last", "agency_id", "tenant_id", "last_message_at"),
    )

    conversation_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.session_id"))
    agency_id: Mapped[str] = mapped_column(String(64))
    tenant_id: Mapped[str] = mapped_column(String(64))
    #: The peer's chat id, e.g. `15551234567@c.us`.
    peer: Mapped[str] = mapped_column(String(128))
    last_message_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_message_text: Mapped[str] = mapped_column(String(200), default="")
    message_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class StoredMessage(Base):
    """One message, inbound or outbound. A provider message id is stored once per session."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("session_id", "provider_message_id"),
        Index("ix_messages_conversation_message", "conversation_id", "message_id"),
    )

    message_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.conversation_id"))
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.session_id"))
    agency_id: Mapped[str] = mapped_column(String(64))
    tenant_id: Mapped[str] = mapped_column(String(64))
    direction: Mapped[str] = mapped_column(String(8))
    sender: Mapped[str] = mapped_column(String(128))
    recipient: Mapped[str] = mapped_column(String(128))
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    #: NULL until the provider has named the message (unique values only when set).
    provider_message_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class PendingMessageAck(Base):
    """A provider's report on a message it named before the engine had stored that name.

    A provider answers a send and reports on the message independently, so its first ack
    can arrive before the send's answer is recorded; it waits here and is applied then.
    """

    __tablename__ = "pending_message_acks"

    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.session_id"), primary_key=True)
    provider_message_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
