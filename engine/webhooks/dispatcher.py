"""The dispatcher: claims due outbox rows under a lease and delivers them, signed, with retries.

Claiming uses `FOR UPDATE SKIP LOCKED` on PostgreSQL, so several workers never take the
same row; on SQLite the claim is a single-writer transaction. A claimed row carries a
lease: if its worker dies, the row becomes claimable again when the lease runs out.
Concurrency is bounded in total and per dashboard, so one slow or dead dashboard only
ever occupies its own share of the workers.
"""

from __future__ import annotations

import http.client
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, insert, or_, select, update
from sqlalchemy.orm import Session

from engine import __version__
from engine.cache import TtlCache
from engine.registry.models import (
    STATUS_ACTIVE,
    STATUS_WEBHOOKS_DISABLED,
    DashboardRegistration,
    DashboardStatusChange,
)
from engine.store.base import utcnow
from engine.store.database import Database
from engine.store.driver import DriverStatement, ListStatement
from engine.store.upsert import table_of
from engine.webhooks.connections import ConnectionPool
from engine.webhooks.models import FAILED, HELD, PENDING, SUCCEEDED, DeliveryAttempt, WebhookDelivery
from engine.webhooks.signing import EngineSigner, signature_header
from engine.webhooks.targets import DeliveryTarget, Destination, TargetRefused, check_destination
from engine.work.retry import RetryPolicy, retry_after_seconds

log = logging.getLogger("engine.dispatcher")

#: How long a dashboard URL's checked address is used before its host name is resolved again.
DESTINATION_CACHE_SECONDS = 2.0
USER_AGENT = f"workflow-engine-webhooks/{__version__}"


@dataclass(frozen=True)
class DispatcherConfig:
    """Limits of one dispatcher."""

    policy: RetryPolicy
    timeout_seconds: float = 15.0
    disable_after: timedelta = timedelta(hours=120)
    concurrency: int = 32
    concurrency_per_dashboard: int = 16
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


@dataclass(frozen=True)
class _Claimed:
    """A claimed outbox row: everything its attempt needs, read by the claim itself."""

    delivery_id: str
    agency_id: str
    event_id: str
    payload: str
    attempt_count: int


_DELIVERIES = table_of(WebhookDelivery)
_REGISTRATIONS = table_of(DashboardRegistration)
#: A delivery's `_Claimed` columns and its dashboard's status.
_SELECT_CLAIMABLE = select(
    _DELIVERIES.c.delivery_id,
    _DELIVERIES.c.agency_id,
    _DELIVERIES.c.event_id,
    _DELIVERIES.c.payload,
    _DELIVERIES.c.attempt_count,
    _REGISTRATIONS.c.status,
).join(_REGISTRATIONS, _REGISTRATIONS.c.agency_id == _DELIVERIES.c.agency_id)

# The claim and the recording of successes run on the driver (engine.store.driver): they run
# hundreds of times a second under load, where building and compiling them cost more than the
# database takes to run them.
_NOW = bindparam("now", type_=_DELIVERIES.c.next_attempt_at.type)
_UNLEASED = or_(_DELIVERIES.c.lease_expires_at.is_(None), _DELIVERIES.c.lease_expires_at <= _NOW)


def _due_query(_tx: Session, at_cap: list[Any]) -> Any:
    """The oldest `limit` due, unleased rows of dashboards not in `at_cap` (those at their share),
    with each dashboard's status; the rows locked (PostgreSQL) and skipped when another worker
    locked them."""
    query = _SELECT_CLAIMABLE.where(
        _DELIVERIES.c.status == PENDING, _DELIVERIES.c.next_attempt_at <= _NOW, _UNLEASED
    )
    if at_cap:
        query = query.where(_DELIVERIES.c.agency_id.not_in(at_cap))
    return (
        query.order_by(_DELIVERIES.c.next_attempt_at)
        .limit(bindparam("limit"))
        .with_for_update(skip_locked=True, of=_DELIVERIES)
    )


_SELECT_DUE = ListStatement(_due_query)
#: Lease the listed rows that are still unleased, returning their ids. The conditions are checked
#: again because on SQLite the SELECT runs before the write transaction begins: another process
#: may have leased a row since. (On PostgreSQL the rows are locked already: the check passes.)
_LEASE = ListStatement(
    lambda _tx, ids: (
        update(_DELIVERIES)
        .where(_DELIVERIES.c.delivery_id.in_(ids), _DELIVERIES.c.status == PENDING, _UNLEASED)
        .values(lease_expires_at=bindparam("until", type_=_DELIVERIES.c.lease_expires_at.type))
        .returning(_DELIVERIES.c.delivery_id)
    )
)
_INSERT_ATTEMPT = DriverStatement(lambda _tx: insert(table_of(DeliveryAttempt)))
_MARK_SUCCEEDED = ListStatement(
    lambda _tx, ids: (
        update(_DELIVERIES)
        .where(_DELIVERIES.c.delivery_id.in_(ids))
        .values(
            status=SUCCEEDED,
            attempt_count=_DELIVERIES.c.attempt_count + 1,
            last_attempt_at=_NOW,
            succeeded_at=_NOW,
            next_attempt_at=None,
            lease_expires_at=None,
        )
    )
)
#: A success ends a dashboard's failing streak (the condition keeps it from writing every time).
_CLEAR_FAILING = ListStatement(
    lambda _tx, agencies: (
        update(_REGISTRATIONS)
        .where(_REGISTRATIONS.c.agency_id.in_(agencies), _REGISTRATIONS.c.webhooks_failing_since.is_not(None))
        .values(webhooks_failing_since=None, updated_at=_NOW)
    )
)


class Dispatcher:
    """Delivers the outbox. `start()` runs it in the background; `run_once()` is one cycle.

    Attempts run on a pool of threads over keep-alive connections. One thread runs the cycles:
    each records the attempts that finished since the last one and claims the rows their shares
    free, in one transaction. A claimed row counts against its dashboard's share until its
    outcome is committed, so no more rows than the limits allow are ever leased, and a crash
    redelivers at most that many.
    """

    def __init__(
        self,
        database: Database,
        targets: Callable[[str], DeliveryTarget | None],
        signer: EngineSigner,
        config: DispatcherConfig,
        *,
        on_status_change: Callable[[str], None] = lambda _agency: None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._db = database
        self._targets = targets
        self._signer = signer
        self._config = config
        #: Called with an agency whose registration status the dispatcher changed (cache eviction).
        self._on_status_change = on_status_change
        self._clock = clock
        self._rng = random.Random()  # noqa: S311 (retry jitter, not cryptography)
        self._connections = ConnectionPool(
            config.timeout_seconds, max_idle_per_destination=config.concurrency
        )
        #: URL -> its checked destination (or why it is refused): DNS is not asked on every delivery.
        self._destinations: TtlCache[str, Destination | TargetRefused] = TtlCache(DESTINATION_CACHE_SECONDS)
        self._pool = ThreadPoolExecutor(max_workers=config.concurrency, thread_name_prefix="delivery")
        #: Attempts submitted and not over yet.
        self._attempts: set[Future[None]] = set()
        #: Claimed rows per agency whose outcome is not committed yet.
        self._in_flight: Counter[str] = Counter()
        #: Attempts over, waiting for the next cycle to record them.
        self._finished: list[tuple[_Claimed, _Outcome]] = []
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
        """Stop claiming and drop queued attempts; record the attempts in flight that finish
        within `timeout`. A row whose attempt is not recorded is claimed again when its lease
        runs out."""
        deadline = time.monotonic() + timeout
        self._stopping.set()
        self._wakeup.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            attempts = list(self._attempts)
        futures_wait(attempts, timeout=max(0.0, deadline - time.monotonic()))
        with self._lock:
            finished, self._finished = self._finished, []
        if finished and not (self._thread is not None and self._thread.is_alive()):
            self._notify(self._record_all(finished))
        self._connections.close()

    def wake(self) -> None:
        """Look for due rows now rather than at the next poll."""
        self._wakeup.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            # Cleared before claiming: a row committed during the claim wakes the next one.
            self._wakeup.clear()
            try:
                self.run_once()
            except Exception:
                log.exception("claiming deliveries failed")
            # One claim takes every due row the limits allow; the next is due when a row is
            # committed, an attempt finishes, or (retries, expired leases) at the poll.
            self._wakeup.wait(self._config.poll_seconds)

    def run_once(self) -> int:
        """Record the attempts that finished, hold what must wait, claim due rows within the
        concurrency limits and start delivering them; return how many were claimed.

        Recording and claiming share a transaction: under load that halves the write
        transactions, which on SQLite wait in turn with the ingress's.
        """
        with self._lock:
            finished, self._finished = self._finished, []
            taken = Counter(self._in_flight)
        # The shares of the finished attempts are free once their outcomes commit with this claim.
        taken.subtract(job.agency_id for job, _ in finished)
        taken = +taken
        free = self._config.concurrency - sum(taken.values())
        claimed: list[_Claimed] = []
        try:
            with self._db.transaction() as tx:
                disabled = self._record(tx, finished) if finished else set()
                if free > 0:
                    claimed = self._claim(tx, free, taken)
        except Exception:
            if not finished:
                raise
            disabled = self._record_each(finished)
            self._wakeup.set()  # and claim in the next cycle
        finally:
            # Recorded or not, the finished attempts are over: an unrecorded row is attempted
            # again when its lease runs out.
            self._release([job for job, _ in finished])
        self._notify(disabled)
        self._start_attempts(claimed)
        return len(claimed)

    def _start_attempts(self, claimed: list[_Claimed]) -> None:
        with self._lock:
            self._in_flight.update(job.agency_id for job in claimed)
        for job in claimed:
            attempt = self._pool.submit(self._attempt_and_finish, job)
            with self._lock:
                self._attempts.add(attempt)
            attempt.add_done_callback(self._attempt_over)

    def _attempt_over(self, attempt: Future[None]) -> None:
        with self._lock:
            self._attempts.discard(attempt)

    # -- claiming --------------------------------------------------------------------------------

    def _claim(self, tx: Session, free: int, taken: Counter[str]) -> list[_Claimed]:
        """Lease up to `free` due rows in `tx`, at most the per-dashboard share minus `taken` of each.

        Due rows of a suspended dashboard, or one whose webhooks are disabled, are set to wait
        as HELD on the way: the status is read with each row, so one committed while a
        dashboard is being suspended is held too.
        """
        now = self._clock()
        cap = self._config.concurrency_per_dashboard
        chosen: list[_Claimed] = []
        chosen_ids: set[str] = set()
        while True:
            # Dashboards at their share are left out in the query itself: otherwise a slow
            # dashboard's backlog, being the oldest, would fill every page and starve the others.
            at_cap = [agency for agency, count in taken.items() if count >= cap]
            due = _SELECT_DUE.execute(tx, at_cap, {"now": now, "limit": free * 4}).fetchall()
            held = [row[0] for row in due if row[-1] != STATUS_ACTIVE]
            if held:
                tx.execute(
                    update(_DELIVERIES)
                    .where(_DELIVERIES.c.delivery_id.in_(held), _DELIVERIES.c.status == PENDING)
                    .values(status=HELD, next_attempt_at=None)
                )
            for *columns, status in due:
                if len(chosen) == free:
                    break
                job = _Claimed(*columns)
                # A second page shows this page's rows again (they are leased at the end).
                if (
                    status == STATUS_ACTIVE
                    and taken[job.agency_id] < cap
                    and job.delivery_id not in chosen_ids
                ):
                    taken[job.agency_id] += 1
                    chosen_ids.add(job.delivery_id)
                    chosen.append(job)
            # A full page may have hidden other dashboards' rows behind held ones or behind a
            # dashboard that reached its share.
            if len(chosen) == free or len(due) < free * 4 or not (held or self._reached_cap(taken, at_cap)):
                break
        if chosen:
            leased = _LEASE.execute(tx, list(chosen_ids), {"now": now, "until": now + self._lease}).fetchall()
            leased_ids = {row[0] for row in leased}
            chosen = [job for job in chosen if job.delivery_id in leased_ids]
        return chosen

    def _reached_cap(self, taken: Counter[str], at_cap: list[str]) -> bool:
        """Whether a dashboard not in `at_cap` has reached its share."""
        cap = self._config.concurrency_per_dashboard
        return any(count >= cap and agency not in at_cap for agency, count in taken.items())

    # -- delivering ------------------------------------------------------------------------------

    def _attempt_and_finish(self, job: _Claimed) -> None:
        try:
            outcome = self._attempt(job)
        except Exception:
            # Not recorded: the row is attempted again when its lease runs out.
            log.exception("delivery failed unexpectedly", extra={"delivery_id": job.delivery_id})
            self._release([job])
            return
        with self._lock:
            self._finished.append((job, outcome))
        self._wakeup.set()  # the next cycle records it and claims a row in its place

    def deliver(self, delivery_id: str) -> None:
        """Make one attempt of a delivery already claimed by the caller, and record its outcome."""
        with self._db.reader() as tx:
            row = tx.execute(_SELECT_CLAIMABLE.where(_DELIVERIES.c.delivery_id == delivery_id)).one_or_none()
        if row is None:
            return
        *columns, status = row
        job = _Claimed(*columns)
        if status != STATUS_ACTIVE:
            self._hold(delivery_id)
            return
        outcome = self._attempt(job)
        with self._db.transaction() as tx:
            disabled = self._record(tx, [(job, outcome)])
        self._notify(disabled)

    def _hold(self, delivery_id: str) -> None:
        """Park a delivery of a suspended or disabled dashboard until it is activated."""
        with self._db.transaction() as tx:
            tx.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.delivery_id == delivery_id, WebhookDelivery.status == PENDING)
                .values(status=HELD, next_attempt_at=None, lease_expires_at=None)
            )

    def _attempt(self, job: _Claimed) -> _Outcome:
        """POST the delivery to its dashboard, signed; the outcome (an error when there is no answer)."""
        target = self._targets(job.agency_id)
        if target is None:
            return _Outcome(error="the dashboard is not registered")
        destination = self._destinations.get(target.url, self._check)
        if isinstance(destination, TargetRefused):
            return _Outcome(error=str(destination))
        body = job.payload.encode("utf-8")
        sent_at = int(time.time())
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": job.event_id,
            "webhook-timestamp": str(sent_at),
            "webhook-signature": signature_header(target.secrets, self._signer, job.event_id, sent_at, body),
        }
        started = time.perf_counter()
        try:
            answer = self._connections.post(destination, body, headers)
        except TimeoutError:
            return _Outcome(error="timed out", duration_ms=_ms_since(started))
        except (OSError, http.client.HTTPException) as error:
            return _Outcome(error=f"request failed: {type(error).__name__}", duration_ms=_ms_since(started))
        retry_after = retry_after_seconds(answer.retry_after)
        return _Outcome(answer.status, answer.excerpt, "", retry_after, _ms_since(started))

    def _check(self, url: str) -> Destination | TargetRefused:
        try:
            return check_destination(url, self._config.allow_private_webhook_urls)
        except TargetRefused as refused:
            return refused

    # -- recording -------------------------------------------------------------------------------

    def _record_all(self, finished: list[tuple[_Claimed, _Outcome]]) -> set[str]:
        """Record the outcomes in one transaction, or each alone if that fails; return the
        agencies whose webhooks this disabled."""
        try:
            with self._db.transaction() as tx:
                return self._record(tx, finished)
        except Exception:
            return self._record_each(finished)

    def _record_each(self, finished: list[tuple[_Claimed, _Outcome]]) -> set[str]:
        """After a batch failed (called while handling its error): record each outcome in its own
        transaction; return the agencies whose webhooks this disabled."""
        log.warning("recording a batch of deliveries failed, recording each alone", exc_info=True)
        disabled: set[str] = set()
        for job, outcome in finished:
            try:
                with self._db.transaction() as tx:
                    disabled |= self._record(tx, [(job, outcome)])
            except Exception:
                # Not recorded: the row is attempted again when its lease runs out.
                log.exception("recording a delivery failed", extra={"delivery_id": job.delivery_id})
        return disabled

    def _record(self, tx: Session, batch: list[tuple[_Claimed, _Outcome]]) -> set[str]:
        """Store the attempts in `tx` and decide what comes next for each: done, retry, dead
        letter or held.

        Returns the agencies whose webhooks this disabled. Successes, nearly all of them, take
        three statements for the whole batch; a failure goes through the full rules one by one.
        """
        now = self._clock()
        succeeded = [job for job, outcome in batch if outcome.succeeded]
        _INSERT_ATTEMPT.execute_many(tx, [_attempt_row(job, outcome, now) for job, outcome in batch])
        if succeeded:
            _MARK_SUCCEEDED.execute(tx, [job.delivery_id for job in succeeded], {"now": now})
            _CLEAR_FAILING.execute(tx, sorted({job.agency_id for job in succeeded}), {"now": now})
        return {
            job.agency_id
            for job, outcome in batch
            if not outcome.succeeded and self._record_failure(tx, job, outcome, now)
        }

    def _record_failure(self, tx: Session, job: _Claimed, outcome: _Outcome, now: datetime) -> bool:
        """Schedule what follows a failed attempt; True if it disabled the dashboard's webhooks."""
        delivery = tx.get(WebhookDelivery, job.delivery_id, with_for_update=True)
        if delivery is None:
            return False
        registration = tx.get(DashboardRegistration, delivery.agency_id, with_for_update=True)
        delivery.attempt_count += 1
        delivery.last_attempt_at = now
        delivery.lease_expires_at = None
        return self._schedule(tx, delivery, registration, outcome, now)

    def _notify(self, disabled: set[str]) -> None:
        """After the commit: the registry's cache must not keep showing these dashboards active."""
        for agency_id in disabled:
            self._on_status_change(agency_id)

    def _release(self, jobs: list[_Claimed]) -> None:
        """Give the jobs' shares back to their dashboards."""
        with self._lock:
            self._in_flight.subtract(job.agency_id for job in jobs)
            for agency_id in {job.agency_id for job in jobs}:
                if self._in_flight[agency_id] <= 0:
                    del self._in_flight[agency_id]

    def _schedule(
        self,
        tx: Session,
        delivery: WebhookDelivery,
        registration: DashboardRegistration | None,
        outcome: _Outcome,
        now: datetime,
    ) -> bool:
        """Set the next state after a failed attempt; True if it disabled the dashboard's webhooks."""
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


def _attempt_row(job: _Claimed, outcome: _Outcome, now: datetime) -> dict[str, Any]:
    """The delivery_attempts row of one outcome."""
    return {
        "delivery_id": job.delivery_id,
        "attempt_number": job.attempt_count + 1,
        "attempted_at": now,
        "response_status": outcome.status,
        "response_excerpt": outcome.excerpt,
        "duration_ms": outcome.duration_ms,
        "error": outcome.error[:500],
    }


def _ms_since(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
