"""Acks that arrive before the send that names their message is recorded.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 17:06:15.706858
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import engine.store.base

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pending_message_acks",
        sa.Column("session_id", sa.String(length=40), nullable=False),
        sa.Column("provider_message_id", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("received_at", engine.store.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"], ["sessions.session_id"], name=op.f("fk_pending_message_acks_session_id_sessions")
        ),
        sa.PrimaryKeyConstraint("session_id", "provider_message_id", name=op.f("pk_pending_message_acks")),
    )
    with op.batch_alter_table("pending_message_acks", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_pending_message_acks_received_at"), ["received_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("pending_message_acks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pending_message_acks_received_at"))

    op.drop_table("pending_message_acks")
