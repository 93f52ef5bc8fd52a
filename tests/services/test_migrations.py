"""The migrations create exactly the schema of store/tables.py, on both backends."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.exc import IntegrityError

from moorage.services.context import Context
from moorage.store.database import Database
from moorage.store.tables import (
    filename_registry,
    files,
    metadata,
    projects,
    releases,
    roles,
    users,
)
from tests.services.conftest import START


def _differences(db: Database) -> list[object]:
    with db.read() as conn:
        return list(compare_metadata(MigrationContext.configure(conn), metadata))


def _table_names(db: Database) -> set[str]:
    with db.read() as conn:
        return set(sa.inspect(conn).get_table_names())


@pytest.fixture
def fresh_db(empty_db_url: str):  # type: ignore[no-untyped-def]
    db = Database(empty_db_url)
    try:
        yield db
    finally:
        db.dispose()


def test_upgrade_creates_exactly_the_schema(fresh_db: Database) -> None:
    assert _table_names(fresh_db) == set()
    assert fresh_db.current_revision() is None
    assert not fresh_db.is_current()

    fresh_db.upgrade()

    assert _differences(fresh_db) == []
    assert _table_names(fresh_db) == {t.name for t in metadata.sorted_tables} | {"alembic_version"}
    assert fresh_db.current_revision() == fresh_db.head_revision()
    assert fresh_db.is_current()


def test_upgrade_twice_is_idempotent(fresh_db: Database) -> None:
    fresh_db.upgrade()
    fresh_db.upgrade()
    assert _differences(fresh_db) == []
    assert fresh_db.is_current()
    with fresh_db.read() as conn:
        versions = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
    assert versions == [fresh_db.head_revision()]


def test_partial_index_and_check_constraints_exist(fresh_db: Database) -> None:
    """What compare_metadata does not compare: partial-index predicates, check constraints."""
    fresh_db.upgrade()
    with fresh_db.read() as conn:
        inspector = sa.inspect(conn)
        (sdist_index,) = [ix for ix in inspector.get_indexes("files")
                          if ix["name"] == "uq_files_one_sdist_per_release"]
        assert sdist_index["unique"]
        assert sdist_index["column_names"] == ["release_id"]
        options = sdist_index.get("dialect_options", {})
        where = str(options.get(f"{conn.dialect.name}_where", ""))
        assert "packagetype" in where and "'sdist'" in where, where
        assert {c["name"] for c in inspector.get_check_constraints("roles")} == {"ck_roles_role"}
        assert {c["name"] for c in inspector.get_check_constraints("files")} == {"ck_files_packagetype"}


def _violates(ctx: Context, statement: sa.Executable) -> bool:
    try:
        with ctx.db.write() as conn:
            conn.execute(statement)
    except IntegrityError:
        return True
    return False


def test_invariants_are_enforced_by_the_database(ctx: Context) -> None:
    """Inserting past the services: the constraints themselves refuse."""
    with ctx.db.write() as conn:
        uid = conn.execute(users.insert().values(name="u", is_admin=False, created_at=START)
                           .returning(users.c.id)).scalar_one()
        pid = conn.execute(projects.insert().values(
            name="Foo", normalized_name="foo", similarity_key="f00", status="active",
            created_at=START, last_serial=0, total_size=0).returning(projects.c.id)).scalar_one()
        rid = conn.execute(releases.insert().values(
            project_id=pid, version="1.0", canonical_version="1", created_at=START, metadata={},
        ).returning(releases.c.id)).scalar_one()

    def file_row(filename: str, packagetype: str, release_id: int = rid) -> dict[str, object]:
        return dict(release_id=release_id, project_id=pid, filename=filename, packagetype=packagetype,
                    python_version="source", sha256="0" * 64, blake2_256="0" * 64, md5="0" * 32,
                    size=1, upload_time=START)

    with ctx.db.write() as conn:
        conn.execute(files.insert().values(**file_row("foo-1.0.tar.gz", "sdist")))
        conn.execute(files.insert().values(**file_row("foo-1.0-py3-none-any.whl", "bdist_wheel")))
        conn.execute(files.insert().values(**file_row("foo-1.0-py2-none-any.whl", "bdist_wheel")))
        conn.execute(filename_registry.insert().values(filename="foo-1.0.tar.gz", sha256="0" * 64,
                                                       project="foo", registered_at=START))

    # one sdist per release
    assert _violates(ctx, files.insert().values(**file_row("foo-1.0.zip", "sdist")))
    # unique filename
    assert _violates(ctx, files.insert().values(**file_row("foo-1.0-py3-none-any.whl", "bdist_wheel")))
    # packagetype
    assert _violates(ctx, files.insert().values(**file_row("foo-1.0.egg", "bdist_egg")))
    # the foreign key to releases
    assert _violates(ctx, files.insert().values(**file_row("foo-1.0-py4-none-any.whl", "bdist_wheel",
                                                           release_id=rid + 1000)))
    # filename registry
    assert _violates(ctx, filename_registry.insert().values(filename="foo-1.0.tar.gz", sha256="1" * 64,
                                                            project="foo", registered_at=START))
    # look-alike and duplicate project names
    assert _violates(ctx, projects.insert().values(
        name="F0O", normalized_name="f0o", similarity_key="f00", status="active",
        created_at=START, last_serial=0, total_size=0))
    assert _violates(ctx, projects.insert().values(
        name="FOO", normalized_name="foo", similarity_key="other", status="active",
        created_at=START, last_serial=0, total_size=0))
    # one release per canonical version
    assert _violates(ctx, releases.insert().values(project_id=pid, version="1.0.0", canonical_version="1",
                                                   created_at=START, metadata={}))
    # roles
    assert _violates(ctx, roles.insert().values(project_id=pid, user_id=uid, role="admin"))
    assert _violates(ctx, users.insert().values(name="u", is_admin=False, created_at=START))

    # A second sdist in another release is fine: the index is partial, not global.
    with ctx.db.write() as conn:
        rid2 = conn.execute(releases.insert().values(
            project_id=pid, version="2.0", canonical_version="2", created_at=START, metadata={},
        ).returning(releases.c.id)).scalar_one()
        conn.execute(files.insert().values(**file_row("foo-2.0.tar.gz", "sdist", release_id=rid2)))
