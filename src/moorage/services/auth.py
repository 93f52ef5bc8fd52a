"""Who is asking: API tokens from an Authorization header (Basic __token__ or Bearer)."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

import sqlalchemy as sa

from moorage.domain.accounts import check_token_use
from moorage.domain.policy import TokenView, check_token
from moorage.services.accounts import find_token, record_token_use
from moorage.services.context import Context
from moorage.store.tables import users


@dataclass(frozen=True)
class Caller:
    token: TokenView
    user_id: int
    is_admin: bool


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """(user, password) from an ``Authorization: Basic ...`` header, or None."""
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(value.strip()).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user, password


def token_from_header(header: str | None) -> str | None:
    """The API token: ``Bearer TOKEN``, or basic auth as ``__token__``."""
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() == "bearer":
        return value.strip() or None
    creds = basic_credentials(header)
    return creds[1] if creds is not None and creds[0] == "__token__" else None


def caller(ctx: Context, header: str | None, address: str | None = None) -> Caller | None:
    """The valid token's caller, or None (no, unknown, revoked, expired or long-unused token)."""
    token = token_from_header(header)
    if token is None:
        return None
    now = ctx.clock.now()
    with ctx.db.read() as conn:
        found = find_token(conn, token)
        if found is None or not check_token(found[0], now).allowed:
            return None
        view = found[0]
        if view.created_at is not None and not check_token_use(ctx.settings.accounts, view.created_at,
                                                               view.last_used_at, now).allowed:
            return None
        is_admin = bool(conn.execute(sa.select(users.c.is_admin).where(users.c.id == found[1])).scalar())
    record_token_use(ctx, view, address)
    return Caller(view, found[1], is_admin)


def token_owner(ctx: Context, token: str) -> str | None:
    """The name of the user a known token belongs to (revoked or expired too), for the log line
    of a refusal; None for a token this index does not know."""
    with ctx.db.read() as conn:
        found = find_token(conn, token)
    return found[0].user_name if found is not None else None


def admin_from_request(ctx: Context, header: str | None) -> bool:
    who = caller(ctx, header)
    return who is not None and who.is_admin
