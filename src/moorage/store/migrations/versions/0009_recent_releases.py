"""Indexes for the pages: recent releases, and what the admin page lists (deleted, quarantined).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_releases_created_at", "releases", ["created_at"])
    # Partial: only the few deleted or quarantined rows are in them.
    op.create_index("ix_files_deleted_at", "files", ["deleted_at"],
                    sqlite_where=sa.text("deleted_at IS NOT NULL"), postgresql_where=sa.text("deleted_at IS NOT NULL"))
    op.create_index("ix_releases_quarantined_at", "releases", ["quarantined_at"],
                    sqlite_where=sa.text("quarantined_at IS NOT NULL"),
                    postgresql_where=sa.text("quarantined_at IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("ix_releases_quarantined_at", "releases")
    op.drop_index("ix_files_deleted_at", "files")
    op.drop_index("ix_releases_created_at", "releases")
