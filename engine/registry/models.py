"""Tables of the dashboard registry."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, Integer, LargeBinary, String, Text, event
from sqlalchemy.orm import Mapped, mapped_column, relationship

from engine.store.base import Base, UTCDateTime, utcnow

# Values of DashboardRegistration.status.
STATUS_ACTIVE = "active"
STATUS_SUSPENDED = "suspended"
STATUS_WEBHOOKS_DISABLED = "webhooks_disabled"


class DashboardRegistration(Base):
    """A dashboard registered with the engine, keyed by its agencyId."""

    __tablename__ = "dashboard_registrations"

    agency_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    dashboard_name: Mapped[str] = mapped_column(String(200))
    dashboard_url: Mapped[str] = mapped_column(String(2048))
    # SecretBox ciphertext (nonce included) of the webhook secret.
    webhook_secret_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    webhook_secret_hint: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(32), default=STATUS_ACTIVE)
    # Per-dashboard override of the default token bucket; NULL means the default.
    rate_limit_rps: Mapped[float | None] = mapped_column(Float, nullable=True)
    rate_limit_burst: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    # The secret replaced by the last change, still signed with until it expires (24 h).
    previous_webhook_secret_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    previous_webhook_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Since when every delivery attempt has failed (NULL after any success).
    webhooks_failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Why the status is what it is (suspension reason, "410 Gone", ...).
    status_reason: Mapped[str] = mapped_column(String(500), default="")
    # agencyId, name and URL case-folded in Python: SQL lower() folds ASCII only (SQLite, C locale).
    search_text: Mapped[str] = mapped_column(Text, default="")

    api_keys: Mapped[list[ApiKey]] = relationship(back_populates="dashboard", order_by="ApiKey.created_at")


class ApiKey(Base):
    """One API key of a dashboard. Only its SHA-256 hash and visible prefix are stored."""

    __tablename__ = "api_keys"

    key_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    agency_id: Mapped[str] = mapped_column(ForeignKey("dashboard_registrations.agency_id"), index=True)
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Set when the key is rotated out: it stops working at this instant.
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    dashboard: Mapped[DashboardRegistration] = relationship(back_populates="api_keys")


class DashboardStatusChange(Base):
    """Who suspended or activated a dashboard (or which rule disabled its webhooks), when and why."""

    __tablename__ = "dashboard_status_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    agency_id: Mapped[str] = mapped_column(ForeignKey("dashboard_registrations.agency_id"), index=True)
    status: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(500), default="")
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


def search_text_of(agency_id: str, name: str, url: str) -> str:
    """What the admin search matches: the three fields, case-folded (Unicode-aware)."""
    return "\n".join((agency_id, name, url)).casefold()


@event.listens_for(DashboardRegistration, "before_insert")
@event.listens_for(DashboardRegistration, "before_update")
def _refresh_search_text(_mapper: object, _connection: object, target: DashboardRegistration) -> None:
    target.search_text = search_text_of(target.agency_id, target.dashboard_name, target.dashboard_url)
