"""Browser sessions: sign in with a password (argon2), rate-limited per account; sign out.

The cookie carries 256 random bits; the database keeps only their SHA-256, so a copy of the
database does not let anyone in. Failed attempts are rows, not process memory, so the limit
holds across worker processes. Sign-ins are not events: the log is public and addresses are not.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from moorage.domain.decisions import Decision, Denied
from moorage.services.accounts import verify_password
from moorage.services.context import Context
from moorage.store.tables import sign_in_failures, users, web_sessions


@dataclass(frozen=True)
class SessionUser:
    session_hash: str
    user_id: int
    name: str
    is_admin: bool
    expires_at: datetime


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def _recent_failures(ctx: Context, name: str, now: datetime) -> list[datetime]:
    since = now - ctx.settings.web.sign_in_lockout
    with ctx.db.read() as conn:
        return list(conn.execute(sa.select(sign_in_failures.c.at).where(
            sign_in_failures.c.user_name == name, sign_in_failures.c.at > since)
            .order_by(sign_in_failures.c.at)).scalars())


def sign_in(ctx: Context, name: str, password: str, *, address: str) -> str:
    """A new session id for the cookie; raises Denied (wrong credentials or too many tries)."""
    now = ctx.clock.now()
    web = ctx.settings.web
    name = name.replace("\x00", "").strip()[:100]
    failures = _recent_failures(ctx, name, now)
    if len(failures) >= web.sign_in_attempts:
        until = failures[-web.sign_in_attempts] + web.sign_in_lockout
        raise Denied(Decision.deny(
            "sign-in-rate-limit",
            f"too many failed sign-ins for this account; try again after {until:%d %b %Y %H:%M} UTC",
            status=429, until=until))
    if not verify_password(ctx, name, password):
        with ctx.db.write() as conn:
            conn.execute(sign_in_failures.insert().values(user_name=name, address=address[:64], at=now))
        raise Denied(Decision.deny("sign-in-failed", "the user name or the password is wrong", status=401))
    session_id = secrets.token_urlsafe(32)
    with ctx.db.write() as conn:
        uid = conn.execute(sa.select(users.c.id).where(users.c.name == name)).scalar_one()
        conn.execute(sign_in_failures.delete().where(sign_in_failures.c.user_name == name))
        conn.execute(web_sessions.delete().where(web_sessions.c.expires_at <= now))
        conn.execute(web_sessions.insert().values(id_hash=_hash(session_id), user_id=uid, created_at=now,
                                                  expires_at=now + web.session_lifetime))
    return session_id


def current_user(ctx: Context, session_id: str | None) -> SessionUser | None:
    if not session_id:
        return None
    key = _hash(session_id)
    with ctx.db.read() as conn:
        row = conn.execute(sa.select(web_sessions.c.expires_at, users.c.id, users.c.name, users.c.is_admin)
                           .join(users, users.c.id == web_sessions.c.user_id)
                           .where(web_sessions.c.id_hash == key)).first()
    if row is None or row.expires_at <= ctx.clock.now():
        return None
    return SessionUser(key, int(row.id), row.name, bool(row.is_admin), row.expires_at)


def sign_out(ctx: Context, session_id: str | None) -> None:
    if session_id:
        with ctx.db.write() as conn:
            conn.execute(web_sessions.delete().where(web_sessions.c.id_hash == _hash(session_id)))
