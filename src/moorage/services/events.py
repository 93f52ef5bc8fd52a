"""Appending to the event table: every change is one row, never updated or deleted."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from moorage.store.tables import events, projects

# Held for the rest of the transaction on PostgreSQL so serials follow commit order.
_EVENT_LOCK_KEY = 0x6D6F6F72  # "moor"


def lock_event_log(conn: Connection) -> None:
    """Wait for the transactions that are appending events, and hold off new ones until this
    transaction ends. PostgreSQL: an advisory transaction lock; SQLite writers already hold
    the one write lock (BEGIN IMMEDIATE), so there is nothing more to take."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _EVENT_LOCK_KEY})


def append_event(
    conn: Connection,
    *,
    now: datetime,
    actor: str,
    action: str,
    subject: str,
    project: str | None = None,
    payload: dict[str, Any] | None = None,
) -> int:
    lock_event_log(conn)
    serial = conn.execute(
        events.insert()
        .values(created_at=now, actor=actor, action=action, project=project, subject=subject,
                payload=payload or {})
        .returning(events.c.serial)
    ).scalar_one()
    if project is not None:
        conn.execute(projects.update().where(projects.c.normalized_name == project).values(last_serial=serial))
    return int(serial)

