"""Delivery attempts keep the first 1 KiB of the answer.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 17:30:23.767654
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("delivery_attempts", schema=None) as batch_op:
        batch_op.alter_column(
            "response_excerpt", existing_type=sa.VARCHAR(length=500), type_=sa.Text(), existing_nullable=False
        )


def downgrade() -> None:
    with op.batch_alter_table("delivery_attempts", schema=None) as batch_op:
        batch_op.alter_column(
            "response_excerpt", existing_type=sa.Text(), type_=sa.VARCHAR(length=500), existing_nullable=False
        )
