"""The transactional outbox: every event for a dashboard is written with the change it describes.

`Outbox.publish` is the sessions domain's Publisher: it runs inside the transaction that
records a message or a status change, so the event exists if and only if the change does.
The dispatcher delivers what is written here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import event as sqlalchemy_events
from sqlalchemy import insert
from sqlalchemy.orm import Session

from engine.ids import new_id
from engine.sessions.notices import MESSAGE_RECEIVED, MESSAGE_STATUS, SESSION_STATUS, Notice
from engine.sessions.protos import message_message, message_status, session_message, session_status
from engine.store.base import utcnow
from engine.store.driver import DriverStatement
from engine.store.upsert import table_of
from engine.webhooks.event_json import message_to_dict
from engine.webhooks.models import PENDING, WebhookDelivery
from workflow_engine.v1 import webhook_pb2

TEST_EVENT = "webhook.test"
_INSERT_DELIVERY = DriverStatement(lambda _tx: insert(table_of(WebhookDelivery)))
_WAKE_REGISTERED = "outbox_wake_registered"


class Outbox:
    """Writes webhook events into the delivery outbox, inside the caller's transaction."""

    def __init__(
        self, clock: Callable[[], datetime] = utcnow, wake: Callable[[], None] | None = None
    ) -> None:
        self._clock = clock
        #: Called after writing, so an idle dispatcher looks for work at once.
        self._wake = wake

    def publish(self, tx: Session, notice: Notice) -> None:
        """Write the webhook event of a sessions notice."""
        event = webhook_pb2.WebhookEvent(
            type=notice.type,
            agency_id=notice.agency_id,
            tenant_id=notice.tenant_id,
            session_id=notice.session_id,
        )
        if notice.type == MESSAGE_RECEIVED and notice.message is not None:
            event.message_received.message.CopyFrom(message_message(notice.message))
        elif notice.type == MESSAGE_STATUS and notice.message is not None:
            event.message_status.CopyFrom(
                webhook_pb2.MessageStatusData(
                    message=message_message(notice.message),
                    previous_status=message_status(notice.previous_status),
                )
            )
        elif notice.type == SESSION_STATUS and notice.session is not None:
            event.session_status.CopyFrom(
                webhook_pb2.SessionStatusData(
                    session=session_message(notice.session),
                    previous_status=session_status(notice.previous_status),
                )
            )
        else:
            raise ValueError(f"notice {notice.type!r} carries no data")
        self.add(tx, event)

    def add(self, tx: Session, event: webhook_pb2.WebhookEvent, claimed_for: timedelta | None = None) -> str:
        """Give `event` a new id and timestamp and queue it for its dashboard; return the delivery id."""
        now = self._clock()
        event.id = new_id("evt")
        event.timestamp.FromDatetime(now)
        delivery_id = new_id("dlv")
        # Run on the driver: this is in every ingress transaction, where SQLAlchemy's work shows.
        _INSERT_DELIVERY.execute(
            tx,
            {
                "delivery_id": delivery_id,
                "event_id": event.id,
                "agency_id": event.agency_id,
                "event_type": event.type,
                "tenant_id": event.tenant_id,
                "session_id": event.session_id,
                "payload": event_body(event),
                "status": PENDING,
                "attempt_count": 0,
                "next_attempt_at": now,
                # Written already leased when the caller delivers it itself (test sends).
                "lease_expires_at": now + claimed_for if claimed_for is not None else None,
                "created_at": now,
            },
        )
        if self._wake is not None and not tx.info.get(_WAKE_REGISTERED):
            # Woken before the commit, a dispatcher would not see the row yet.
            tx.info[_WAKE_REGISTERED] = True
            sqlalchemy_events.listen(tx, "after_commit", self._wake_after_commit, once=True)
        return delivery_id

    def _wake_after_commit(self, _session: Session) -> None:
        if self._wake is not None:
            self._wake()


def event_body(event: webhook_pb2.WebhookEvent) -> str:
    """The JSON body of a webhook: the event in protobuf JSON (camelCase, defaults included)."""
    document = message_to_dict(event)
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)
