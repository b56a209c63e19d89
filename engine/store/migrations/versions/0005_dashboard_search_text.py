"""Case-folded search text of dashboards (agencyId, name, URL) for the admin search.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 17:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dashboard_registrations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("search_text", sa.Text(), nullable=False, server_default=""))
    registrations = sa.table(
        "dashboard_registrations",
        sa.column("agency_id", sa.String()),
        sa.column("dashboard_name", sa.String()),
        sa.column("dashboard_url", sa.String()),
        sa.column("search_text", sa.Text()),
    )
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(registrations.c.agency_id, registrations.c.dashboard_name, registrations.c.dashboard_url)
    ).all()
    for agency_id, name, url in rows:
        # The same folding as engine.registry.models.search_text_of, frozen here as migrations must be.
        connection.execute(
            registrations.update()
            .where(registrations.c.agency_id == agency_id)
            .values(search_text="\n".join((agency_id, name, url)).casefold())
        )


def downgrade() -> None:
    with op.batch_alter_table("dashboard_registrations", schema=None) as batch_op:
        batch_op.drop_column("search_text")
