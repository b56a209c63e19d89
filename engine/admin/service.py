"""What the engine admins see and do: every dashboard with its health, every session, system health.

Reads aggregate across the domains' tables; writes go through the domain services
(registry for status and limits, deliveries for releasing and recovering webhooks).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine import __version__
from engine.errors import NotFound, invalid
from engine.pagination import encode_token, page_size, token_position
from engine.registry.models import ApiKey, DashboardRegistration, DashboardStatusChange
from engine.registry.service import DashboardView, RegistryService, registration_view
from engine.sessions.models import SessionBinding
from engine.sessions.providers import Provider
from engine.sessions.service import SessionService
from engine.sessions.views import SessionView
from engine.store.base import utcnow
from engine.store.database import Database
from engine.webhooks.deliveries import DELIVERY_STATUSES, DeliveryService, DeliveryView
from engine.webhooks.models import (
    FAILED,
    HELD,
    PENDING,
    DeliveryAttempt,
    UnroutableProviderEvent,
    WebhookDelivery,
)

ADMIN_ACTOR = "admin"
_DAY = timedelta(hours=24)
_HEALTH_WINDOW = timedelta(minutes=5)


@dataclass(frozen=True)
class DashboardSummary:
    """A dashboard with the health figures of the admin list."""

    config: DashboardView
    session_counts: Mapping[str, int]
    deliveries_24h: Mapping[str, int]
    last_success: datetime | None


@dataclass(frozen=True)
class KeyInfo:
    """One API key, by its visible prefix only."""

    prefix: str
    created_at: datetime
    expires_at: datetime | None


@dataclass(frozen=True)
class StatusChangeView:
    """One recorded suspension, activation or disabling."""

    status: str
    actor: str
    reason: str
    changed_at: datetime


@dataclass(frozen=True)
class DashboardDetail:
    """A dashboard in full, for the admin detail page."""

    summary: DashboardSummary
    keys: tuple[KeyInfo, ...]
    history: tuple[StatusChangeView, ...]


@dataclass(frozen=True)
class SystemHealth:
    """The figures of GetSystemHealth."""

    database_ok: bool
    database_latency_ms: float
    uptime_seconds: int
    version: str
    backlog: Mapping[str, int]
    delivery_attempts_5m: int
    delivery_success_rate_5m: float
    delivery_p95_latency_ms_5m: float
    rate_limit_rejections: int
    auth_failures: int
    unroutable_provider_events: int
    provider_status: Mapping[str, str] = field(default_factory=dict)


class AdminService:
    """Admin reads across every agency, and admin actions through the domain services."""

    def __init__(
        self,
        database: Database,
        registry: RegistryService,
        sessions: SessionService,
        deliveries: DeliveryService,
        providers: Mapping[str, Provider],
        guard_counters: Callable[[], tuple[int, int]],
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._db = database
        self._registry = registry
        self._sessions = sessions
        self._deliveries = deliveries
        self._providers = providers
        #: (auth failures, rate-limit rejections) since start.
        self._guard_counters = guard_counters
        self._clock = clock
        self._started = time.monotonic()

    # -- dashboards ------------------------------------------------------------------------------

    def list_dashboards(
        self, status: str, query: str, requested_page_size: int, page_token: str
    ) -> tuple[list[DashboardSummary], str]:
        """Dashboards by agencyId, filtered by status and a case-insensitive search."""
        limit = page_size(requested_page_size)
        statement = select(DashboardRegistration).order_by(DashboardRegistration.agency_id)
        if status:
            statement = statement.where(DashboardRegistration.status == status)
        if query:
            statement = statement.where(
                DashboardRegistration.search_text.contains(query.casefold(), autoescape=True)
            )
        position = token_position(page_token, "after")
        if position is not None:
            statement = statement.where(DashboardRegistration.agency_id > position)
        with self._db.reader() as tx:
            rows = list(tx.scalars(statement.limit(limit + 1)))
            page = rows[:limit]
            summaries = self._summaries(tx, [registration_view(row) for row in page])
        next_token = encode_token({"after": rows[limit - 1].agency_id}) if len(rows) > limit else ""
        return summaries, next_token

    def get_dashboard(self, agency_id: str) -> DashboardDetail:
        """One dashboard with its keys (prefixes only) and status history."""
        _require_agency_id(agency_id)
        with self._db.reader() as tx:
            registration = tx.get(DashboardRegistration, agency_id)
            if registration is None:
                raise NotFound(f"agency {agency_id!r} is not registered")
            (summary,) = self._summaries(tx, [registration_view(registration)])
            keys = tx.scalars(select(ApiKey).where(ApiKey.agency_id == agency_id).order_by(ApiKey.created_at))
            history = tx.scalars(
                select(DashboardStatusChange)
                .where(DashboardStatusChange.agency_id == agency_id)
                .order_by(DashboardStatusChange.changed_at.desc(), DashboardStatusChange.id.desc())
                .limit(50)
            )
            return DashboardDetail(
                summary,
                tuple(KeyInfo(k.prefix, k.created_at, k.expires_at) for k in keys),
                tuple(StatusChangeView(h.status, h.actor, h.reason, h.changed_at) for h in history),
            )

    def _summaries(self, tx: Session, configs: list[DashboardView]) -> list[DashboardSummary]:
        agencies = [c.agency_id for c in configs]
        if not agencies:
            return []
        sessions: dict[str, dict[str, int]] = {a: {} for a in agencies}
        for agency, status, count in tx.execute(
            select(SessionBinding.agency_id, SessionBinding.status, func.count())
            .where(SessionBinding.agency_id.in_(agencies), SessionBinding.deleted_at.is_(None))
            .group_by(SessionBinding.agency_id, SessionBinding.status)
        ):
            sessions[agency][status] = count
        deliveries: dict[str, dict[str, int]] = {a: {} for a in agencies}
        since = self._clock() - _DAY
        for agency, status, count in tx.execute(
            select(WebhookDelivery.agency_id, WebhookDelivery.status, func.count())
            .where(WebhookDelivery.agency_id.in_(agencies), WebhookDelivery.created_at >= since)
            .group_by(WebhookDelivery.agency_id, WebhookDelivery.status)
        ):
            deliveries[agency][status] = count
        last_success = dict(
            tx.execute(
                select(WebhookDelivery.agency_id, func.max(WebhookDelivery.succeeded_at))
                .where(WebhookDelivery.agency_id.in_(agencies))
                .group_by(WebhookDelivery.agency_id)
            ).all()
        )
        return [
            DashboardSummary(c, sessions[c.agency_id], deliveries[c.agency_id], last_success.get(c.agency_id))
            for c in configs
        ]

    def suspend(self, agency_id: str, reason: str) -> DashboardDetail:
        """Suspend a dashboard (API refused, webhooks held) and record why."""
        self._registry.suspend(agency_id, reason, ADMIN_ACTOR)
        return self.get_dashboard(agency_id)

    def activate(self, agency_id: str) -> DashboardDetail:
        """Reactivate a dashboard; its held webhooks go out."""
        self._registry.activate(agency_id, ADMIN_ACTOR)
        self._deliveries.release_held(agency_id)
        return self.get_dashboard(agency_id)

    def set_rate_limit(self, agency_id: str, rps: float, burst: int) -> DashboardDetail:
        """Set a dashboard's own rate limit; zeros restore the engine's default."""
        self._registry.set_rate_limit(agency_id, rps or None, burst or None)
        return self.get_dashboard(agency_id)

    # -- sessions and deliveries across agencies -------------------------------------------------

    def list_sessions(
        self,
        agency_id: str,
        tenant_id: str,
        status: str,
        provider: str,
        requested_page_size: int,
        page_token: str,
    ) -> tuple[list[SessionView], str]:
        """Live sessions of every agency (or one), newest first, filtered."""
        if agency_id:
            with self._db.reader() as tx:
                if tx.get(DashboardRegistration, agency_id) is None:
                    raise NotFound(f"agency {agency_id!r} is not registered")
        return self._sessions.list_sessions(
            agency_id or None, tenant_id, status, requested_page_size, page_token, provider
        )

    def list_dashboard_sessions(
        self, agency_id: str, tenant_id: str, status: str, requested_page_size: int, page_token: str
    ) -> tuple[list[SessionView], str]:
        """One dashboard's live sessions (the agency is required)."""
        _require_agency_id(agency_id)
        return self.list_sessions(agency_id, tenant_id, status, "", requested_page_size, page_token)

    def list_deliveries(
        self, agency_id: str, status: str, event_type: str, requested_page_size: int, page_token: str
    ) -> tuple[list[DeliveryView], str]:
        """Deliveries of every agency (or one), newest first."""
        if status and status not in DELIVERY_STATUSES:
            raise invalid("status", "is not a delivery status")
        return self._deliveries.list_deliveries(
            agency_id or None, status, event_type, requested_page_size, page_token
        )

    def recover_failed(self, agency_id: str, since: datetime | None) -> int:
        """Queue a dashboard's FAILED deliveries (created since `since`) once more."""
        _require_agency_id(agency_id)
        return self._deliveries.recover_failed(agency_id, since)

    # -- health ----------------------------------------------------------------------------------

    def system_health(self) -> SystemHealth:
        """Database, backlog, delivery success and latency, rejections, unroutable events, providers."""
        try:
            latency = self._db.ping()
            database_ok = True
        except Exception:
            latency, database_ok = 0.0, False
        backlog = {"due": 0, "retrying": 0, "held": 0, "failed": 0}
        attempts, success_rate, p95 = 0, 1.0, 0.0
        unroutable = 0
        if database_ok:
            backlog, attempts, success_rate, p95, unroutable = self._delivery_figures()
        auth_failures, rejections = self._guard_counters()
        return SystemHealth(
            database_ok=database_ok,
            database_latency_ms=round(latency, 3),
            uptime_seconds=int(time.monotonic() - self._started),
            version=__version__,
            backlog=backlog,
            delivery_attempts_5m=attempts,
            delivery_success_rate_5m=success_rate,
            delivery_p95_latency_ms_5m=p95,
            rate_limit_rejections=rejections,
            auth_failures=auth_failures,
            unroutable_provider_events=unroutable,
            provider_status={name: _provider_status(p) for name, p in self._providers.items()},
        )

    def _delivery_figures(self) -> tuple[dict[str, int], int, float, float, int]:
        now = self._clock()
        with self._db.reader() as tx:
            counts = {
                "due": tx.scalar(
                    select(func.count())
                    .select_from(WebhookDelivery)
                    .where(WebhookDelivery.status == PENDING, WebhookDelivery.next_attempt_at <= now)
                ),
                "retrying": tx.scalar(
                    select(func.count())
                    .select_from(WebhookDelivery)
                    .where(
                        WebhookDelivery.status == PENDING,
                        WebhookDelivery.next_attempt_at > now,
                        WebhookDelivery.attempt_count > 0,
                    )
                ),
                "held": tx.scalar(
                    select(func.count()).select_from(WebhookDelivery).where(WebhookDelivery.status == HELD)
                ),
                "failed": tx.scalar(
                    select(func.count()).select_from(WebhookDelivery).where(WebhookDelivery.status == FAILED)
                ),
            }
            recent = tx.execute(
                select(DeliveryAttempt.response_status, DeliveryAttempt.duration_ms).where(
                    DeliveryAttempt.attempted_at >= now - _HEALTH_WINDOW
                )
            ).all()
            unroutable = tx.scalar(select(func.count()).select_from(UnroutableProviderEvent)) or 0
        succeeded = sum(1 for status, _ in recent if 200 <= status < 300)
        rate = succeeded / len(recent) if recent else 1.0
        durations = sorted(duration for _, duration in recent)
        p95 = float(durations[max(0, math.ceil(0.95 * len(durations)) - 1)]) if durations else 0.0
        return {k: int(v or 0) for k, v in counts.items()}, len(recent), rate, p95, int(unroutable)


def _require_agency_id(agency_id: str) -> None:
    if not agency_id:
        raise invalid("agencyId", "is required")


def _provider_status(provider: Provider) -> str:
    try:
        provider.check()
    except Exception as error:  # any failure is a status to show, not an error to raise
        return str(error) or type(error).__name__
    return "ok"
