"""Read side for the operator's commands, where no page reads the same: whether the index has
an account yet (the first start), and the local upload history opened from the database's URL
(`moorage policy simulate` on the index itself)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from moorage.domain.simulation import ProjectHistory
from moorage.store.database import Database
from moorage.store.history import count_projects, upload_histories
from moorage.store.tables import users


class DatabaseUnreadable(Exception):
    """The database could not be read; the message is the driver's, without SQLAlchemy's wrapping."""


def has_users(conn: Connection) -> bool:
    """Whether any account exists (none before the first start)."""
    return conn.execute(sa.select(users.c.id).limit(1)).first() is not None


def local_upload_histories(db_url: str, on_count: Callable[[int], None]) -> Iterator[ProjectHistory]:
    """Every project's upload history from the database at ``db_url``, one read connection held
    while they are read; ``on_count`` is told the number of projects before the first one. A
    database that cannot be read raises DatabaseUnreadable."""
    db = Database(db_url)
    try:
        with db.read() as conn:
            on_count(count_projects(conn))
            yield from upload_histories(conn)
    except sa.exc.SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        raise DatabaseUnreadable(str(cause).strip()) from None
    finally:
        db.dispose()
