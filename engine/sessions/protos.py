"""Proto messages of sessions, conversations and messages (for the API and for webhooks)."""

from __future__ import annotations

from engine.rpc.convert import timestamp
from engine.sessions.views import ConversationView, MessageView, SessionView
from workflow_engine.v1 import common_pb2

SESSION_STATUS_PREFIX = "SESSION_STATUS_"


def session_message(view: SessionView) -> common_pb2.Session:
    """The Session message of a session view."""
    return common_pb2.Session(
        session_id=view.session_id,
        agency_id=view.agency_id,
        tenant_id=view.tenant_id,
        name=view.name,
        provider=view.provider,
        status=session_status(view.status),
        metadata=view.metadata,
        create_time=timestamp(view.created_at),
        update_time=timestamp(view.updated_at),
        account_id=view.account_id,
    )


def session_status(status: str) -> str:
    """The proto enum name of a stored session status (message constructors take enum names)."""
    return SESSION_STATUS_PREFIX + status


def message_status(status: str) -> str:
    """The proto enum name of a stored message status."""
    return "MESSAGE_STATUS_" + status


def conversation_message(view: ConversationView) -> common_pb2.Conversation:
    """The Conversation message of a conversation view."""
    return common_pb2.Conversation(
        conversation_id=view.conversation_id,
        agency_id=view.agency_id,
        tenant_id=view.tenant_id,
        session_id=view.session_id,
        peer=view.peer,
        last_message_time=timestamp(view.last_message_at),
        last_message_text=view.last_message_text,
        message_count=view.message_count,
    )


def message_message(view: MessageView) -> common_pb2.Message:
    """The Message message of a message view."""
    message = common_pb2.Message(
        message_id=view.message_id,
        conversation_id=view.conversation_id,
        session_id=view.session_id,
        agency_id=view.agency_id,
        tenant_id=view.tenant_id,
        direction="MESSAGE_DIRECTION_" + view.direction,
        to=view.recipient,
        text=view.text,
        status=message_status(view.status),
        create_time=timestamp(view.created_at),
        update_time=timestamp(view.updated_at),
        provider_message_id=view.provider_message_id,
    )
    setattr(message, "from", view.sender)
    return message
