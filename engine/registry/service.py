"""Business rules of the dashboard registry. No gRPC or HTTP types here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.auth.credentials import NewApiKey, generate_api_key, hash_api_key
from engine.auth.guard import ResolvedKey
from engine.auth.identity import CallerKind, Identity
from engine.cache import TtlCache
from engine.crypto import SecretCipher
from engine.errors import AlreadyExists, FailedPrecondition, NotFound, invalid
from engine.pagination import encode_token, page_size, token_position
from engine.registry.models import (
    STATUS_ACTIVE,
    STATUS_SUSPENDED,
    ApiKey,
    DashboardRegistration,
    DashboardStatusChange,
)
from engine.store.base import utcnow
from engine.store.database import Database
from engine.validation import (
    Violations,
    agency_id_problem,
    text_problem,
    url_problem,
    webhook_secret_problem,
)
from engine.webhooks.targets import DeliveryTarget, url_destination_problem

DEFAULT_GRACE_PERIOD = timedelta(days=1)
#: After a webhook secret change, deliveries carry signatures under the old and the new one this long.
SECRET_OVERLAP = timedelta(hours=24)
MAX_REASON = 500
MAX_RATE_LIMIT_RPS = 100_000.0
MAX_RATE_LIMIT_BURST = 1_000_000
MAX_GRACE_PERIOD = timedelta(days=7)
MAX_DASHBOARD_NAME = 200
#: Registrations and API keys are read on every call, so they are cached in-process for at
#: most this long. Writes through this service update the cache at once; other processes
#: (replicas on the same PostgreSQL) see a change within this time.
CACHE_SECONDS = 2.0

_REGISTRATION_COLUMNS = DashboardRegistration.__table__.c
# Config reads sit on the hot path: a Core statement skips ORM identity-map work.
_SELECT_REGISTRATION = select(
    *(column for column in _REGISTRATION_COLUMNS if not column.name.endswith("secret_ciphertext"))
).where(_REGISTRATION_COLUMNS.agency_id == bindparam("agency_id"))
_SELECT_TARGET = select(
    _REGISTRATION_COLUMNS.dashboard_url,
    _REGISTRATION_COLUMNS.status,
    _REGISTRATION_COLUMNS.webhook_secret_ciphertext,
    _REGISTRATION_COLUMNS.previous_webhook_secret_ciphertext,
    _REGISTRATION_COLUMNS.previous_webhook_secret_expires_at,
).where(_REGISTRATION_COLUMNS.agency_id == bindparam("agency_id"))


@dataclass(frozen=True)
class DashboardView:
    """A dashboard's configuration as callers may see it (never the secret)."""

    agency_id: str
    dashboard_name: str
    dashboard_url: str
    webhook_secret_set: bool
    webhook_secret_hint: str
    status: str
    created_at: datetime
    updated_at: datetime
    rate_limit_rps: float | None
    rate_limit_burst: int | None


@dataclass(frozen=True)
class _StoredTarget:
    """A dashboard's delivery target as stored, decrypted: signed with the previous secret too until
    that one's overlap ends."""

    current: DeliveryTarget
    overlapping: DeliveryTarget | None = None
    previous_expires_at: datetime | None = None

    def at(self, now: datetime) -> DeliveryTarget:
        """The target as it applies at `now`."""
        if (
            self.overlapping is not None
            and self.previous_expires_at is not None
            and now < self.previous_expires_at
        ):
            return self.overlapping
        return self.current


@dataclass(frozen=True)
class KeyRecord:
    """What one API key (found by its hash) proves, and until when."""

    resolved: ResolvedKey
    expires_at: datetime | None


@dataclass(frozen=True)
class Registration:
    """Result of registering: the API key is in plaintext here and nowhere else."""

    agency_id: str
    api_key: str


@dataclass(frozen=True)
class Rotation:
    """Result of rotating a key."""

    agency_id: str
    api_key: str
    previous_key_expires_at: datetime


@dataclass(frozen=True)
class ConfigChanges:
    """Fields to change; None means "leave as is"."""

    dashboard_name: str | None = None
    dashboard_url: str | None = None
    webhook_secret: str | None = None


class RegistryService:
    """Registers dashboards, manages their configuration and API keys, resolves keys."""

    def __init__(
        self,
        database: Database,
        cipher: SecretCipher,
        clock: Callable[[], datetime] = utcnow,
        *,
        allow_private_webhook_urls: bool = False,
    ) -> None:
        self._db = database
        self._cipher = cipher
        self._clock = clock
        self._allow_private_urls = allow_private_webhook_urls
        self._registrations: TtlCache[str, DashboardView | None] = TtlCache(CACHE_SECONDS)
        self._keys: TtlCache[str, KeyRecord | None] = TtlCache(CACHE_SECONDS)
        self._targets: TtlCache[str, _StoredTarget | None] = TtlCache(CACHE_SECONDS)

    # -- registration and configuration -------------------------------------------------

    def register(self, agency_id: str, name: str, url: str, webhook_secret: str) -> Registration:
        """Register a new dashboard; raise AlreadyExists if the agencyId is taken."""
        violations = Violations()
        violations.check("agencyId", agency_id_problem(agency_id))
        violations.check("dashboardName", text_problem(name, MAX_DASHBOARD_NAME))
        violations.check("dashboardUrl", self._dashboard_url_problem(url))
        violations.check("webhookSecret", webhook_secret_problem(webhook_secret))
        violations.raise_if_any()
        key = generate_api_key()
        now = self._clock()
        try:
            with self._db.transaction() as session:
                if session.get(DashboardRegistration, agency_id) is not None:
                    raise _already_registered(agency_id)
                session.add(
                    DashboardRegistration(
                        agency_id=agency_id,
                        dashboard_name=name,
                        dashboard_url=url,
                        webhook_secret_ciphertext=self._cipher.seal(webhook_secret),
                        webhook_secret_hint=webhook_secret[-4:],
                        created_at=now,
                        updated_at=now,
                    )
                )
                session.flush()
                session.add(_stored_key(key, agency_id, now))
        except IntegrityError:
            # Lost a race with a concurrent registration of the same agencyId.
            raise _already_registered(agency_id) from None
        self.forget(agency_id)
        return Registration(agency_id=agency_id, api_key=key.plaintext)

    def get_config(self, agency_id: str) -> DashboardView:
        """The configuration of `agency_id`; NotFound if it is not registered."""
        _require_agency_id(agency_id)
        view = self._registrations.get(agency_id, self._load_view)
        if view is None:
            raise _not_registered(agency_id)
        return view

    def _load_view(self, agency_id: str) -> DashboardView | None:
        with self._db.engine.connect() as connection:
            row = connection.execute(_SELECT_REGISTRATION, {"agency_id": agency_id}).one_or_none()
        return None if row is None else registration_view(row)

    def update_config(self, agency_id: str, changes: ConfigChanges) -> DashboardView:
        """Apply only the given changes (PATCH semantics) and return the new configuration."""
        _require_agency_id(agency_id)
        violations = Violations()
        if changes.dashboard_name is not None:
            violations.check("dashboardName", text_problem(changes.dashboard_name, MAX_DASHBOARD_NAME))
        if changes.dashboard_url is not None:
            violations.check("dashboardUrl", self._dashboard_url_problem(changes.dashboard_url))
        if changes.webhook_secret is not None:
            violations.check("webhookSecret", webhook_secret_problem(changes.webhook_secret))
        violations.raise_if_any()
        with self._db.transaction() as session:
            registration = _get_registration(session, agency_id, for_update=True)
            if changes.dashboard_name is not None:
                registration.dashboard_name = changes.dashboard_name
            if changes.dashboard_url is not None:
                registration.dashboard_url = changes.dashboard_url
            if changes.webhook_secret is not None:
                # Deliveries are signed with both secrets for a while, so the dashboard can switch over.
                registration.previous_webhook_secret_ciphertext = registration.webhook_secret_ciphertext
                registration.previous_webhook_secret_expires_at = self._clock() + SECRET_OVERLAP
                registration.webhook_secret_ciphertext = self._cipher.seal(changes.webhook_secret)
                registration.webhook_secret_hint = changes.webhook_secret[-4:]
            registration.updated_at = self._clock()
            session.flush()
            view = registration_view(registration)
        self.forget(agency_id)
        self._registrations.put(agency_id, view)
        return view

    def _dashboard_url_problem(self, url: str) -> str | None:
        """A well-formed http(s) URL that does not point into the engine's own network."""
        return url_problem(url) or url_destination_problem(url, self._allow_private_urls)

    def list_agencies(self, requested_page_size: int, page_token: str) -> tuple[list[DashboardView], str]:
        """One page of registered agencies ordered by agencyId, and the next page's token."""
        limit = page_size(requested_page_size)
        position = token_position(page_token, "after")
        query = select(DashboardRegistration).order_by(DashboardRegistration.agency_id).limit(limit + 1)
        if position is not None:
            query = query.where(DashboardRegistration.agency_id > position)
        with self._db.reader() as session:
            rows = list(session.scalars(query))
        next_token = encode_token({"after": rows[limit - 1].agency_id}) if len(rows) > limit else ""
        return [registration_view(row) for row in rows[:limit]], next_token

    # -- status and limits (engine admins) ------------------------------------------------

    def suspend(self, agency_id: str, reason: str, actor: str) -> DashboardView:
        """Suspend a dashboard: its API key calls are refused and its webhooks held from now on."""
        _require_agency_id(agency_id)
        problem = text_problem(reason, MAX_REASON) if reason else None
        if problem:
            raise invalid("reason", problem)
        return self._change_status(agency_id, STATUS_SUSPENDED, reason, actor)

    def activate(self, agency_id: str, actor: str) -> DashboardView:
        """Lift a suspension or re-enable disabled webhooks."""
        _require_agency_id(agency_id)
        return self._change_status(agency_id, STATUS_ACTIVE, "", actor)

    def _change_status(self, agency_id: str, status: str, reason: str, actor: str) -> DashboardView:
        now = self._clock()
        with self._db.transaction() as session:
            registration = _get_registration(session, agency_id, for_update=True)
            if registration.status == status:
                raise FailedPrecondition(f"the dashboard is already {status}")
            registration.status = status
            registration.status_reason = reason
            registration.updated_at = now
            if status == STATUS_ACTIVE:
                registration.webhooks_failing_since = None
            session.add(
                DashboardStatusChange(
                    agency_id=agency_id, status=status, actor=actor, reason=reason, changed_at=now
                )
            )
            session.flush()
            view = registration_view(registration)
        self.forget(agency_id)
        return view

    def set_rate_limit(self, agency_id: str, rps: float | None, burst: int | None) -> DashboardView:
        """Give a dashboard its own token bucket (None: the engine's default)."""
        _require_agency_id(agency_id)
        violations = Violations()
        if rps is not None and not (0 < rps <= MAX_RATE_LIMIT_RPS):
            violations.check("rateLimit.requestsPerSecond", f"must be between 0 and {MAX_RATE_LIMIT_RPS}")
        if burst is not None and not (0 < burst <= MAX_RATE_LIMIT_BURST):
            violations.check("rateLimit.burst", f"must be between 0 and {MAX_RATE_LIMIT_BURST}")
        violations.raise_if_any()
        with self._db.transaction() as session:
            registration = _get_registration(session, agency_id, for_update=True)
            registration.rate_limit_rps = rps
            registration.rate_limit_burst = burst
            registration.updated_at = self._clock()
            session.flush()
            view = registration_view(registration)
        self.forget(agency_id)
        return view

    def delivery_target(self, agency_id: str) -> DeliveryTarget | None:
        """Where `agency_id`'s webhooks go and the secrets to sign them with (None if not registered).

        Read for every delivery, so cached like registrations: writes through this service
        forget it at once, and a previous secret is dropped when its overlap ends.
        """
        stored = self._targets.get(agency_id, self._load_target)
        return None if stored is None else stored.at(self._clock())

    def _load_target(self, agency_id: str) -> _StoredTarget | None:
        with self._db.engine.connect() as connection:
            row = connection.execute(_SELECT_TARGET, {"agency_id": agency_id}).one_or_none()
        if row is None:
            return None
        secret = self._cipher.open(row.webhook_secret_ciphertext)
        current = DeliveryTarget(row.dashboard_url, (secret,), active=row.status == STATUS_ACTIVE)
        expires = row.previous_webhook_secret_expires_at
        if not row.previous_webhook_secret_ciphertext or expires is None:
            return _StoredTarget(current)
        previous = self._cipher.open(row.previous_webhook_secret_ciphertext)
        return _StoredTarget(current, replace(current, secrets=(secret, previous)), expires)

    # -- API keys ------------------------------------------------------------------------

    def rotate_api_key(self, agency_id: str, grace_period_seconds: int | None) -> Rotation:
        """Issue a new key; keys issued before it stop working after the grace period."""
        _require_agency_id(agency_id)
        grace = (
            DEFAULT_GRACE_PERIOD if grace_period_seconds is None else timedelta(seconds=grace_period_seconds)
        )
        if grace < timedelta(0) or grace > MAX_GRACE_PERIOD:
            raise invalid(
                "gracePeriodSeconds", f"must be between 0 and {int(MAX_GRACE_PERIOD.total_seconds())}"
            )
        key = generate_api_key()
        now = self._clock()
        expires_at = now + grace
        with self._db.transaction() as session:
            _get_registration(session, agency_id, for_update=True)
            session.execute(
                update(ApiKey)
                .where(ApiKey.agency_id == agency_id)
                .where(or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > expires_at))
                .values(expires_at=expires_at)
            )
            session.add(_stored_key(key, agency_id, now))
        self.forget(agency_id)  # the agency's older keys now carry an expiry
        return Rotation(agency_id=agency_id, api_key=key.plaintext, previous_key_expires_at=expires_at)

    def resolve_api_key(self, plaintext: str) -> ResolvedKey | None:
        """What a dashboard API key proves, or None if it is unknown or expired."""
        record = self._keys.get(hash_api_key(plaintext), self._load_key)
        if record is None or (record.expires_at is not None and record.expires_at <= self._clock()):
            return None
        return record.resolved

    def forget(self, agency_id: str) -> None:
        """Drop what is cached about `agency_id` after a write (keys embed its status and limits)."""
        self._registrations.discard(agency_id)
        self._targets.discard(agency_id)
        self._keys.clear()

    def invalidate_cache(self) -> None:
        """Forget every cached registration and key (after changing them behind this service's back)."""
        self._registrations.clear()
        self._targets.clear()
        self._keys.clear()

    def _load_key(self, key_hash: str) -> KeyRecord | None:
        query = select(ApiKey.agency_id, ApiKey.key_id, ApiKey.expires_at).where(ApiKey.key_hash == key_hash)
        with self._db.engine.connect() as connection:
            row = connection.execute(query).one_or_none()
        view = None if row is None else self._registrations.get(row.agency_id, self._load_view)
        if row is None or view is None:
            return None
        identity = Identity(
            CallerKind.DASHBOARD,
            agency_id=view.agency_id,
            key_id=row.key_id,
            rate_limit_rps=view.rate_limit_rps,
            rate_limit_burst=view.rate_limit_burst,
        )
        return KeyRecord(ResolvedKey(identity, view.status == STATUS_SUSPENDED), row.expires_at)


def _stored_key(key: NewApiKey, agency_id: str, now: datetime) -> ApiKey:
    """The row that stores a new key: its hash and visible prefix, never the key itself."""
    return ApiKey(
        key_id=key.key_id, agency_id=agency_id, prefix=key.prefix, key_hash=key.key_hash, created_at=now
    )


def _require_agency_id(agency_id: str) -> None:
    if not agency_id:
        raise invalid("agencyId", "is required")
    problem = agency_id_problem(agency_id)
    if problem:
        raise invalid("agencyId", problem)


def _not_registered(agency_id: str) -> NotFound:
    return NotFound(f"agency {agency_id!r} is not registered")


def _already_registered(agency_id: str) -> AlreadyExists:
    return AlreadyExists(f"agency {agency_id!r} is already registered")


def _get_registration(session: Session, agency_id: str, for_update: bool = False) -> DashboardRegistration:
    query = select(DashboardRegistration).where(DashboardRegistration.agency_id == agency_id)
    if for_update:
        query = query.with_for_update()
    registration = session.scalars(query).one_or_none()
    if registration is None:
        raise _not_registered(agency_id)
    return registration


def registration_view(registration: DashboardRegistration | Row[Any]) -> DashboardView:
    """The caller-visible view of a registration (an ORM object or a Core row without the secret)."""
    return DashboardView(
        agency_id=registration.agency_id,
        dashboard_name=registration.dashboard_name,
        dashboard_url=registration.dashboard_url,
        webhook_secret_set=bool(registration.webhook_secret_hint),
        webhook_secret_hint=registration.webhook_secret_hint,
        status=registration.status,
        created_at=registration.created_at,
        updated_at=registration.updated_at,
        rate_limit_rps=registration.rate_limit_rps,
        rate_limit_burst=registration.rate_limit_burst,
    )
