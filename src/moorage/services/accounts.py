"""Users and API tokens."""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from moorage.domain.decisions import Denied, not_found, require
from moorage.domain.names import check_name, normalize
from moorage.domain.policy import TokenView
from moorage.services.context import Context
from moorage.services.events import append_event
from moorage.store.accounts import has_second_factor
from moorage.store.tables import tokens, users

_USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
TOKEN_PREFIX = "moorage"
_hasher = PasswordHasher()
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TokenInfo:
    id: str
    user: str
    description: str
    projects: list[str]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    last_used_address: str | None = None
    with_second_factor: bool = False


def hash_token(token: str) -> str:
    # Tokens carry 256 random bits, so a fast hash is enough to keep them unrecoverable.
    return hashlib.sha256(token.encode()).hexdigest()


def add_user(ctx: Context, name: str, *, password: str | None, is_admin: bool = False,
             actor: str = "system") -> int:
    if not _USER_NAME.match(name):
        raise Denied.by("invalid-user-name", f"{name!r} is not a valid user name: letters, digits, . _ -")
    now = ctx.clock.now()
    # Hashed before the transaction: argon2 is slow on purpose, the write lock need not wait.
    password_hash = _hasher.hash(password) if password else None
    exists = Denied.by("user-exists", f"the user {name!r} already exists")
    try:
        with ctx.db.write() as conn:
            if conn.execute(sa.select(users.c.id).where(users.c.name == name)).first():
                raise exists
            uid = conn.execute(
                users.insert().values(
                    name=name,
                    password_hash=password_hash,
                    is_admin=is_admin,
                    created_at=now,
                ).returning(users.c.id)
            ).scalar_one()
            append_event(conn, now=now, actor=actor, action="user-created", subject=f"user:{name}",
                         payload={"user": name, "admin": is_admin})
    except IntegrityError:
        # A concurrent add_user of the same name committed first (the unique name decides).
        raise exists from None
    return int(uid)


def verify_password(ctx: Context, name: str, password: str) -> bool:
    with ctx.db.read() as conn:
        row = conn.execute(sa.select(users.c.password_hash).where(users.c.name == name)).first()
    if row is None or row.password_hash is None:
        return False
    try:
        return _hasher.verify(row.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def user_id(conn: Connection, name: str) -> int:
    uid = conn.execute(sa.select(users.c.id).where(users.c.name == name)).scalar()
    if uid is None:
        raise not_found(f"no user named {name!r}")
    return int(uid)


def create_token(ctx: Context, user: str, *, projects: list[str] | tuple[str, ...] = (),
                 expires_days: int | None = None, description: str = "",
                 actor: str | None = None) -> tuple[str, str]:
    """Create an API token; returns (token id, the token). The token is shown only once."""
    scoped = []
    for p in projects:
        require(check_name(p))
        scoped.append(normalize(p))
    if expires_days is not None and expires_days <= 0:
        raise Denied.by("invalid-expiry", "--expires-days must be a positive number of days")
    now = ctx.clock.now()
    token_id = secrets.token_hex(6)
    token = f"{TOKEN_PREFIX}-{token_id}-{secrets.token_urlsafe(32)}"
    expires_at = now + timedelta(days=expires_days) if expires_days else None
    with ctx.db.write() as conn:
        uid = user_id(conn, user)
        # The 2FA rule asks for tokens made by an account with a second factor: remember it.
        with_factor = has_second_factor(conn, uid)
        conn.execute(tokens.insert().values(
            id=token_id, user_id=uid, token_hash=hash_token(token), description=description,
            projects=sorted(set(scoped)), created_at=now, expires_at=expires_at, with_second_factor=with_factor,
        ))
        append_event(conn, now=now, actor=actor or user, action="token-created", subject=f"token:{token_id}",
                     payload={"token": token_id, "user": user, "projects": sorted(set(scoped)),
                              "expires_at": expires_at.isoformat() if expires_at else None,
                              "with_second_factor": with_factor})
    return token_id, token


def list_tokens(ctx: Context, user: str) -> list[TokenInfo]:
    with ctx.db.read() as conn:
        user_id(conn, user)
        rows = conn.execute(
            sa.select(tokens).join(users, users.c.id == tokens.c.user_id)
            .where(users.c.name == user).order_by(tokens.c.created_at)
        ).all()
    return [TokenInfo(r.id, user, r.description, list(r.projects), r.created_at, r.expires_at,
                      r.revoked_at, r.last_used_at, r.last_used_address, bool(r.with_second_factor)) for r in rows]


def revoke_token(ctx: Context, token_id: str, *, actor: str = "system") -> None:
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        row = conn.execute(
            sa.select(tokens.c.revoked_at, users.c.name).join(users, users.c.id == tokens.c.user_id)
            .where(tokens.c.id == token_id)
        ).first()
        if row is None:
            raise not_found(f"no token with id {token_id!r}")
        if row.revoked_at is not None:
            return
        conn.execute(tokens.update().where(tokens.c.id == token_id).values(revoked_at=now))
        append_event(conn, now=now, actor=actor, action="token-revoked", subject=f"token:{token_id}",
                     payload={"token": token_id, "user": row.name})


def revoke_all_tokens(ctx: Context, user: str, *, actor: str, reason: str | None = None) -> list[str]:
    """Revoke every live token of an account (after a compromise): one event names them all."""
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        uid = user_id(conn, user)
        live = [r.id for r in conn.execute(
            sa.select(tokens.c.id).where(tokens.c.user_id == uid, tokens.c.revoked_at.is_(None))
            .order_by(tokens.c.created_at))]
        if live:
            conn.execute(tokens.update().where(tokens.c.id.in_(live)).values(revoked_at=now))
        append_event(conn, now=now, actor=actor, action="tokens-revoked-all", subject=f"user:{user}",
                     payload={"user": user, "tokens": live, "reason": reason})
    return live


# A token's use is written at most this often by reads (uploads always write it): bookkeeping
# must not turn every authenticated read into a write.
USE_RECORD_INTERVAL = timedelta(seconds=60)


def record_token_use(ctx: Context, token: TokenView, address: str | None, *, force: bool = False) -> None:
    """When and from where the token was last used, in its own small transaction after the
    work it authorized (a read). An upload records it in its own transaction: note_token_use."""
    now = ctx.clock.now()
    if not force and token.last_used_at is not None and now - token.last_used_at < USE_RECORD_INTERVAL:
        return
    try:
        with ctx.db.write() as conn:
            conn.execute(tokens.update().where(tokens.c.id == token.token_id)
                         .values(last_used_at=now, last_used_address=address))
    except Exception:  # noqa: BLE001 - bookkeeping; what the token authorized is done
        _log.warning("could not record the use of token %s", token.token_id, exc_info=True)


def note_token_use(conn: Connection, token_id: str, now: datetime, address: str | None) -> None:
    """When and from where the token was last used, inside a writer's transaction that holds
    the event log's lock (after its last event). The token's row is taken only if nobody holds
    it, never waited for: a revocation takes that row first and the event log's lock after it,
    so waiting could deadlock the two; and every writer that appends events is held back by
    the lock already. Whoever holds the row records a use (or the token's end) of that instant."""
    free = conn.execute(
        sa.select(tokens.c.id).where(tokens.c.id == token_id).with_for_update(skip_locked=True)
    ).first()
    if free is not None:
        conn.execute(tokens.update().where(tokens.c.id == token_id)
                     .values(last_used_at=now, last_used_address=address))


def find_token(conn: Connection, token: str) -> tuple[TokenView, int] | None:
    """The token's view for the rules and its user's id, or None if unknown."""
    if not token.startswith(TOKEN_PREFIX + "-"):
        return None
    row = conn.execute(
        sa.select(tokens, users.c.name.label("user_name"))
        .join(users, users.c.id == tokens.c.user_id)
        .where(tokens.c.token_hash == hash_token(token))
    ).first()
    if row is None:
        return None
    view = TokenView(token_id=row.id, user_name=row.user_name, projects=frozenset(row.projects),
                     expires_at=row.expires_at, revoked_at=row.revoked_at, created_at=row.created_at,
                     last_used_at=row.last_used_at, with_second_factor=bool(row.with_second_factor))
    return view, int(row.user_id)
