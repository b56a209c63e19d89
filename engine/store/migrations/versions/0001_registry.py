"""Registry: dashboard registrations and their API keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-27 14:01:43.965159
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import engine.store.base

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dashboard_registrations",
        sa.Column("agency_id", sa.String(length=64), nullable=False),
        sa.Column("dashboard_name", sa.String(length=200), nullable=False),
        sa.Column("dashboard_url", sa.String(length=2048), nullable=False),
        sa.Column("webhook_secret_ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("webhook_secret_hint", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("rate_limit_rps", sa.Float(), nullable=True),
        sa.Column("rate_limit_burst", sa.Integer(), nullable=True),
        sa.Column("created_at", engine.store.base.UTCDateTime(), nullable=False),
        sa.Column("updated_at", engine.store.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("agency_id", name=op.f("pk_dashboard_registrations")),
    )
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(length=40), nullable=False),
        sa.Column("agency_id", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", engine.store.base.UTCDateTime(), nullable=False),
        sa.Column("expires_at", engine.store.base.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["agency_id"],
            ["dashboard_registrations.agency_id"],
            name=op.f("fk_api_keys_agency_id_dashboard_registrations"),
        ),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_keys_agency_id"), ["agency_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_keys_agency_id"))

    op.drop_table("api_keys")
    op.drop_table("dashboard_registrations")
