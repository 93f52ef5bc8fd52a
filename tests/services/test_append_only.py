"""Events and log entries are append-only in the database itself, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from moorage.services.accounts import add_user, create_token
from moorage.services.context import Context
from moorage.store.tables import events, log_entries


def _rows(ctx: Context, table: sa.Table) -> list[tuple[object, ...]]:
    with ctx.db.read() as conn:
        return [tuple(r) for r in conn.execute(sa.select(table).order_by(*table.primary_key.columns))]


@pytest.mark.parametrize("statement", [
    lambda: events.update().values(actor="someone else"),
    lambda: events.delete(),
    lambda: events.delete().where(events.c.serial == 1),
    lambda: log_entries.update().values(entry=b"rewritten"),
    lambda: log_entries.delete().where(log_entries.c.idx == 0),
], ids=["update-events", "delete-events", "delete-one-event", "update-log", "delete-log-entry"])
def test_history_cannot_be_rewritten_through_the_database(ctx: Context, statement: object) -> None:
    add_user(ctx, "mallory", password="a password for the tests")
    create_token(ctx, "mallory")
    before = (_rows(ctx, events), _rows(ctx, log_entries))
    assert before[0] and before[1]
    with pytest.raises(DBAPIError) as refused, ctx.db.write() as conn:
        conn.execute(statement())  # type: ignore[operator]
    assert "append-only" in str(refused.value)
    assert (_rows(ctx, events), _rows(ctx, log_entries)) == before
    create_token(ctx, "mallory")  # and appending goes on as before
    assert len(_rows(ctx, events)) == len(before[0]) + 1
