"""What dashboards (and admins) can do with deliveries: list, inspect, redeliver, test, release."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update

from engine.errors import FailedPrecondition, NotFound, invalid
from engine.pagination import encode_token, page_size, token_position
from engine.registry.models import DashboardRegistration
from engine.store.base import utcnow
from engine.store.database import Database
from engine.validation import CONTROL_CHARACTERS
from engine.webhooks.models import FAILED, HELD, PENDING, SUCCEEDED, DeliveryAttempt, WebhookDelivery
from engine.webhooks.outbox import TEST_EVENT, Outbox
from workflow_engine.v1 import webhook_pb2

DELIVERY_STATUSES = (PENDING, SUCCEEDED, FAILED, HELD)
MAX_TEST_NOTE = 500


@dataclass(frozen=True)
class DeliveryView:
    """A delivery with (optionally) its attempts."""

    delivery: WebhookDelivery
    attempts: tuple[DeliveryAttempt, ...] = ()


class DeliveryService:
    """Reads and manual actions on the outbox of one agency."""

    def __init__(
        self,
        database: Database,
        outbox: Outbox,
        clock: Callable[[], datetime] = utcnow,
        *,
        deliver_now: Callable[[str], None] | None = None,
        test_lease: timedelta = timedelta(seconds=60),
    ) -> None:
        self._db = database
        self._outbox = outbox
        self._clock = clock
        #: Makes one attempt of a delivery at once (the dispatcher's `deliver`), for SendTestWebhook.
        self._deliver_now = deliver_now
        self._test_lease = test_lease

    def list_deliveries(
        self,
        agency_id: str | None,
        status: str,
        event_type: str,
        requested_page_size: int,
        page_token: str,
        since: datetime | None = None,
    ) -> tuple[list[DeliveryView], str]:
        """The agency's (None: every agency's) deliveries, newest first, filtered by status, type, time."""
        if status and status not in DELIVERY_STATUSES:
            raise invalid("status", "is not a delivery status")
        limit = page_size(requested_page_size)
        query = select(WebhookDelivery)
        if agency_id is not None:
            query = query.where(WebhookDelivery.agency_id == agency_id)
        if status:
            query = query.where(WebhookDelivery.status == status)
        if event_type:
            query = query.where(WebhookDelivery.event_type == event_type)
        if since is not None:
            query = query.where(WebhookDelivery.created_at >= since)
        position = token_position(page_token, "before")
        if position is not None:
            query = query.where(WebhookDelivery.delivery_id < position)
        query = query.order_by(WebhookDelivery.delivery_id.desc()).limit(limit + 1)
        with self._db.reader() as tx:
            rows = list(tx.scalars(query))
        next_token = encode_token({"before": rows[limit - 1].delivery_id}) if len(rows) > limit else ""
        return [DeliveryView(row) for row in rows[:limit]], next_token

    def get_delivery(self, agency_id: str, delivery_id: str) -> DeliveryView:
        """One delivery of the agency with every attempt."""
        with self._db.reader() as tx:
            delivery = tx.get(WebhookDelivery, delivery_id)
            if delivery is None or delivery.agency_id != agency_id:
                raise NotFound(f"delivery {delivery_id!r} not found")
            attempts = tx.scalars(
                select(DeliveryAttempt)
                .where(DeliveryAttempt.delivery_id == delivery_id)
                .order_by(DeliveryAttempt.attempt_number)
            )
            return DeliveryView(delivery, tuple(attempts))

    def redeliver(self, agency_id: str, delivery_id: str) -> DeliveryView:
        """One more attempt of a delivered or failed webhook, same event id and body."""
        with self._db.transaction() as tx:
            delivery = tx.get(WebhookDelivery, delivery_id, with_for_update=True)
            if delivery is None or delivery.agency_id != agency_id:
                raise NotFound(f"delivery {delivery_id!r} not found")
            if delivery.status not in (SUCCEEDED, FAILED):
                raise FailedPrecondition(
                    f"cannot redeliver: the delivery is {delivery.status}; it must be SUCCEEDED or FAILED"
                )
            delivery.status = PENDING
            delivery.next_attempt_at = self._clock()
            delivery.lease_expires_at = None
        return self.get_delivery(agency_id, delivery_id)

    def send_test(self, agency_id: str, note: str) -> DeliveryView:
        """Send a `webhook.test` event to the agency's dashboard now; the view carries the attempt.

        The row is written already claimed, so no dispatcher takes it while this call delivers
        it; if the attempt fails it is retried on the schedule like any other.
        """
        if len(note) > MAX_TEST_NOTE or CONTROL_CHARACTERS.search(note):
            raise invalid("note", f"must be at most {MAX_TEST_NOTE} characters without control characters")
        event = webhook_pb2.WebhookEvent(type=TEST_EVENT, agency_id=agency_id)
        event.test.note = note
        with self._db.transaction() as tx:
            if tx.get(DashboardRegistration, agency_id) is None:
                raise NotFound(f"agency {agency_id!r} is not registered")
            lease = self._test_lease if self._deliver_now is not None else None
            delivery_id = self._outbox.add(tx, event, claimed_for=lease)
        if self._deliver_now is not None:
            self._deliver_now(delivery_id)
        return self.get_delivery(agency_id, delivery_id)

    def recover_failed(self, agency_id: str, since: datetime | None) -> int:
        """Queue the agency's FAILED deliveries (created since `since`, or all) once more."""
        with self._db.transaction() as tx:
            if tx.get(DashboardRegistration, agency_id) is None:
                raise NotFound(f"agency {agency_id!r} is not registered")
            statement = update(WebhookDelivery).where(
                WebhookDelivery.agency_id == agency_id, WebhookDelivery.status == FAILED
            )
            if since is not None:
                statement = statement.where(WebhookDelivery.created_at >= since)
            result = tx.execute(
                statement.values(status=PENDING, next_attempt_at=self._clock(), lease_expires_at=None)
            )
        return int(getattr(result, "rowcount", 0) or 0)

    def release_held(self, agency_id: str) -> int:
        """Send the agency's HELD deliveries now (after activation); returns how many."""
        with self._db.transaction() as tx:
            result = tx.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.agency_id == agency_id, WebhookDelivery.status == HELD)
                .values(status=PENDING, next_attempt_at=self._clock(), lease_expires_at=None)
            )
        return int(getattr(result, "rowcount", 0) or 0)
