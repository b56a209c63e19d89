"""The dispatcher: claims due outbox rows under a lease and delivers them, signed, with retries.

Claiming uses `FOR UPDATE SKIP LOCKED` on PostgreSQL, so several workers never take the
same row; on SQLite the claim is a single-writer transaction. A claimed row carries a
lease: if its worker dies, the row becomes claimable again when the lease runs out.
Concurrency is bounded in total and per dashboard, so one slow or dead dashboard only
ever occupies its own share of the workers.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from engine import __version__
from engine.registry.models import (
    STATUS_ACTIVE,
    STATUS_WEBHOOKS_DISABLED,
    DashboardRegistration,
    DashboardStatusChange,
)
from engine.store.base import utcnow
from engine.store.database import Database
from engine.webhooks.models import FAILED, HELD, PENDING, SUCCEEDED, DeliveryAttempt, WebhookDelivery
from engine.webhooks.signing import EngineSigner, signature_header
from engine.webhooks.targets import DeliveryTarget, TargetRefused, check_destination

log = logging.getLogger("engine.dispatcher")

#: How much of a dashboard's answer is kept with the attempt, for diagnosis.
EXCERPT_BYTES = 1024
USER_AGENT = f"workflow-engine-webhooks/{__version__}"


@dataclass(frozen=True)
class RetryPolicy:
    """When to try again: a schedule of delays (data, not code), jittered, honouring Retry-After."""

    schedule: tuple[float, ...]
    jitter: float = 0.2

    @property
    def attempts(self) -> int:
        """Attempts in all: the first one and one per scheduled delay."""
        return len(self.schedule) + 1

    def delay_after(self, attempt_number: int, retry_after: float | None, rng: random.Random) -> float | None:
        """Seconds until the attempt after `attempt_number`; None when it was the last.

        A dashboard's Retry-After may lengthen the wait up to the schedule's longest
        delay, never shorten it below the schedule.
        """
        if attempt_number >= self.attempts:
            return None
        delay = self.schedule[attempt_number - 1] * rng.uniform(1 - self.jitter, 1 + self.jitter)
        if retry_after is not None:
            delay = max(delay, min(retry_after, max(self.schedule)))
        return delay


@dataclass(frozen=True)
class DispatcherConfig:
    """Limits of one dispatcher."""

    policy: RetryPolicy
    timeout_seconds: float = 15.0
    disable_after: timedelta = timedelta(hours=120)
    concurrency: int = 32
    concurrency_per_dashboard: int = 4
    allow_private_webhook_urls: bool = False
    #: How often an idle dispatcher looks for due rows (it is also woken by new events).
    poll_seconds: float = 0.25


@dataclass(frozen=True)
class _Outcome:
    status: int = 0
    excerpt: str = ""
    error: str = ""
    retry_after: float | None = None
    duration_ms: int = 0

    @property
    def succeeded(self) -> bool:
        return 200 <= self.status < 300


class Dispatcher:
    """Delivers the outbox. `start()` runs it in the background; `run_once()` is one claim cycle."""

    def __init__(
        self,
        database: Database,
        targets: Callable[[str], DeliveryTarget | None],
        signer: EngineSigner,
        config: DispatcherConfig,
        *,
        on_status_change: Callable[[str], None] = lambda _agency: None,
        clock: Callable[[], datetime] = utcnow,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._db = database
        self._targets = targets
        self._signer = signer
        self._config = config
        #: Called with an agency whose registration status the dispatcher changed (cache eviction).
        self._on_status_change = on_status_change
        self._clock = clock
        self._rng = random.Random()  # noqa: S311 (retry jitter, not cryptography)
        self._client = httpx.Client(
            follow_redirects=False, timeout=config.timeout_seconds, transport=transport, trust_env=False
        )
        self._pool = ThreadPoolExecutor(max_workers=config.concurrency, thread_name_prefix="delivery")
        self._in_flight: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._wakeup = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        # Long enough for one attempt and its bookkeeping; a dead worker's rows wait no longer.
        self._lease = timedelta(seconds=config.timeout_seconds + 10)

    # -- running ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Deliver in a background thread until `stop()`."""
        self._thread = threading.Thread(target=self._run, name="dispatcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop claiming and drop queued attempts. Attempts in flight finish on their own; a row
        whose attempt never got recorded is claimed again when its lease runs out."""
        self._stopping.set()
        self._wakeup.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def wake(self) -> None:
        """Look for due rows now rather than at the next poll."""
        self._wakeup.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                claimed = self.run_once()
            except Exception:
                log.exception("claiming deliveries failed")
                claimed = 0
            if not claimed:
                self._wakeup.wait(self._config.poll_seconds)
                self._wakeup.clear()

    def run_once(self) -> int:
        """Hold what must wait, claim due rows within the concurrency limits, start delivering them."""
        with self._lock:
            free = self._config.concurrency - sum(self._in_flight.values())
        if free <= 0:
            return 0
        claimed = self._claim(free)
        for delivery_id, agency_id in claimed:
            with self._lock:
                self._in_flight[agency_id] += 1
            self._pool.submit(self._deliver_and_release, delivery_id, agency_id)
        return len(claimed)

    # -- claiming --------------------------------------------------------------------------------

    def _claim(self, free: int) -> list[tuple[str, str]]:
        now = self._clock()
        with self._db.transaction() as tx:
            # Events of a suspended dashboard, or one whose webhooks are disabled, wait as HELD.
            tx.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.status == PENDING,
                    WebhookDelivery.agency_id.in_(
                        select(DashboardRegistration.agency_id).where(
                            DashboardRegistration.status != STATUS_ACTIVE
                        )
                    ),
                )
                .values(status=HELD, next_attempt_at=None)
            )
            with self._lock:
                taken = Counter(self._in_flight)
            # Dashboards already at their share are left out in the query itself: otherwise a slow
            # dashboard's backlog, being the oldest, would fill every page and starve the others.
            at_cap = [a for a, n in taken.items() if n >= self._config.concurrency_per_dashboard]
            query = select(WebhookDelivery.delivery_id, WebhookDelivery.agency_id).where(
                WebhookDelivery.status == PENDING,
                WebhookDelivery.next_attempt_at <= now,
                or_(WebhookDelivery.lease_expires_at.is_(None), WebhookDelivery.lease_expires_at <= now),
                # Only active dashboards' rows: one committed after the UPDATE above must not slip through.
                WebhookDelivery.agency_id.in_(
                    select(DashboardRegistration.agency_id).where(
                        DashboardRegistration.status == STATUS_ACTIVE
                    )
                ),
            )
            if at_cap:
                query = query.where(WebhookDelivery.agency_id.not_in(at_cap))
            due = tx.execute(
                query.order_by(WebhookDelivery.next_attempt_at)
                .limit(free * 4)
                .with_for_update(skip_locked=True)
            ).all()
            chosen: list[tuple[str, str]] = []
            for delivery_id, agency_id in due:
                if len(chosen) == free:
                    break
                if taken[agency_id] < self._config.concurrency_per_dashboard:
                    taken[agency_id] += 1
                    chosen.append((delivery_id, agency_id))
            if chosen:
                tx.execute(
                    update(WebhookDelivery)
                    .where(WebhookDelivery.delivery_id.in_([d for d, _ in chosen]))
                    .values(lease_expires_at=now + self._lease)
                )
        return chosen

    # -- delivering ------------------------------------------------------------------------------

    def _deliver_and_release(self, delivery_id: str, agency_id: str) -> None:
        try:
            self.deliver(delivery_id)
        except Exception:
            log.exception("delivery failed unexpectedly", extra={"delivery_id": delivery_id})
        finally:
            with self._lock:
                self._in_flight[agency_id] -= 1
                if self._in_flight[agency_id] <= 0:
                    del self._in_flight[agency_id]
            self._wakeup.set()

    def deliver(self, delivery_id: str) -> None:
        """Make one attempt of a claimed delivery and record its outcome."""
        with self._db.reader() as tx:
            delivery = tx.get(WebhookDelivery, delivery_id)
        if delivery is None:
            return
        target = self._targets(delivery.agency_id)
        if target is not None and not target.active:
            self._hold(delivery_id)
            return
        if target is None:
            outcome = _Outcome(error="the dashboard is not registered")
        else:
            outcome = self._post(delivery, target)
        self._record(delivery_id, outcome)

    def _hold(self, delivery_id: str) -> None:
        """Park a delivery of a suspended or disabled dashboard until it is activated."""
        with self._db.transaction() as tx:
            tx.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.delivery_id == delivery_id, WebhookDelivery.status == PENDING)
                .values(status=HELD, next_attempt_at=None, lease_expires_at=None)
            )

    def _post(self, delivery: WebhookDelivery, target: DeliveryTarget) -> _Outcome:
        try:
            destination = check_destination(target.url, self._config.allow_private_webhook_urls)
        except TargetRefused as refused:
            return _Outcome(error=str(refused))
        body = delivery.payload.encode("utf-8")
        sent_at = int(time.time())
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": delivery.event_id,
            "webhook-timestamp": str(sent_at),
            "webhook-signature": signature_header(
                target.secrets, self._signer, delivery.event_id, sent_at, body
            ),
        }
        extensions = {}
        if destination.host_header:
            headers["host"] = destination.host_header
            extensions["sni_hostname"] = destination.server_name
        started = time.perf_counter()
        try:
            with self._client.stream(
                "POST", destination.connect_url, content=body, headers=headers, extensions=extensions
            ) as response:
                excerpt = _read_excerpt(response)
                retry_after = _retry_after_seconds(response.headers.get("retry-after"))
                status = response.status_code
        except httpx.TimeoutException:
            return _Outcome(error="timed out", duration_ms=_ms_since(started))
        except httpx.HTTPError as error:
            return _Outcome(error=f"request failed: {type(error).__name__}", duration_ms=_ms_since(started))
        return _Outcome(status, excerpt, "", retry_after, _ms_since(started))

    def _record(self, delivery_id: str, outcome: _Outcome) -> None:
        """Store the attempt and decide what comes next: done, retry, dead letter or held."""
        now = self._clock()
        with self._db.transaction() as tx:
            delivery = tx.get(WebhookDelivery, delivery_id, with_for_update=True)
            if delivery is None:
                return
            registration = tx.get(DashboardRegistration, delivery.agency_id, with_for_update=True)
            delivery.attempt_count += 1
            delivery.last_attempt_at = now
            delivery.lease_expires_at = None
            tx.add(
                DeliveryAttempt(
                    delivery_id=delivery_id,
                    attempt_number=delivery.attempt_count,
                    attempted_at=now,
                    response_status=outcome.status,
                    response_excerpt=outcome.excerpt,
                    duration_ms=outcome.duration_ms,
                    error=outcome.error[:500],
                )
            )
            disabled = self._schedule(tx, delivery, registration, outcome, now)
        if disabled:
            # After the commit: the registry's cache must not keep showing the dashboard active.
            self._on_status_change(delivery.agency_id)

    def _schedule(
        self,
        tx: Session,
        delivery: WebhookDelivery,
        registration: DashboardRegistration | None,
        outcome: _Outcome,
        now: datetime,
    ) -> bool:
        """Set the delivery's next state; True if this outcome disabled the dashboard's webhooks."""
        if outcome.succeeded:
            delivery.status = SUCCEEDED
            delivery.succeeded_at = now
            delivery.next_attempt_at = None
            if registration is not None:
                registration.webhooks_failing_since = None
            return False
        disable_reason = ""
        if registration is not None:
            failing_since = registration.webhooks_failing_since or now
            registration.webhooks_failing_since = failing_since
            if outcome.status == 410:
                disable_reason = "the dashboard answered 410 Gone"
            elif now - failing_since >= self._config.disable_after:
                hours = self._config.disable_after.total_seconds() / 3600
                disable_reason = f"every delivery failed for {hours:g} hours"
        if registration is not None and disable_reason:
            delivery.status = HELD
            delivery.next_attempt_at = None
            if registration.status != STATUS_ACTIVE:
                return False  # suspended already: stays so
            registration.status = STATUS_WEBHOOKS_DISABLED
            registration.status_reason = disable_reason
            tx.add(
                DashboardStatusChange(
                    agency_id=registration.agency_id,
                    status=STATUS_WEBHOOKS_DISABLED,
                    actor="engine",
                    reason=disable_reason,
                    changed_at=now,
                )
            )
            log.warning(
                "webhooks disabled", extra={"agency_id": registration.agency_id, "reason": disable_reason}
            )
            return True
        delay = self._config.policy.delay_after(delivery.attempt_count, outcome.retry_after, self._rng)
        if delay is None:
            delivery.status = FAILED
            delivery.next_attempt_at = None
        else:
            delivery.status = PENDING
            delivery.next_attempt_at = now + timedelta(seconds=delay)
        return False


def _read_excerpt(response: httpx.Response) -> str:
    collected = b""
    for chunk in response.iter_bytes():
        collected += chunk
        if len(collected) >= EXCERPT_BYTES:
            break
    return collected[:EXCERPT_BYTES].decode("utf-8", errors="replace")


def _retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - utcnow()).total_seconds())


def _ms_since(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
