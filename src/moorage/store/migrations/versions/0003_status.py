"""Project status details (successor, when it changed) and quarantined releases.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

from moorage.store.tables import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("successor", sa.String(100), nullable=True))
        batch.add_column(sa.Column("status_changed_at", UTCDateTime, nullable=True))
    with op.batch_alter_table("releases") as batch:
        batch.add_column(sa.Column("quarantined_at", UTCDateTime, nullable=True))
        batch.add_column(sa.Column("quarantine_reason", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("releases") as batch:
        batch.drop_column("quarantine_reason")
        batch.drop_column("quarantined_at")
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("status_changed_at")
        batch.drop_column("successor")
