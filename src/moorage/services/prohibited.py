"""Names no one may register, kept by admins in the database (besides the configuration's list)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from moorage.domain.decisions import not_found, require
from moorage.domain.lifecycle import may_prohibit_name
from moorage.domain.names import check_name, normalize
from moorage.services.context import Context
from moorage.services.events import append_event
from moorage.services.loading import resolve_actor
from moorage.store.tables import prohibited_names


@dataclass(frozen=True)
class ProhibitedName:
    name: str
    reason: str
    added_by: str
    added_at: datetime | None  # None: from the configuration file


def list_prohibited(ctx: Context) -> list[ProhibitedName]:
    with ctx.db.read() as conn:
        rows = conn.execute(sa.select(prohibited_names).order_by(prohibited_names.c.name)).all()
    found = [ProhibitedName(r.name, r.reason, r.added_by, r.added_at) for r in rows]
    stored = {p.name for p in found}
    found += [ProhibitedName(n, "upload.prohibited_names in the configuration", "configuration", None)
              for n in sorted(ctx.settings.upload.prohibited_names) if n not in stored]
    return sorted(found, key=lambda p: p.name)


def prohibit(ctx: Context, name: str, *, reason: str | None, as_user: str | None) -> bool:
    """Add a prohibited name; False if it already was."""
    require(check_name(name))
    normalized = normalize(name)
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        actor = resolve_actor(conn, as_user, 0)
        require(may_prohibit_name(actor, reason))
        if conn.execute(sa.select(prohibited_names.c.name).where(prohibited_names.c.name == normalized)).first():
            return False
        conn.execute(prohibited_names.insert().values(name=normalized, reason=(reason or "").strip(),
                                                      added_by=actor.name, added_at=now))
        append_event(conn, now=now, actor=actor.name, action="name-prohibited", subject=f"name:{normalized}",
                     payload={"name": normalized, "reason": (reason or "").strip()})
    return True


def lift_prohibition(ctx: Context, name: str, *, reason: str | None, as_user: str | None) -> None:
    normalized = normalize(name)
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        actor = resolve_actor(conn, as_user, 0)
        require(may_prohibit_name(actor, reason))
        gone = conn.execute(prohibited_names.delete().where(prohibited_names.c.name == normalized)).rowcount
        if not gone:
            raise not_found(f"{normalized!r} is not prohibited here (names from the configuration file stay "
                            "until the file changes)")
        append_event(conn, now=now, actor=actor.name, action="name-unprohibited", subject=f"name:{normalized}",
                     payload={"name": normalized, "reason": (reason or "").strip()})
