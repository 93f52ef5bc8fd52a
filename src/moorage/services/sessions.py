"""Browser sessions: sign in with a password (argon2), rate-limited per account; sign out.

The cookie carries 256 random bits; the database keeps only their SHA-256, so a copy of the
database does not let anyone in. Failed attempts are rows, not process memory, so the limit
holds across worker processes. Sign-ins are not events: the log is public and addresses are not.

An account with a second factor signs in in two steps: the right password opens a *pending*
session, which is not signed in; services/factors.py turns it into a real one (under a new id)
once a factor checks out. Failures of either step count toward the same limit.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from moorage.config import WebSettings
from moorage.domain.decisions import Decision, Denied
from moorage.services.accounts import verify_password
from moorage.services.context import Context
from moorage.store.accounts import has_second_factor
from moorage.store.tables import sign_in_failures, users, web_sessions

# Time to enter the second factor after the password: enough to find the phone or the key.
PENDING_LIFETIME = timedelta(minutes=10)


@dataclass(frozen=True)
class SessionUser:
    session_hash: str
    user_id: int
    name: str
    is_admin: bool
    expires_at: datetime
    # When this session last passed a second-factor check (None: never).
    factor_at: datetime | None = None


def session_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()



def lock_decision(conn: Connection, web: WebSettings, name: str, now: datetime) -> Decision:
    """Refused while the account has had `sign_in_attempts` failures within the lockout; the
    lock lifts when the oldest of them is older than the lockout."""
    since = now - web.sign_in_lockout
    failures = list(conn.execute(sa.select(sign_in_failures.c.at).where(
        sign_in_failures.c.user_name == name, sign_in_failures.c.at > since)
        .order_by(sign_in_failures.c.at)).scalars())
    if len(failures) < web.sign_in_attempts:
        return Decision.allow()
    until = failures[-web.sign_in_attempts] + web.sign_in_lockout
    return Decision.deny("sign-in-rate-limit",
                         f"too many failed sign-ins for this account; try again after {until:%d %b %Y %H:%M} UTC",
                         until=until)


def record_failure(conn: Connection, name: str, address: str, now: datetime) -> None:
    conn.execute(sign_in_failures.insert().values(user_name=name, address=address[:64], at=now))


def start_session(conn: Connection, user_id: int, now: datetime, lifetime: timedelta, *,
                  pending: bool = False, factor_at: datetime | None = None) -> str:
    """A new session row (expired ones are swept on the way); returns the id for the cookie."""
    session_id = secrets.token_urlsafe(32)
    conn.execute(web_sessions.delete().where(web_sessions.c.expires_at <= now))
    conn.execute(web_sessions.insert().values(id_hash=session_hash(session_id), user_id=user_id, created_at=now,
                                              expires_at=now + lifetime, pending_factor=pending,
                                              factor_at=factor_at))
    return session_id


def sign_in(ctx: Context, name: str, password: str, *, address: str) -> str:
    """A new session id for the cookie; raises Denied (wrong credentials or too many tries).

    For an account with a second factor the session is pending (see pending_user)."""
    now = ctx.clock.now()
    web = ctx.settings.web
    name = name.replace("\x00", "").strip()[:100]
    with ctx.db.read() as conn:
        lock = lock_decision(conn, web, name, now)
    if not lock.allowed:
        raise Denied(lock)
    if not verify_password(ctx, name, password):
        with ctx.db.write() as conn:
            record_failure(conn, name, address, now)
        raise Denied.by("sign-in-failed", "the user name or the password is wrong")
    with ctx.db.write() as conn:
        uid = conn.execute(sa.select(users.c.id).where(users.c.name == name)).scalar_one()
        if has_second_factor(conn, uid):
            # The failures stay until the factor checks out: otherwise the password alone would
            # reset the count, and the factor could be guessed without end.
            return start_session(conn, uid, now, PENDING_LIFETIME, pending=True)
        conn.execute(sign_in_failures.delete().where(sign_in_failures.c.user_name == name))
        return start_session(conn, uid, now, web.session_lifetime)


def _session(ctx: Context, session_id: str | None, *, pending: bool) -> SessionUser | None:
    if not session_id:
        return None
    key = session_hash(session_id)
    with ctx.db.read() as conn:
        row = conn.execute(sa.select(web_sessions.c.expires_at, web_sessions.c.pending_factor,
                                     web_sessions.c.factor_at, users.c.id, users.c.name, users.c.is_admin)
                           .join(users, users.c.id == web_sessions.c.user_id)
                           .where(web_sessions.c.id_hash == key)).first()
    if row is None or row.expires_at <= ctx.clock.now() or bool(row.pending_factor) != pending:
        return None
    return SessionUser(key, int(row.id), row.name, bool(row.is_admin), row.expires_at, row.factor_at)


def current_user(ctx: Context, session_id: str | None) -> SessionUser | None:
    """Who is signed in with this cookie; a session still waiting for its second factor is nobody."""
    return _session(ctx, session_id, pending=False)


def pending_user(ctx: Context, session_id: str | None) -> SessionUser | None:
    """The account whose password was right and whose second factor is awaited, if any."""
    return _session(ctx, session_id, pending=True)


def sign_out(ctx: Context, session_id: str | None) -> None:
    if session_id:
        with ctx.db.write() as conn:
            conn.execute(web_sessions.delete().where(web_sessions.c.id_hash == session_hash(session_id)))
