"""Read side for the account rules: whether an account has a second factor, and a project's
critical designation."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from moorage.domain.accounts import CriticalFacts
from moorage.store.tables import critical_projects, second_factors


def has_second_factor(conn: Connection, user_id: int) -> bool:
    """A TOTP app or a security key; recovery codes alone are not a factor."""
    return conn.execute(sa.select(second_factors.c.id).where(second_factors.c.user_id == user_id).limit(1)
                        ).first() is not None


def critical_facts(conn: Connection, project_id: int | None) -> CriticalFacts | None:
    if project_id is None:
        return None
    return designation(conn, critical_projects.c.project_id == project_id)


def designation(conn: Connection, where: sa.ColumnElement[bool]) -> CriticalFacts | None:
    row = conn.execute(sa.select(critical_projects.c.since, critical_projects.c.grace_until, critical_projects.c.rule)
                       .where(where)).first()
    return CriticalFacts(row.since, row.grace_until, row.rule) if row is not None else None
