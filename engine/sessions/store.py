"""Reads and writes shared by the sessions API and the provider ingress (inside a transaction)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import case, delete, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement

from engine.errors import NotFound
from engine.ids import new_id
from engine.sessions import lifecycle
from engine.sessions.models import Conversation, PendingMessageAck, SessionBinding, StoredMessage
from engine.sessions.notices import MESSAGE_STATUS, SESSION_STATUS, Notice, Publisher
from engine.sessions.views import message_view, session_view
from engine.store.driver import DriverStatement
from engine.store.upsert import dialect_insert

#: Conversations keep the start of their last message for listings.
EXCERPT_LENGTH = 200
#: Acks for messages the engine never names (sent from the phone itself) are dropped after this.
PENDING_ACK_LIFETIME = timedelta(hours=1)


def find_session(
    tx: Session, agency_id: str, tenant_id: str, session_id: str, *, for_update: bool = False
) -> SessionBinding:
    """The live session `session_id` of `agency_id` (and of `tenant_id` when given).

    NotFound when it does not exist, was deleted, or belongs to another agency or tenant:
    the answer never reveals that another agency's session exists.
    """
    query = select(SessionBinding).where(
        SessionBinding.session_id == session_id,
        SessionBinding.agency_id == agency_id,
        SessionBinding.deleted_at.is_(None),
    )
    if for_update:
        query = query.with_for_update()
    binding = tx.scalars(query).one_or_none()
    if binding is None or (tenant_id and binding.tenant_id != tenant_id):
        raise NotFound(f"session {session_id!r} not found")
    return binding


def find_session_at_provider(tx: Session, provider: str, provider_session: str) -> SessionBinding | None:
    """The live session the provider calls `provider_session`, locked for the update to come."""
    query = (
        select(SessionBinding)
        .where(
            SessionBinding.provider == provider,
            SessionBinding.provider_session == provider_session,
            SessionBinding.deleted_at.is_(None),
        )
        .with_for_update()
    )
    return tx.scalars(query).one_or_none()


def upsert_conversation(
    tx: Session, session_id: str, agency_id: str, tenant_id: str, peer: str, text: str, at: datetime
) -> str:
    """Count a new message in the session's conversation with `peer` (created if new); its id.

    One INSERT ... ON CONFLICT DO UPDATE: concurrent first messages from the same peer meet
    in the unique constraint instead of failing.
    """
    values = {
        "conversation_id": new_id("cnv"),
        "session_id": session_id,
        "agency_id": agency_id,
        "tenant_id": tenant_id,
        "peer": peer,
        "message_count": 1,
        "created_at": at,
        "last_message_at": at,
        "last_message_text": text[:EXCERPT_LENGTH],
    }
    row = _conversation_upsert.execute(tx, values).fetchone()
    return str(row[0])


@DriverStatement
def _conversation_upsert(tx: Session) -> ClauseElement:
    """INSERT a conversation, or count the message in the existing one; RETURNING its id."""
    table = Conversation.__table__
    statement = dialect_insert(tx, Conversation)
    upsert = statement.on_conflict_do_update(
        index_elements=[table.c.session_id, table.c.peer],
        set_={
            "message_count": table.c.message_count + 1,
            "last_message_text": statement.excluded.last_message_text,
            "last_message_at": case(
                (
                    statement.excluded.last_message_at > table.c.last_message_at,
                    statement.excluded.last_message_at,
                ),
                else_=table.c.last_message_at,
            ),
        },
    ).returning(table.c.conversation_id)
    return cast(ClauseElement, upsert)


def change_session_status(
    tx: Session,
    binding: SessionBinding,
    status: str,
    now: datetime,
    publish: Publisher,
    *,
    account_id: str | None = None,
) -> bool:
    """Move `binding` to `status` (and account), publishing a session.status notice; False if unchanged."""
    account_changed = account_id is not None and account_id != binding.account_id
    if status == binding.status and not account_changed:
        return False
    previous = binding.status
    binding.status = status
    if account_id is not None:
        binding.account_id = account_id
    binding.updated_at = now
    tx.flush()
    if status != previous:
        view = session_view(binding)
        publish(
            tx,
            Notice(
                SESSION_STATUS,
                binding.agency_id,
                binding.tenant_id,
                binding.session_id,
                session=view,
                previous_status=previous,
            ),
        )
    return True


def defer_ack(tx: Session, session_id: str, provider_message_id: str, status: str, now: datetime) -> None:
    """Keep an ack for a message not (yet) known by its provider id, merged with earlier ones."""
    tx.execute(delete(PendingMessageAck).where(PendingMessageAck.received_at < now - PENDING_ACK_LIFETIME))
    pending = tx.get(PendingMessageAck, (session_id, provider_message_id), with_for_update=True)
    if pending is None:
        tx.add(
            PendingMessageAck(
                session_id=session_id, provider_message_id=provider_message_id, status=status, received_at=now
            )
        )
    else:
        pending.status = lifecycle.next_message_status(pending.status, status)


def change_message_status(
    tx: Session, message: StoredMessage, reported: str, now: datetime, publish: Publisher
) -> bool:
    """Move a message forward to what the provider reported, publishing message.status; False if unchanged."""
    previous = message.status
    status = lifecycle.next_message_status(previous, reported)
    if status == previous:
        return False
    message.status = status
    message.updated_at = now
    tx.flush()
    publish(
        tx,
        Notice(
            MESSAGE_STATUS,
            message.agency_id,
            message.tenant_id,
            message.session_id,
            message=message_view(message),
            previous_status=previous,
        ),
    )
    return True


def take_deferred_ack(tx: Session, session_id: str, provider_message_id: str) -> str | None:
    """The status of an ack that arrived before its message was named, removing it."""
    pending = tx.get(PendingMessageAck, (session_id, provider_message_id), with_for_update=True)
    if pending is None:
        return None
    status = pending.status
    tx.delete(pending)
    return status
