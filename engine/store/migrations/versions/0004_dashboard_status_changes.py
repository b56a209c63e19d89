"""History of dashboard suspensions, activations and webhook disabling.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 16:28:48.438038
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import engine.store.base

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dashboard_status_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("agency_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("changed_at", engine.store.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_id"],
            ["dashboard_registrations.agency_id"],
            name=op.f("fk_dashboard_status_changes_agency_id_dashboard_registrations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dashboard_status_changes")),
    )
    with op.batch_alter_table("dashboard_status_changes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_dashboard_status_changes_agency_id"), ["agency_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("dashboard_status_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dashboard_status_changes_agency_id"))

    op.drop_table("dashboard_status_changes")
