"""Yanked files (PEP 592) and reopened releases.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

from moorage.store.tables import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("files") as batch:
        batch.add_column(sa.Column("yanked_at", UTCDateTime, nullable=True))
        batch.add_column(sa.Column("yanked_reason", sa.Text, nullable=True))
    with op.batch_alter_table("releases") as batch:
        batch.add_column(sa.Column("reopened_until", UTCDateTime, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("releases") as batch:
        batch.drop_column("reopened_until")
    with op.batch_alter_table("files") as batch:
        batch.drop_column("yanked_reason")
        batch.drop_column("yanked_at")
