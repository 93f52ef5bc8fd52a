"""Appending to the event table: every change is one row, never updated or deleted."""

from __future__ import annotations

import functools
import logging
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from moorage import oplog
from moorage.log.compact import CompactRange
from moorage.log.entry import encode_entry
from moorage.log.merkle import leaf_hash
from moorage.store.database import after_commit
from moorage.store.tables import events, log_entries, log_state, projects

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
    _log_append(conn, int(serial), now, actor, action, subject, project, payload or {})
    if oplog.EVENTS.isEnabledFor(logging.INFO):  # the operator's log line, once committed
        after_commit(conn, functools.partial(oplog.event, int(serial), action, subject, project, actor,
                                             payload or {}))
    return int(serial)


def _log_append(conn: Connection, serial: int, now: datetime, actor: str, action: str, subject: str,
                project: str | None, payload: dict[str, Any]) -> None:
    """The event becomes the next log leaf, in the same transaction (so in commit order)."""
    state = conn.execute(sa.select(log_state.c.size, log_state.c.nodes).where(log_state.c.id == 1)
                         .with_for_update()).first()
    compact = CompactRange.from_json({"size": state.size, "nodes": state.nodes}) if state else CompactRange()
    entry = encode_entry(compact.size, serial, now, actor, action, subject, project, payload)
    leaf = leaf_hash(entry)
    conn.execute(log_entries.insert().values(idx=compact.size, serial=serial, entry=entry, leaf_hash=leaf))
    compact.append(leaf)
    nodes = compact.to_json()["nodes"]
    if state is None:
        conn.execute(log_state.insert().values(id=1, size=compact.size, nodes=nodes))
    else:
        conn.execute(log_state.update().where(log_state.c.id == 1).values(size=compact.size, nodes=nodes))

