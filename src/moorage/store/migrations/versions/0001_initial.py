"""The initial schema: accounts, tokens, projects, releases, files, filename registry, events.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

from moorage.store.tables import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=True),
        sa.Column("is_admin", sa.Boolean, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("name", name="uq_users_name"),
    )
    op.create_table(
        "tokens",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("description", sa.String(200), nullable=False),
        sa.Column("projects", sa.JSON, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=True),
        sa.Column("revoked_at", UTCDateTime, nullable=True),
        sa.Column("last_used_at", UTCDateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_tokens"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_tokens_user_id_users"),
        sa.UniqueConstraint("token_hash", name="uq_tokens_token_hash"),
    )
    op.create_index("ix_tokens_user_id", "tokens", ["user_id"])
    op.create_table(
        "projects",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("normalized_name", sa.String(100), nullable=False),
        sa.Column("similarity_key", sa.String(100), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("status_reason", sa.Text, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("last_serial", sa.BigInteger, nullable=False),
        sa.Column("total_size", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_projects"),
        sa.UniqueConstraint("normalized_name", name="uq_projects_normalized_name"),
        sa.UniqueConstraint("similarity_key", name="uq_projects_similarity_key"),
    )
    op.create_table(
        "roles",
        sa.Column("project_id", sa.Integer, nullable=False),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "user_id", name="pk_roles"),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], name="fk_roles_project_id_projects"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_roles_user_id_users"),
        sa.CheckConstraint("role in ('owner', 'maintainer')", name=op.f("ck_roles_role")),
    )
    op.create_table(
        "releases",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("project_id", sa.Integer, nullable=False),
        sa.Column("version", sa.String(100), nullable=False),
        sa.Column("canonical_version", sa.String(100), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("requires_python", sa.String(200), nullable=True),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_releases"),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], name="fk_releases_project_id_projects"),
        sa.UniqueConstraint("project_id", "canonical_version", name="uq_releases_project_id_canonical_version"),
    )
    op.create_table(
        "files",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("release_id", sa.Integer, nullable=False),
        sa.Column("project_id", sa.Integer, nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("packagetype", sa.String(20), nullable=False),
        sa.Column("python_version", sa.String(100), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("blake2_256", sa.String(64), nullable=False),
        sa.Column("md5", sa.String(32), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("upload_time", UTCDateTime, nullable=False),
        sa.Column("requires_python", sa.String(200), nullable=True),
        sa.Column("metadata_sha256", sa.String(64), nullable=True),
        sa.Column("uploader_id", sa.Integer, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_files"),
        sa.ForeignKeyConstraint(["release_id"], ["releases.id"], name="fk_files_release_id_releases"),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], name="fk_files_project_id_projects"),
        sa.ForeignKeyConstraint(["uploader_id"], ["users.id"], name="fk_files_uploader_id_users"),
        sa.UniqueConstraint("filename", name="uq_files_filename"),
        sa.CheckConstraint("packagetype in ('sdist', 'bdist_wheel')", name=op.f("ck_files_packagetype")),
    )
    op.create_index("ix_files_release_id", "files", ["release_id"])
    op.create_index("ix_files_project_id", "files", ["project_id"])
    op.create_index(
        "uq_files_one_sdist_per_release",
        "files",
        ["release_id"],
        unique=True,
        sqlite_where=sa.text("packagetype = 'sdist'"),
        postgresql_where=sa.text("packagetype = 'sdist'"),
    )
    op.create_table(
        "filename_registry",
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("project", sa.String(100), nullable=False),
        sa.Column("registered_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("filename", name="pk_filename_registry"),
    )
    op.create_table(
        "events",
        sa.Column("serial", sa.Integer, nullable=False, autoincrement=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("action", sa.String(50), nullable=False),
        sa.Column("project", sa.String(100), nullable=True),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("serial", name="pk_events"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_events_project", "events", ["project"])


def downgrade() -> None:
    for table in ("events", "filename_registry", "files", "releases", "roles", "projects", "tokens", "users"):
        op.drop_table(table)
