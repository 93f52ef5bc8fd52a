"""Blob faults: referenced bytes found missing or damaged (by a download or `moorage admin fsck`).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

from moorage.store.tables import UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blob_faults",
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("filename", sa.String(300), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("found_at", UTCDateTime, nullable=False),
        sa.Column("found_by", sa.String(20), nullable=False),
        sa.CheckConstraint("kind in ('missing', 'damaged')", name="ck_blob_faults_kind"),
        sa.PrimaryKeyConstraint("sha256", name="pk_blob_faults"),
    )


def downgrade() -> None:
    op.drop_table("blob_faults")
