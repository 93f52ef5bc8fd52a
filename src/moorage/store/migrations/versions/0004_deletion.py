"""Deletion with tombstones: deleted files, releases and projects keep their rows.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

from moorage.store.tables import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("deletions_disabled_at", UTCDateTime, nullable=True))
        batch.add_column(sa.Column("deleted_at", UTCDateTime, nullable=True))
        batch.add_column(sa.Column("deleted_reason", sa.Text, nullable=True))
    with op.batch_alter_table("releases") as batch:
        batch.add_column(sa.Column("deleted_at", UTCDateTime, nullable=True))
    with op.batch_alter_table("files") as batch:
        batch.add_column(sa.Column("deleted_at", UTCDateTime, nullable=True))
        batch.add_column(sa.Column("deleted_reason", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("files") as batch:
        batch.drop_column("deleted_reason")
        batch.drop_column("deleted_at")
    with op.batch_alter_table("releases") as batch:
        batch.drop_column("deleted_at")
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("deleted_reason")
        batch.drop_column("deleted_at")
        batch.drop_column("deletions_disabled_at")
