"""Provider ingress: verify a provider's webhook, parse it, record each event all or nothing.

This is the engine's second path (docs in the README, "Providers"): `/v1/webhooks/{provider}` → verify
the provider's signature (through the AccessGuard, as the `PROVIDER_SIGNATURE` credential)
→ parse into provider-neutral events → find the session they belong to → record each event
all or nothing: receipt, conversation, message or status change, notices for the dashboard.
Concurrent events share a transaction (group commit); one that fails is recorded alone.
The sandbox provider feeds its simulated events through `accept`, the very same pipeline.
"""

from __future__ import annotations

import enum
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import bindparam, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement

from engine.auth.guard import CallCredentials
from engine.errors import Unauthenticated, invalid
from engine.ids import new_id
from engine.sessions import lifecycle
from engine.sessions.models import INBOUND, SessionBinding, StoredMessage
from engine.sessions.notices import MESSAGE_RECEIVED, Notice, Publisher, publish_nowhere
from engine.sessions.providers import (
    InboundMessage,
    MalformedPayload,
    MessageAck,
    Provider,
    ProviderEvent,
    SessionStatusChanged,
)
from engine.sessions.store import (
    change_message_status,
    change_session_status,
    defer_ack,
    find_session_at_provider,
    upsert_conversation,
)
from engine.sessions.views import MessageView, message_view
from engine.store.base import utcnow
from engine.store.database import Database
from engine.store.driver import DriverStatement
from engine.store.upsert import dialect_insert, table_of
from engine.webhooks.models import ProviderEventReceipt, UnroutableProviderEvent

log = logging.getLogger("engine.ingress")


class Outcome(enum.Enum):
    """What recording one provider event did."""

    STORED = "stored"
    #: The same event (or the same provider message) was recorded before.
    DUPLICATE = "duplicate"
    #: For a session the engine does not know; kept in unroutable_provider_events.
    UNROUTABLE = "unroutable"
    #: Nothing to change (e.g. a status the message has passed already).
    IGNORED = "ignored"
    #: An ack for a message not known by that id yet: kept until the send records it.
    DEFERRED = "deferred"


@dataclass(frozen=True)
class Recorded:
    """The outcome of one event, with the message it stored or changed, if any."""

    outcome: Outcome
    message: MessageView | None = None


@dataclass(frozen=True)
class IngressResult:
    """Outcomes of every event of one webhook."""

    recorded: tuple[Recorded, ...]

    @property
    def unroutable(self) -> int:
        """Events for sessions the engine does not know."""
        return sum(1 for r in self.recorded if r.outcome is Outcome.UNROUTABLE)

    @property
    def accepted(self) -> int:
        """Events the engine took responsibility for (stored now or before)."""
        return len(self.recorded) - self.unroutable


_SESSIONS = table_of(SessionBinding)
_MESSAGES = table_of(StoredMessage)
#: The live session of a provider's session name, and the id of the message the event names if
#: it is stored already: one round trip for both.
_ROUTE = DriverStatement(
    lambda _tx: select(
        _SESSIONS.c.session_id,
        _SESSIONS.c.agency_id,
        _SESSIONS.c.tenant_id,
        _SESSIONS.c.account_id,
        select(_MESSAGES.c.message_id)
        .where(
            _MESSAGES.c.session_id == _SESSIONS.c.session_id,
            _MESSAGES.c.provider_message_id == bindparam("provider_message_id"),
        )
        .scalar_subquery()
        .label("known_message_id"),
    ).where(
        _SESSIONS.c.provider == bindparam("provider"),
        _SESSIONS.c.provider_session == bindparam("provider_session"),
        _SESSIONS.c.deleted_at.is_(None),
    )
)


class _Route(NamedTuple):
    """A row of _ROUTE."""

    session_id: str
    agency_id: str
    tenant_id: str
    account_id: str
    known_message_id: str | None


_INSERT_MESSAGE = DriverStatement(lambda _tx: insert(_MESSAGES))

#: At most this many events share a transaction (bounds the wait of the last one).
GROUP_LIMIT = 64

_EVENT_TYPES = {InboundMessage: "message", MessageAck: "message.ack", SessionStatusChanged: "session.status"}


class _Pending:
    """An event waiting to be recorded, and what recording it gave."""

    __slots__ = ("_settled", "error", "event", "leads", "provider", "result")

    def __init__(self, provider: str, event: ProviderEvent) -> None:
        self.provider = provider
        self.event = event
        # Held until the event is recorded (or failed), or until this caller is to lead. A bare
        # lock rather than an Event: one of these per event, and an Event costs several times more.
        self._settled = threading.Lock()
        self._settled.acquire()
        self.leads = False
        self.result: Recorded | None = None
        self.error: Exception | None = None

    def wait(self) -> None:
        """Block until `settle()`."""
        self._settled.acquire()

    def settle(self) -> None:
        """Wake the caller waiting for this event; once per wait."""
        self._settled.release()

    def outcome(self) -> Recorded:
        """The event's outcome; raises what recording it raised."""
        if self.error is not None:
            raise self.error
        if self.result is None:
            raise RuntimeError("the provider event was not recorded")
        return self.result


class ProviderIngress:
    """Verifies, parses and records provider webhooks."""

    def __init__(
        self,
        database: Database,
        providers: Mapping[str, Provider],
        *,
        publish: Publisher = publish_nowhere,
        clock: Callable[[], datetime] = utcnow,
        count: Callable[[str, str], None] | None = None,
    ) -> None:
        self._db = database
        self._providers = providers
        self._publish = publish
        self._clock = clock
        #: Called with (provider, outcome) for every event, for the metrics.
        self._count = count
        #: Events waiting for the leader, and whether some caller is leading (group commit).
        self._queue: list[_Pending] = []
        self._queue_lock = threading.Lock()
        self._leading = False

    # -- verification (the AccessGuard's PROVIDER_SIGNATURE credential) --------------------------

    def verify_request(self, request: Any, credentials: CallCredentials) -> bool:
        """True if a ReceiveProviderWebhook request carries its provider's valid signature."""
        provider = self._providers.get(request.provider)
        if provider is None:
            return False
        wanted = provider.signature_headers
        headers = {k: v for k, v in credentials.metadata() if k in wanted and isinstance(v, str)}
        return provider.verify_signature(request.body.data, headers)

    # -- recording -------------------------------------------------------------------------------

    def accept(self, provider_name: str, body: bytes, headers: Mapping[str, str]) -> IngressResult:
        """Verify and record a webhook given in full (how the sandbox delivers its events)."""
        provider = self._providers.get(provider_name)
        if provider is None or not provider.verify_signature(body, headers):
            raise Unauthenticated("the provider signature is missing or invalid")
        return self.receive(provider_name, body)

    def receive(self, provider_name: str, body: bytes) -> IngressResult:
        """Record every event of a verified webhook body; INVALID_ARGUMENT if it cannot be parsed.

        Parsing happens before anything is written, so a malformed body stores nothing.
        """
        provider = self._providers.get(provider_name)
        if provider is None:
            raise invalid("provider", f"unknown provider {provider_name!r}")
        try:
            events = provider.parse_events(body)
        except MalformedPayload as error:
            raise invalid("body", str(error)) from None
        return IngressResult(tuple(self.record(provider_name, event) for event in events))

    def record(self, provider: str, event: ProviderEvent) -> Recorded:
        """Record one event, all or nothing; a second delivery of it changes nothing.

        Events of concurrent callers are recorded together (group commit): one caller at a time
        leads, recording every event waiting in one transaction, so the transaction's set-up and
        its commit are paid once for all of them. Each caller returns once its event committed.
        """
        pending = _Pending(provider, event)
        with self._queue_lock:
            self._queue.append(pending)
            pending.leads = not self._leading
            self._leading = True
        if not pending.leads:
            pending.wait()
        if pending.leads:
            # First in line, or handed the lead by the previous leader: its event is not recorded yet.
            self._lead()
        result = pending.outcome()
        if self._count is not None:
            self._count(provider, result.outcome.value)
        return result

    def _lead(self) -> None:
        """Record the waiting events (this leader's first), then hand the lead to the next waiter."""
        # Let the callers woken by the previous commit queue their events first: one thread
        # switch, and the batch grows instead of alternating with batches of one.
        os.sched_yield()
        with self._queue_lock:
            batch = self._queue[:GROUP_LIMIT]
            del self._queue[:GROUP_LIMIT]
        try:
            self._record_group(batch)
        finally:
            with self._queue_lock:
                successor = self._queue[0] if self._queue else None
                if successor is None:
                    self._leading = False
                else:
                    successor.leads = True
            for pending in batch:
                if not pending.leads:  # a leader is not waiting
                    pending.settle()
            if successor is not None:
                successor.settle()

    def _record_group(self, batch: list[_Pending]) -> None:
        """Record `batch` in one transaction; if any event fails, none is stored: record each alone."""
        if len(batch) > 1:
            try:
                with self._db.transaction() as tx:
                    results = [self._record(tx, p.provider, p.event) for p in batch]
            except Exception:
                # Mostly a concurrent delivery of one of the events (the unique constraint); alone,
                # that one is a duplicate and the others are stored.
                log.debug("group of provider events failed, recording each alone", exc_info=True)
            else:
                for pending, result in zip(batch, results, strict=True):
                    pending.result = result
                return
        for pending in batch:
            self._record_alone(pending)

    def _record_alone(self, pending: _Pending) -> None:
        """Record one event in its own transaction; a failure other than a duplicate goes to its caller."""
        try:
            with self._db.transaction() as tx:
                pending.result = self._record(tx, pending.provider, pending.event)
        except IntegrityError:
            # A concurrent delivery of the same event (or provider message) committed first.
            pending.result = Recorded(Outcome.DUPLICATE)
        except Exception as error:
            pending.error = error

    def _record(self, tx: Session, provider: str, event: ProviderEvent) -> Recorded:
        now = self._clock()
        # Inserted first, "do nothing" on conflict: a repeated event is found with one statement.
        receipt = _insert_receipt.execute(
            tx, {"provider": provider, "event_id": event.event_id, "received_at": now}
        )
        if receipt.rowcount == 0:
            return Recorded(Outcome.DUPLICATE)
        if isinstance(event, InboundMessage):
            # Messages need no lock on the session row: nothing in it changes.
            route = _ROUTE.execute(
                tx,
                {
                    "provider": provider,
                    "provider_session": event.provider_session,
                    "provider_message_id": event.provider_message_id,
                },
            ).fetchone()
            if route is None:
                return self._unroutable(tx, provider, event, now)
            return self._inbound(tx, _Route(*route), event, now)
        binding = find_session_at_provider(tx, provider, event.provider_session)
        if binding is None:
            return self._unroutable(tx, provider, event, now)
        if isinstance(event, MessageAck):
            return self._ack(tx, binding, event, now)
        changed = change_session_status(
            tx, binding, event.status, now, self._publish, account_id=event.account_id or None
        )
        return Recorded(Outcome.STORED if changed else Outcome.IGNORED)

    def _unroutable(self, tx: Session, provider: str, event: ProviderEvent, now: datetime) -> Recorded:
        tx.add(
            UnroutableProviderEvent(
                provider=provider,
                provider_session=event.provider_session[:128],
                event_type=_EVENT_TYPES[type(event)],
                event_id=event.event_id,
                received_at=now,
            )
        )
        log.warning(
            "provider event for an unknown session",
            extra={"provider": provider, "provider_session": event.provider_session[:128]},
        )
        return Recorded(Outcome.UNROUTABLE)

    def _inbound(self, tx: Session, route: _Route, event: InboundMessage, now: datetime) -> Recorded:
        if route.known_message_id is not None:
            return Recorded(Outcome.DUPLICATE)
        session_id = route.session_id
        conversation_id = upsert_conversation(
            tx, session_id, route.agency_id, route.tenant_id, event.sender, event.text, now
        )
        view = MessageView(
            message_id=new_id("msg"),
            conversation_id=conversation_id,
            session_id=session_id,
            agency_id=route.agency_id,
            tenant_id=route.tenant_id,
            direction=INBOUND,
            sender=event.sender,
            recipient=lifecycle.chat_id_of(route.account_id) or route.account_id,
            text=event.text,
            status=lifecycle.RECEIVED,
            provider_message_id=event.provider_message_id,
            created_at=now,
            updated_at=now,
        )
        # A plain insert: a concurrent delivery of the same message fails the unique constraint,
        # and the whole transaction (conversation count included) rolls back as a duplicate.
        _INSERT_MESSAGE.execute(tx, vars(view))
        self._publish(
            tx, Notice(MESSAGE_RECEIVED, route.agency_id, route.tenant_id, session_id, message=view)
        )
        return Recorded(Outcome.STORED, view)

    def _ack(self, tx: Session, binding: SessionBinding, event: MessageAck, now: datetime) -> Recorded:
        message = _message_at(tx, binding.session_id, event.provider_message_id)
        if message is None:
            # Possibly our own send whose answer is not recorded yet: the send applies it then.
            defer_ack(tx, binding.session_id, event.provider_message_id, event.status, now)
            return Recorded(Outcome.DEFERRED)
        changed = change_message_status(tx, message, event.status, now, self._publish)
        return Recorded(Outcome.STORED if changed else Outcome.IGNORED, message_view(message))


@DriverStatement
def _insert_receipt(tx: Session) -> ClauseElement:
    """INSERT a receipt unless the event has one already."""
    return cast(ClauseElement, dialect_insert(tx, ProviderEventReceipt).on_conflict_do_nothing())


def _message_at(tx: Session, session_id: str, provider_message_id: str) -> StoredMessage | None:
    """The session's message with this provider id, locked for a status change."""
    query = select(StoredMessage).where(
        StoredMessage.session_id == session_id, StoredMessage.provider_message_id == provider_message_id
    )
    return tx.scalars(query.with_for_update()).one_or_none()
