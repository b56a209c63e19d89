"""The due-rows index covers the claim's filters, so rows of a dashboard at its share are skipped in it.

A slow dashboard's backlog is the oldest due rows; the claim leaves that dashboard out while
it is at its share of deliveries in flight, but with only (status, next_attempt_at) indexed
every one of those rows was read from the table to find that out.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27 21:55:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_deliveries_due")
        batch_op.create_index(
            "ix_webhook_deliveries_due",
            ["status", "next_attempt_at", "agency_id", "lease_expires_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_deliveries_due")
        batch_op.create_index("ix_webhook_deliveries_due", ["status", "next_attempt_at"], unique=False)
