"""What callers see of sessions, conversations and messages (plain values, no ORM objects)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from engine.sessions.models import Conversation, SessionBinding, StoredMessage


@dataclass(frozen=True)
class SessionView:
    """A session as the API shows it."""

    session_id: str
    agency_id: str
    tenant_id: str
    name: str
    provider: str
    status: str
    account_id: str
    metadata: dict[str, str]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class ConversationView:
    """A conversation as the API shows it."""

    conversation_id: str
    agency_id: str
    tenant_id: str
    session_id: str
    peer: str
    last_message_at: datetime
    last_message_text: str
    message_count: int


@dataclass(frozen=True)
class MessageView:
    """A message as the API shows it."""

    message_id: str
    conversation_id: str
    session_id: str
    agency_id: str
    tenant_id: str
    direction: str
    sender: str
    recipient: str
    text: str
    status: str
    provider_message_id: str
    created_at: datetime
    updated_at: datetime


def session_view(row: SessionBinding) -> SessionView:
    """The view of a session row."""
    return SessionView(
        session_id=row.session_id,
        agency_id=row.agency_id,
        tenant_id=row.tenant_id,
        name=row.name,
        provider=row.provider,
        status=row.status,
        account_id=row.account_id,
        metadata=json.loads(row.metadata_json),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def conversation_view(row: Conversation) -> ConversationView:
    """The view of a conversation row."""
    return ConversationView(
        conversation_id=row.conversation_id,
        agency_id=row.agency_id,
        tenant_id=row.tenant_id,
        session_id=row.session_id,
        peer=row.peer,
        last_message_at=row.last_message_at,
        last_message_text=row.last_message_text,
        message_count=row.message_count,
    )


def message_view(row: StoredMessage) -> MessageView:
    """The view of a message row."""
    return MessageView(
        message_id=row.message_id,
        conversation_id=row.conversation_id,
        session_id=row.session_id,
        agency_id=row.agency_id,
        tenant_id=row.tenant_id,
        direction=row.direction,
        sender=row.sender,
        recipient=row.recipient,
        text=row.text,
        status=row.status,
        provider_message_id=row.provider_message_id or "",
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
