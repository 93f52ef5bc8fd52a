"""The database schema (SQLAlchemy Core). Invariants live here as constraints.

Migrations in ``migrations/versions`` create exactly this schema; a test compares them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive text)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(200), nullable=True),
    sa.Column("is_admin", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)


def _user_table(name: str, key: sa.Column[Any], *columns: sa.schema.SchemaItem) -> sa.Table:
    """A table of what an account has (API tokens, sessions, second factors, recovery codes):
    its key, then the account's id, indexed (they are looked up by account), then the rest."""
    user_id = sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False, index=True)
    return sa.Table(name, metadata, key, user_id, *columns)


tokens = _user_table(
    "tokens",
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("description", sa.String(200), nullable=False, default=""),
    sa.Column("projects", sa.JSON, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=True),
    sa.Column("revoked_at", UTCDateTime, nullable=True),
    sa.Column("last_used_at", UTCDateTime, nullable=True),
    sa.Column("last_used_address", sa.String(64), nullable=True),
    # The account had a second factor when it made this token (the 2FA rule asks for it).
    sa.Column("with_second_factor", sa.Boolean, nullable=False, default=False, server_default=sa.false()),
)

projects = sa.Table(
    "projects",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("normalized_name", sa.String(100), nullable=False, unique=True),
    # No two projects may look alike (see domain.names.similarity_key).
    sa.Column("similarity_key", sa.String(100), nullable=False, unique=True),
    sa.Column("status", sa.String(20), nullable=False, default="active"),  # PEP 792
    sa.Column("status_reason", sa.Text, nullable=True),
    # A deprecated project may name the project that replaces it.
    sa.Column("successor", sa.String(100), nullable=True),
    sa.Column("status_changed_at", UTCDateTime, nullable=True),
    # The owners' one-way switch: from then on only an admin may delete anything here.
    sa.Column("deletions_disabled_at", UTCDateTime, nullable=True),
    # A deleted project keeps its row as the name's tombstone.
    sa.Column("deleted_at", UTCDateTime, nullable=True),
    sa.Column("deleted_reason", sa.Text, nullable=True),
    # Pending removal: from removal_at on, the files are offered only under the opt-in root.
    sa.Column("removal_at", UTCDateTime, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("last_serial", sa.BigInteger, nullable=False, default=0),
    sa.Column("total_size", sa.BigInteger, nullable=False, default=0),
)

roles = sa.Table(
    "roles",
    metadata,
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), primary_key=True),
    sa.Column("role", sa.String(20), nullable=False),
    sa.CheckConstraint("role in ('owner', 'maintainer')", name="role"),
)

releases = sa.Table(
    "releases",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
    sa.Column("version", sa.String(100), nullable=False),
    sa.Column("canonical_version", sa.String(100), nullable=False),
    # Indexed for the home page's recent releases.
    sa.Column("created_at", UTCDateTime, nullable=False, index=True),
    sa.Column("requires_python", sa.String(200), nullable=True),
    sa.Column("metadata", sa.JSON, nullable=False),
    # An owner reopened the release after its upload window closed, until then.
    sa.Column("reopened_until", UTCDateTime, nullable=True),
    # An admin quarantined this release alone: its files are neither offered nor served.
    sa.Column("quarantined_at", UTCDateTime, nullable=True),
    sa.Column("quarantine_reason", sa.Text, nullable=True),
    sa.Column("deleted_at", UTCDateTime, nullable=True),
    sa.UniqueConstraint("project_id", "canonical_version"),
    sa.Index("ix_releases_quarantined_at", "quarantined_at", sqlite_where=sa.text("quarantined_at IS NOT NULL"),
             postgresql_where=sa.text("quarantined_at IS NOT NULL")),
)

files = sa.Table(
    "files",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("release_id", sa.Integer, sa.ForeignKey("releases.id"), nullable=False, index=True),
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False, index=True),
    sa.Column("filename", sa.String(255), nullable=False, unique=True),
    sa.Column("packagetype", sa.String(20), nullable=False),
    sa.Column("python_version", sa.String(100), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("blake2_256", sa.String(64), nullable=False),
    sa.Column("md5", sa.String(32), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("upload_time", UTCDateTime, nullable=False),
    sa.Column("requires_python", sa.String(200), nullable=True),
    sa.Column("metadata_sha256", sa.String(64), nullable=True),
    sa.Column("uploader_id", sa.Integer, sa.ForeignKey("users.id"), nullable=True),
    # PEP 592: a yanked file stays downloadable; installers skip it unless pinned.
    sa.Column("yanked_at", UTCDateTime, nullable=True),
    sa.Column("yanked_reason", sa.Text, nullable=True),
    # Deleted: no longer offered; the row and the bytes stay for retention and restore.
    sa.Column("deleted_at", UTCDateTime, nullable=True),
    sa.Column("deleted_reason", sa.Text, nullable=True),
    sa.CheckConstraint("packagetype in ('sdist', 'bdist_wheel')", name="packagetype"),
    sa.Index("ix_files_deleted_at", "deleted_at", sqlite_where=sa.text("deleted_at IS NOT NULL"),
             postgresql_where=sa.text("deleted_at IS NOT NULL")),
    # One sdist per release.
    sa.Index(
        "uq_files_one_sdist_per_release",
        "release_id",
        unique=True,
        sqlite_where=sa.text("packagetype = 'sdist'"),
        postgresql_where=sa.text("packagetype = 'sdist'"),
    ),
)

# Every filename ever accepted, with its bytes' hash: a filename is never reused,
# even after the file is deleted. No foreign key: it outlives its project.
filename_registry = sa.Table(
    "filename_registry",
    metadata,
    sa.Column("filename", sa.String(255), primary_key=True),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("project", sa.String(100), nullable=False),
    sa.Column("registered_at", UTCDateTime, nullable=False),
)

# Events are never updated or deleted and reference nothing, so nothing cascades into them.
events = sa.Table(
    "events",
    metadata,
    sa.Column("serial", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("action", sa.String(50), nullable=False),
    sa.Column("project", sa.String(100), nullable=True, index=True),
    sa.Column("subject", sa.String(300), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sqlite_autoincrement=True,
)

# An owner's invitation to become owner or maintainer; a transfer also hands the inviter's
# place over when accepted.
invitations = sa.Table(
    "invitations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False, index=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("transfer", sa.Boolean, nullable=False, default=False),
    sa.Column("invited_by", sa.String(100), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("answered_at", UTCDateTime, nullable=True),
    sa.Column("accepted", sa.Boolean, nullable=True),
    sa.CheckConstraint("role in ('owner', 'maintainer')", name="role"),
)

# The transparency log: one entry per event, in commit order (docs/log.md).
log_entries = sa.Table(
    "log_entries",
    metadata,
    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("serial", sa.Integer, nullable=False, unique=True),
    sa.Column("entry", sa.LargeBinary, nullable=False),
    sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),
)

# The log's right edge (a compact range), so appending and the tree head cost O(log n).
log_state = sa.Table(
    "log_state",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("nodes", sa.JSON, nullable=False),
)

# Signed checkpoints, one per tree size that was ever signed.
checkpoints = sa.Table(
    "checkpoints",
    metadata,
    sa.Column("size", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

# Signed-in browser sessions. Only a hash of the cookie's value is kept, so a copy of the
# database does not let anyone sign in.
web_sessions = _user_table(
    "web_sessions",
    sa.Column("id_hash", sa.String(64), primary_key=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    # The password was right; the second factor is still awaited: not signed in yet.
    sa.Column("pending_factor", sa.Boolean, nullable=False, default=False, server_default=sa.false()),
    # When this session last passed a second-factor check (sensitive actions want it fresh).
    sa.Column("factor_at", UTCDateTime, nullable=True),
    # The WebAuthn challenge this session was last given (registration or sign-in), base64url.
    sa.Column("challenge", sa.String(200), nullable=True),
)

# Failed sign-ins, by account name: the rate limit counts the recent ones.
sign_in_failures = sa.Table(
    "sign_in_failures",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("user_name", sa.String(100), nullable=False, index=True),
    sa.Column("address", sa.String(64), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
)

# Names no one may register, set by admins (on top of upload.prohibited_names in the configuration).
prohibited_names = sa.Table(
    "prohibited_names",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("added_by", sa.String(100), nullable=False),
    sa.Column("added_at", UTCDateTime, nullable=False),
)

# Second factors: TOTP secrets (RFC 6238) and WebAuthn credentials.
second_factors = _user_table(
    "second_factors",
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("label", sa.String(100), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("last_used_at", UTCDateTime, nullable=True),
    sa.Column("totp_secret", sa.String(64), nullable=True),
    # The last 30-second step a code was accepted for: a code is accepted once (replay).
    sa.Column("totp_last_step", sa.BigInteger, nullable=True),
    sa.Column("credential_id", sa.String(512), nullable=True, unique=True),  # base64url
    sa.Column("public_key", sa.LargeBinary, nullable=True),  # COSE
    sa.Column("sign_count", sa.BigInteger, nullable=True),
    sa.CheckConstraint("kind in ('totp', 'webauthn')", name="kind"),
)

# Single-use recovery codes; only a hash is kept (the codes are random, 80 bits).
recovery_codes = _user_table(
    "recovery_codes",
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("code_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("used_at", UTCDateTime, nullable=True),
)

# Downloads per project and UTC day; mirroring tools are counted apart.
download_counts = sa.Table(
    "download_counts",
    metadata,
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("kind", sa.String(10), primary_key=True),
    sa.Column("count", sa.BigInteger, nullable=False),
    sa.CheckConstraint("kind in ('client', 'mirror')", name="kind"),
)

# Projects designated critical by the daily job (public: pages, JSON API, events).
critical_projects = sa.Table(
    "critical_projects",
    metadata,
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), primary_key=True),
    sa.Column("since", UTCDateTime, nullable=False),
    # The 2FA rule applies to its maintainers from then on.
    sa.Column("grace_until", UTCDateTime, nullable=False),
    sa.Column("rule", sa.String(200), nullable=False),  # why: "top 1% by 30-day downloads", "listed"
    sa.Column("downloads_30d", sa.BigInteger, nullable=True),
)

# Sudden jumps in downloads, held for an admin instead of acted on.
download_flags = sa.Table(
    "download_flags",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False, index=True),
    sa.Column("flagged_at", UTCDateTime, nullable=False),
    sa.Column("week", sa.BigInteger, nullable=False),
    sa.Column("previous_week", sa.BigInteger, nullable=False),
    sa.Column("reviewed_at", UTCDateTime, nullable=True),
    sa.Column("reviewed_by", sa.String(100), nullable=True),
    sa.Column("decision", sa.String(20), nullable=True),
)

# When each periodic job last ran (the daily critical-project computation).
job_runs = sa.Table(
    "job_runs",
    metadata,
    sa.Column("name", sa.String(50), primary_key=True),
    sa.Column("last_run_at", UTCDateTime, nullable=False),
)

# Blobs a file row references whose bytes are missing from the store or do not match their
# sha256, as a download found them (missing) or `moorage admin fsck` last did; /healthz reports
# the store degraded while any is here. fsck removes a row once it finds the bytes right again.
blob_faults = sa.Table(
    "blob_faults",
    metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("filename", sa.String(300), nullable=False),  # a file that uses it (<file>.metadata for metadata)
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("found_at", UTCDateTime, nullable=False),
    sa.Column("found_by", sa.String(20), nullable=False),  # "download" | "fsck"
    sa.CheckConstraint("kind in ('missing', 'damaged')", name="kind"),
)
