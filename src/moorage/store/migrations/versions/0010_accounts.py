"""Accounts that resist takeover: second factors, recovery codes, download counts, critical
projects, token use.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

from moorage.store.tables import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tokens") as batch:
        batch.add_column(sa.Column("last_used_address", sa.String(64), nullable=True))
        batch.add_column(sa.Column("with_second_factor", sa.Boolean, nullable=False, server_default=sa.false()))
    with op.batch_alter_table("web_sessions") as batch:
        batch.add_column(sa.Column("pending_factor", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("factor_at", UTCDateTime, nullable=True))
        batch.add_column(sa.Column("challenge", sa.String(200), nullable=True))
    op.create_table(
        "second_factors",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("label", sa.String(100), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("last_used_at", UTCDateTime, nullable=True),
        sa.Column("totp_secret", sa.String(64), nullable=True),
        sa.Column("totp_last_step", sa.BigInteger, nullable=True),
        sa.Column("credential_id", sa.String(512), nullable=True),
        sa.Column("public_key", sa.LargeBinary, nullable=True),
        sa.Column("sign_count", sa.BigInteger, nullable=True),
        sa.CheckConstraint("kind in ('totp', 'webauthn')", name="ck_second_factors_kind"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_second_factors_user_id_users"),
        sa.PrimaryKeyConstraint("id", name="pk_second_factors"),
        sa.UniqueConstraint("credential_id", name="uq_second_factors_credential_id"),
    )
    op.create_index("ix_second_factors_user_id", "second_factors", ["user_id"])
    op.create_table(
        "recovery_codes",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("used_at", UTCDateTime, nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_recovery_codes_user_id_users"),
        sa.PrimaryKeyConstraint("id", name="pk_recovery_codes"),
        sa.UniqueConstraint("code_hash", name="uq_recovery_codes_code_hash"),
    )
    op.create_index("ix_recovery_codes_user_id", "recovery_codes", ["user_id"])
    op.create_table(
        "download_counts",
        sa.Column("project_id", sa.Integer, nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.CheckConstraint("kind in ('client', 'mirror')", name="ck_download_counts_kind"),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], name="fk_download_counts_project_id_projects"),
        sa.PrimaryKeyConstraint("project_id", "day", "kind", name="pk_download_counts"),
    )
    op.create_table(
        "critical_projects",
        sa.Column("project_id", sa.Integer, nullable=False),
        sa.Column("since", UTCDateTime, nullable=False),
        sa.Column("grace_until", UTCDateTime, nullable=False),
        sa.Column("rule", sa.String(200), nullable=False),
        sa.Column("downloads_30d", sa.BigInteger, nullable=True),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], name="fk_critical_projects_project_id_projects"),
        sa.PrimaryKeyConstraint("project_id", name="pk_critical_projects"),
    )
    op.create_table(
        "download_flags",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("project_id", sa.Integer, nullable=False),
        sa.Column("flagged_at", UTCDateTime, nullable=False),
        sa.Column("week", sa.BigInteger, nullable=False),
        sa.Column("previous_week", sa.BigInteger, nullable=False),
        sa.Column("reviewed_at", UTCDateTime, nullable=True),
        sa.Column("reviewed_by", sa.String(100), nullable=True),
        sa.Column("decision", sa.String(20), nullable=True),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], name="fk_download_flags_project_id_projects"),
        sa.PrimaryKeyConstraint("id", name="pk_download_flags"),
    )
    op.create_index("ix_download_flags_project_id", "download_flags", ["project_id"])
    op.create_table(
        "job_runs",
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("last_run_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_job_runs"),
    )


def downgrade() -> None:
    op.drop_table("job_runs")
    op.drop_index("ix_download_flags_project_id", "download_flags")
    op.drop_table("download_flags")
    op.drop_table("critical_projects")
    op.drop_table("download_counts")
    op.drop_index("ix_recovery_codes_user_id", "recovery_codes")
    op.drop_table("recovery_codes")
    op.drop_index("ix_second_factors_user_id", "second_factors")
    op.drop_table("second_factors")
    with op.batch_alter_table("web_sessions") as batch:
        batch.drop_column("challenge")
        batch.drop_column("factor_at")
        batch.drop_column("pending_factor")
    with op.batch_alter_table("tokens") as batch:
        batch.drop_column("with_second_factor")
        batch.drop_column("last_used_address")
