"""Opening an index for a command or for the server: the checks that run before anything else
(store/preflight.py), the embedded database migrated, the leftovers of a crash swept, the log's
signing key made, and what a first start creates (the admin account and an upload token)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from moorage.config import Settings
from moorage.log.keys import load_or_create
from moorage.services import accounts
from moorage.services.context import Context, open_context
from moorage.store import preflight
from moorage.store.admin import has_users


class SchemaNotCurrent(Exception):
    """A database the server does not migrate itself (PostgreSQL) is behind the code."""


@dataclass(frozen=True)
class FirstStart:
    """The admin account a first start created, and its one-time upload token."""

    user: str
    password: str
    token: str


def open_index(settings: Settings) -> Context:
    """The index of an existing data directory, its database opened and checked (and migrated,
    when it is the embedded one)."""
    preflight.require_data_dir(settings.data_dir)
    ctx = open_context(settings)
    preflight.check_database(ctx.db)
    if settings.is_embedded and not ctx.db.is_current():
        ctx.db.upgrade()
    return ctx


def open_for_serving(settings: Settings) -> Context:
    """The index `moorage serve` serves: the data directory made on a first start, what it must
    write checked, the embedded database migrated; SchemaNotCurrent for another one behind."""
    preflight.check_writable(settings.data_dir, settings.blob_dir if settings.blobs.store == "file" else None,
                             embedded=settings.is_embedded)
    ctx = open_context(settings)
    preflight.check_database(ctx.db)
    if settings.is_embedded:
        ctx.db.upgrade()
    elif not ctx.db.is_current():
        ctx.close()
        raise SchemaNotCurrent
    return ctx


def sweep_temporary(ctx: Context) -> int:
    """Remove the temporary files a crash left, older than an hour; how many."""
    return ctx.blobs.sweep_temporary(now=ctx.clock.now().timestamp())


def ensure_log_key(settings: Settings) -> None:
    """The log's signing key, made if there is none (before the workers start: one key)."""
    load_or_create(settings.log_key_file, settings.log_origin)


def log_verifier_key(settings: Settings) -> str:
    """The log's public (verifier) key, in an existing data directory (its key made if need be)."""
    preflight.require_data_dir(settings.data_dir)
    return load_or_create(settings.log_key_file, settings.log_origin).verifier.vkey()


def upgrade_database(settings: Settings) -> tuple[str | None, str | None]:
    """Apply the migrations; the revision before and after."""
    ctx = open_context(settings)
    before = ctx.db.current_revision()
    ctx.db.upgrade()
    return before, ctx.db.current_revision()


def first_start(ctx: Context) -> FirstStart | None:
    """On an index without accounts: an admin account with a random password and an upload
    token, both recorded as the system's. None when an account exists."""
    with ctx.db.read() as conn:
        if has_users(conn):
            return None
    password = secrets.token_urlsafe(18)
    accounts.add_user(ctx, "admin", password=password, is_admin=True, actor="system")
    _id, token = accounts.create_token(ctx, "admin", description="first start", actor="system")
    return FirstStart("admin", password, token)
