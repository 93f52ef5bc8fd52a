"""Services against a real database: every test runs on SQLite and on PostgreSQL.

PostgreSQL: the server at 127.0.0.1:5432 (user postgres, trust auth). Each test session
(each xdist worker) creates a database of its own and drops it at the end; each test
starts from empty tables. Without a reachable server the PostgreSQL half is skipped with
the reason shown, unless the environment variable CI is set, when it fails instead.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from moorage.config import Settings
from moorage.domain.clock import ManualClock
from moorage.services import accounts
from moorage.services.context import Context, open_context
from moorage.store.database import MIGRATIONS
from moorage.store.tables import metadata

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_USER = "postgres"
PG_MAINTENANCE_DB = "test"

# Microseconds on purpose: they must survive the database and the PEP 700 format.
START = datetime(2026, 5, 4, 3, 2, 1, 123456, tzinfo=UTC)
START_PEP700 = "2026-05-04T03:02:01.123456Z"


def _pg_connect(dbname: str):  # type: ignore[no-untyped-def]
    import psycopg

    return psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=dbname,
                           autocommit=True, connect_timeout=5)


def pg_url(dbname: str) -> str:
    return f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{dbname}"


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A database of this session's own on the local PostgreSQL server; dropped at the end."""
    try:
        admin = _pg_connect(PG_MAINTENANCE_DB)
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        reason = f"PostgreSQL at {PG_HOST}:{PG_PORT} is not reachable: {first_line}"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI is set, so the PostgreSQL tests may not be skipped)",
                        pytrace=False)
        pytest.skip(reason)
    name = f"moorage_test_{os.getpid()}_{secrets.token_hex(4)}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield name
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def _pg_cleaner(pg_database: str) -> Iterator[object]:
    conn = _pg_connect(pg_database)
    conn.execute("SET lock_timeout = '20s'")
    with conn:
        yield conn


def _pg_reset_schema(conn: object) -> None:
    conn.execute("DROP SCHEMA public CASCADE")  # type: ignore[attr-defined]
    conn.execute("CREATE SCHEMA public")  # type: ignore[attr-defined]


def _pg_empty_tables(conn: object) -> None:
    """Empty every table when the schema is at head (fast); otherwise start from nothing."""
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    current = None
    if conn.execute("SELECT to_regclass('public.alembic_version')").fetchone()[0]:  # type: ignore[attr-defined]
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()  # type: ignore[attr-defined]
        current = row[0] if row else None
    if current != head:
        _pg_reset_schema(conn)
        return
    names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    conn.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")  # type: ignore[attr-defined]


BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def empty_db_url(backend: str, data_dir: Path, request: pytest.FixtureRequest) -> str:
    """The URL of a database with no tables at all (for the migration tests)."""
    if backend == "sqlite":
        data_dir.mkdir(parents=True, exist_ok=True)
        return Settings(data_dir=data_dir).db_url
    name = request.getfixturevalue("pg_database")
    _pg_reset_schema(request.getfixturevalue("_pg_cleaner"))
    return pg_url(name)


@pytest.fixture
def settings(backend: str, data_dir: Path, request: pytest.FixtureRequest) -> Settings:
    if backend == "sqlite":
        return Settings(data_dir=data_dir)
    name = request.getfixturevalue("pg_database")
    _pg_empty_tables(request.getfixturevalue("_pg_cleaner"))
    return Settings(data_dir=data_dir, database_url=pg_url(name))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def ctx(settings: Settings, clock: ManualClock) -> Iterator[Context]:
    context = open_context(settings, clock, migrate=True)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def token(ctx: Context) -> str:
    """A user-wide API token of the user "alice" (no password: argon2 is slow on purpose)."""
    accounts.add_user(ctx, "alice", password=None)
    return accounts.create_token(ctx, "alice")[1]
