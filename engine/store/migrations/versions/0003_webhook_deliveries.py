"""Webhook delivery outbox and attempts; webhook secret rotation and failure tracking on registrations.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 16:17:51.231445
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import engine.store.base

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_deliveries",
        sa.Column("delivery_id", sa.String(length=40), nullable=False),
        sa.Column("event_id", sa.String(length=40), nullable=False),
        sa.Column("agency_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("session_id", sa.String(length=40), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempt_count", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", engine.store.base.UTCDateTime(), nullable=True),
        sa.Column("lease_expires_at", engine.store.base.UTCDateTime(), nullable=True),
        sa.Column("created_at", engine.store.base.UTCDateTime(), nullable=False),
        sa.Column("last_attempt_at", engine.store.base.UTCDateTime(), nullable=True),
        sa.Column("succeeded_at", engine.store.base.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["agency_id"],
            ["dashboard_registrations.agency_id"],
            name=op.f("fk_webhook_deliveries_agency_id_dashboard_registrations"),
        ),
        sa.PrimaryKeyConstraint("delivery_id", name=op.f("pk_webhook_deliveries")),
        sa.UniqueConstraint("event_id", name=op.f("uq_webhook_deliveries_event_id")),
    )
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_webhook_deliveries_agency", ["agency_id", "delivery_id"], unique=False)
        batch_op.create_index("ix_webhook_deliveries_due", ["status", "next_attempt_at"], unique=False)

    op.create_table(
        "delivery_attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("delivery_id", sa.String(length=40), nullable=False),
        sa.Column("attempt_number", sa.Integer(), nullable=False),
        sa.Column("attempted_at", engine.store.base.UTCDateTime(), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=False),
        sa.Column("response_excerpt", sa.String(length=500), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(length=500), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["webhook_deliveries.delivery_id"],
            name=op.f("fk_delivery_attempts_delivery_id_webhook_deliveries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_attempts")),
    )
    with op.batch_alter_table("delivery_attempts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_delivery_attempts_delivery_id"), ["delivery_id"], unique=False)

    with op.batch_alter_table("dashboard_registrations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("previous_webhook_secret_ciphertext", sa.LargeBinary(), nullable=True))
        batch_op.add_column(
            sa.Column("previous_webhook_secret_expires_at", engine.store.base.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(
            sa.Column("webhooks_failing_since", engine.store.base.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(
            sa.Column("status_reason", sa.String(length=500), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("dashboard_registrations", schema=None) as batch_op:
        batch_op.drop_column("status_reason")
        batch_op.drop_column("webhooks_failing_since")
        batch_op.drop_column("previous_webhook_secret_expires_at")
        batch_op.drop_column("previous_webhook_secret_ciphertext")

    with op.batch_alter_table("delivery_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_delivery_attempts_delivery_id"))

    op.drop_table("delivery_attempts")
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_deliveries_due")
        batch_op.drop_index("ix_webhook_deliveries_agency")

    op.drop_table("webhook_deliveries")
