"""Sessions, conversations and messages; provider event receipts and unroutable events.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 16:10:07.909778
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import engine.store.base

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "provider_event_receipts",
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("received_at", engine.store.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("provider", "event_id", name=op.f("pk_provider_event_receipts")),
    )
    op.create_table(
        "unroutable_provider_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("provider_session", sa.String(length=128), nullable=False),
        sa.Column("event_type", sa.String(length=32), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("received_at", engine.store.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unroutable_provider_events")),
    )
    with op.batch_alter_table("unroutable_provider_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_unroutable_provider_events_received_at"), ["received_at"], unique=False
        )

    op.create_table(
        "sessions",
        sa.Column("session_id", sa.String(length=40), nullable=False),
        sa.Column("agency_id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("provider_session", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("metadata_json", sa.Text(), nullable=False),
        sa.Column("created_at", engine.store.base.UTCDateTime(), nullable=False),
        sa.Column("updated_at", engine.store.base.UTCDateTime(), nullable=False),
        sa.Column("deleted_at", engine.store.base.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["agency_id"],
            ["dashboard_registrations.agency_id"],
            name=op.f("fk_sessions_agency_id_dashboard_registrations"),
        ),
        sa.PrimaryKeyConstraint("session_id", name=op.f("pk_sessions")),
        sa.UniqueConstraint("provider", "provider_session", name=op.f("uq_sessions_provider")),
    )
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.create_index("ix_sessions_agency_session", ["agency_id", "session_id"], unique=False)

    op.create_table(
        "conversations",
        sa.Column("conversation_id", sa.String(length=40), nullable=False),
        sa.Column("session_id", sa.String(length=40), nullable=False),
        sa.Column("agency_id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("peer", sa.String(length=128), nullable=False),
        sa.Column("last_message_at", engine.store.base.UTCDateTime(), nullable=False),
        sa.Column("last_message_text", sa.String(length=200), nullable=False),
        sa.Column("message_count", sa.Integer(), nullable=False),
        sa.Column("created_at", engine.store.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"], ["sessions.session_id"], name=op.f("fk_conversations_session_id_sessions")
        ),
        sa.PrimaryKeyConstraint("conversation_id", name=op.f("pk_conversations")),
        sa.UniqueConstraint("session_id", "peer", name=op.f("uq_conversations_session_id")),
    )
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_conversations_agency_tenant_last", ["agency_id", "tenant_id", "last_message_at"], unique=False
        )

    op.create_table(
        "messages",
        sa.Column("message_id", sa.String(length=40), nullable=False),
        sa.Column("conversation_id", sa.String(length=40), nullable=False),
        sa.Column("session_id", sa.String(length=40), nullable=False),
        sa.Column("agency_id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("sender", sa.String(length=128), nullable=False),
        sa.Column("recipient", sa.String(length=128), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("provider_message_id", sa.String(length=255), nullable=True),
        sa.Column("created_at", engine.store.base.UTCDateTime(), nullable=False),
        sa.Column("updated_at", engine.store.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.conversation_id"],
            name=op.f("fk_messages_conversation_id_conversations"),
        ),
        sa.ForeignKeyConstraint(
            ["session_id"], ["sessions.session_id"], name=op.f("fk_messages_session_id_sessions")
        ),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_messages")),
        sa.UniqueConstraint("session_id", "provider_message_id", name=op.f("uq_messages_session_id")),
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_messages_conversation_message", ["conversation_id", "message_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_conversation_message")

    op.drop_table("messages")
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_index("ix_conversations_agency_tenant_last")

    op.drop_table("conversations")
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_sessions_agency_session")

    op.drop_table("sessions")
    with op.batch_alter_table("unroutable_provider_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_unroutable_provider_events_received_at"))

    op.drop_table("unroutable_provider_events")
    op.drop_table("provider_event_receipts")
