"""Each lead keeps its own risk tier (filled from its site's), and ``leads list --class`` gets
an index.

Revision ID: 0002
Revises: 0001
Create Date: 2026-05-20

A lead's tier sets the retention of its evidence. Until now it was read from the site, so
changing a site's tier would have moved the retention of every case already filed there; a
lead now keeps the tier it was opened with. Rows made by 0001 take their site's tier.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("leads") as batch:
        batch.add_column(sa.Column("risk", sa.String(16), nullable=True))
    op.execute(
        "UPDATE leads SET risk = (SELECT sites.risk FROM sites WHERE sites.id = leads.site_id)"
    )
    with op.batch_alter_table("leads") as batch:
        batch.alter_column("risk", existing_type=sa.String(16), nullable=False)
    op.create_index("ix_leads_class_state", "leads", ["lead_class", "state"])


def downgrade() -> None:
    op.drop_index("ix_leads_class_state", table_name="leads")
    with op.batch_alter_table("leads") as batch:
        batch.drop_column("risk")
