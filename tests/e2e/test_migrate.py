"""`moorage db migrate-from-sqlite SRC`: an embedded index filled through a real server moves
into PostgreSQL; a server on the PostgreSQL database serves every file byte for byte, the same
simple pages, a log that verifies with the old key and continues, and takes new uploads. And
the refusals: a tampered blob (nothing committed), a database that is not empty, a different
key in the target, a SQLite target."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sqlite3
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urljoin

import pytest
import sqlalchemy as sa

from moorage.config import Settings
from moorage.domain.clock import ManualClock
from moorage.log.keys import load_or_create
from moorage.log.verify import verify as verify_client
from moorage.services import accounts, deletion, lifecycle
from moorage.services.context import open_context
from moorage.services.migrate import MigrationFailed, MigrationRefused, migrate_from_sqlite
from moorage.store.database import Database
from moorage.store.tables import metadata
from tests.services.helpers import upload
from tests.support.clients import twine_upload
from tests.support.dists import Dist, make_sdist, make_wheel
from tests.support.index import small_index
from tests.support.s3 import AWS_ENV, start_moto
from tests.support.server import Server, cli_env, run_cli, start_server
from tests.support.upload import post_upload

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

PG = dict(host="127.0.0.1", port=5432, user="postgres")
JSON_V1 = {"Accept": "application/vnd.pypi.simple.v1+json"}


@pytest.fixture(scope="module")
def new_database() -> Iterator[Callable[[], str]]:
    """Makes fresh PostgreSQL databases (migrated to head) and drops them afterwards."""
    try:
        import psycopg

        admin = psycopg.connect(dbname="test", autocommit=True, connect_timeout=5, **PG)
    except Exception as exc:  # psycopg.OperationalError, or psycopg missing
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL at 127.0.0.1:5432 is needed in CI: {exc}")
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is not reachable: {exc}")
    made: list[str] = []

    def make() -> str:
        name = f"moorage_mig_{os.getpid()}_{secrets.token_hex(3)}"
        admin.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"

    yield make
    for name in made:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def sqlite_env(data_dir: Path) -> dict[str, str]:
    """The embedded index, also in the test suite's PostgreSQL pass."""
    return {**cli_env(data_dir), "MOORAGE_DATABASE_URL": f"sqlite:///{(data_dir / 'moorage.db').resolve()}"}


def pg_env(data_dir: Path, url: str) -> dict[str, str]:
    return {**cli_env(data_dir), "MOORAGE_DATABASE_URL": url}


def migrate(data_dir: Path, url: str, src: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_cli(data_dir, "db", "migrate-from-sqlite", str(src), *extra, env=pg_env(data_dir, url), check=False)


def upgrade(url: str) -> None:
    """`moorage db upgrade`, in this process."""
    db = Database(url)
    try:
        db.upgrade()
    finally:
        db.dispose()


def row_counts(url: str) -> dict[str, int]:
    db = Database(url)
    try:
        with db.read() as conn:
            return {t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                    for t in metadata.sorted_tables}
    finally:
        db.dispose()


def is_empty(url: str) -> bool:
    """As `moorage db upgrade` leaves it: no rows but the empty log's state."""
    return {name: rows for name, rows in row_counts(url).items() if rows} == {"log_state": 1}


def get(url: str, headers: dict[str, str] | None = None) -> bytes:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=30) as resp:
        return bytes(resp.read())


def pages(server: Server, projects: list[str]) -> dict[str, object]:
    """The simple index and each project's page (JSON), and the bytes of every file offered."""
    out: dict[str, object] = {"": json.loads(get(server.simple, JSON_V1))}
    for project in projects:
        page = json.loads(get(server.simple + project + "/", JSON_V1))
        out[project] = page
        for f in page["files"]:
            data = get(urljoin(server.simple + project + "/", f["url"]))
            assert hashlib.sha256(data).hexdigest() == f["hashes"]["sha256"], f["filename"]
            out[f["filename"]] = data
    return out


def tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_an_embedded_index_moves_to_postgresql_and_carries_on(tmp_path: Path, new_database: Callable[[], str]) -> None:
    src, dists = tmp_path / "old" / "data", tmp_path / "dist"
    old = start_server(src, extra_env={"MOORAGE_DATABASE_URL": sqlite_env(src)["MOORAGE_DATABASE_URL"]})
    try:
        token = old.admin_token
        wheel, sdist = make_wheel(dists, "moving", "1.0"), make_sdist(dists, "moving", "1.0")
        result = twine_upload(old.legacy, token, wheel.path, sdist.path)
        assert result.returncode == 0, result.stdout + result.stderr
        yanked, deleted = make_wheel(dists, "moving", "1.1"), make_wheel(dists, "moving", "2.0")
        other = make_wheel(dists, "other-thing", "0.1", requires=["moving>=1"])
        for dist in (yanked, deleted, other):
            assert post_upload(old.legacy, token, dist.path)[0] == 200
        # As the operator's commands do (in this process: quicker than a command each).
        ctx = open_context(Settings(data_dir=src))
        try:
            lifecycle.yank(ctx, "moving", "1.1", reason="broken on Windows")
            deletion.delete(ctx, "moving", "2.0", deleted.filename, reason="uploaded by mistake")
            lifecycle.set_status(ctx, "other-thing", "deprecated", reason="use moving", successor="moving")
        finally:
            ctx.close()
        key = load_or_create(src / "log-signing-key").verifier.vkey()
        state = tmp_path / "verify-state"
        report = verify_client(old.url, key=key, state_file=state, files=True)  # a checkpoint is signed and kept
        assert report.ok, report.findings
        before = pages(old, ["moving", "other-thing"])
        assert yanked.filename in before and deleted.filename not in before
    finally:
        old.stop()
    with sqlite3.connect(src / "moorage.db") as conn:
        last_serial = conn.execute("SELECT max(serial) FROM events").fetchone()[0]
    conn.close()
    src_files = tree(src)

    url, dst = new_database(), tmp_path / "new" / "data"
    upgrade = run_cli(dst, "db", "upgrade", env=pg_env(dst, url))
    assert "database at revision" in upgrade.stderr
    done = migrate(dst, url, src)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "migrated 5 files, 10 blobs" in done.stderr
    assert "table events" in done.stdout and "log root" in done.stdout
    assert tree(src) == src_files  # SRC is only read
    assert (dst / "log-signing-key").read_text() == (src / "log-signing-key").read_text()
    assert (dst / "web-secret").read_text() == (src / "web-secret").read_text()
    blob = dst / "blobs" / deleted.sha256[:2] / deleted.sha256[2:4] / deleted.sha256
    assert blob.read_bytes() == deleted.path.read_bytes()  # kept for retention and restore

    new = start_server(dst, extra_env={"MOORAGE_DATABASE_URL": url})
    try:
        assert pages(new, ["moving", "other-thing"]) == before
        verified = run_cli(dst, "verify", "--index", new.url, "--key", key, "--state", str(state), "--files")
        assert "ok: the index agrees with its log" in verified.stdout
        later = make_wheel(dists, "moving", "3.0")
        assert post_upload(new.legacy, token, later.path)[0] == 200  # the token came along
        # Its events take the next serials (the sequence was moved past the copied ones).
        events = json.loads(get(new.url + f"api/projects/moving/events?after={last_serial}"))["events"]
        assert [e["serial"] for e in events] == list(range(last_serial + 1, last_serial + 1 + len(events)))
        assert events[-1]["action"] == "file-added" and later.filename in events[-1]["subject"], events
        assert pages(new, ["moving"])[later.filename] == later.path.read_bytes()
        report = verify_client(new.url, key=key, state_file=state, files=True)
        assert report.ok, report.findings
    finally:
        new.stop()


@pytest.fixture
def small(tmp_path: Path) -> tuple[Path, Dist]:
    """A small embedded index built in-process (no server): (its data directory, one wheel)."""
    settings, wheel = small_index(tmp_path)
    load_or_create(settings.data_dir / "log-signing-key")
    return settings.data_dir, wheel


def test_a_tampered_blob_aborts_and_commits_nothing(tmp_path: Path, small: tuple[Path, Dist],
                                                    new_database: Callable[[], str]) -> None:
    src, wheel = small
    blob = src / "blobs" / wheel.sha256[:2] / wheel.sha256[2:4] / wheel.sha256
    good = blob.read_bytes()
    blob.write_bytes(good + b"\0")
    url, dst = new_database(), tmp_path / "target"
    upgrade(url)
    result = migrate(dst, url, src)
    assert result.returncode == 1, result.stderr
    assert f"moorage: migrate-from-sqlite failed: {wheel.filename}: its blob {wheel.sha256} in {src / 'blobs'} " \
           "does not match its sha256" in result.stderr
    assert is_empty(url)
    assert not [p for p in (dst / "blobs").rglob("*") if p.is_file()]  # nothing left behind
    assert not (dst / "log-signing-key").exists()

    # Mended, it goes through; a second run into the filled database is refused.
    blob.write_bytes(good)
    migrate_from_sqlite(Settings(data_dir=dst, database_url=url), src)
    filled = row_counts(url)
    again = migrate(dst, url, src)
    assert again.returncode == 2
    assert "moorage: migrate-from-sqlite refused: the target database is not empty (" in again.stderr
    assert "a migration never merges into an existing index" in again.stderr
    assert row_counts(url) == filled


def test_refusals_change_nothing(tmp_path: Path, small: tuple[Path, Dist], new_database: Callable[[], str]) -> None:
    src, _ = small
    url, dst = new_database(), tmp_path / "target"
    settings = Settings(data_dir=dst, database_url=url)
    # The target database has not been upgraded yet.
    with pytest.raises(MigrationRefused, match="run `moorage db upgrade`"):
        migrate_from_sqlite(settings, src)
    upgrade(url)
    # A different log key in the target would fork the log.
    load_or_create(dst / "log-signing-key")
    with pytest.raises(MigrationRefused, match="log-signing-key already exists and holds another key"):
        migrate_from_sqlite(settings, src)
    assert is_empty(url)
    # A SQLite target is not a migration.
    result = run_cli(tmp_path / "other", "db", "migrate-from-sqlite", str(src), env=sqlite_env(tmp_path / "other"),
                     check=False)
    assert result.returncode == 2
    assert "the configured database_url is sqlite; migrate-from-sqlite moves an embedded index into PostgreSQL" \
        in result.stderr


def test_the_blobs_can_move_into_an_s3_bucket(tmp_path: Path, small: tuple[Path, Dist],
                                              new_database: Callable[[], str]) -> None:
    started = start_moto(tmp_path)
    if isinstance(started, str):
        if os.environ.get("CI"):
            pytest.fail(f"moto's S3 server must start in CI: {started}")
        pytest.skip(f"moto's S3 server could not start: {started}")
    try:
        src, _ = small
        s3 = started.client()
        bucket = f"moorage-mig-{secrets.token_hex(4)}"
        s3.create_bucket(Bucket=bucket)
        config = tmp_path / "moorage.toml"
        config.write_text(f'[blobs]\nstore = "s3"\nbucket = "{bucket}"\nprefix = "pkgs/"\n'
                          f'endpoint_url = "{started.endpoint}"\n')
        url, dst = new_database(), tmp_path / "target"
        upgrade(url)
        result = run_cli(dst, "db", "migrate-from-sqlite", str(src), check=False,
                         env={**pg_env(dst, url), **AWS_ENV, "MOORAGE_CONFIG": str(config)})
        assert result.returncode == 0, result.stderr
        expected = {str(p.relative_to(src / "blobs")): p.read_bytes()
                    for p in (src / "blobs").rglob("*") if p.is_file() and p.parent.name != "tmp"}
        assert len(expected) == 4  # a wheel, an sdist and their metadata
        found = {obj["Key"] for obj in s3.list_objects_v2(Bucket=bucket)["Contents"]}
        assert found == {f"pkgs/{name}" for name in expected}
        for name, data in expected.items():
            assert s3.get_object(Bucket=bucket, Key=f"pkgs/{name}")["Body"].read() == data
        assert not [p for p in (dst / "blobs").rglob("*") if p.is_file()]  # nothing staged is left on this host
    finally:
        started.stop()


def test_purged_bytes_move_as_missing_and_other_missing_bytes_fail(tmp_path: Path,
                                                                    new_database: Callable[[], str]) -> None:
    src = tmp_path / "src"
    start = datetime(2026, 1, 5, tzinfo=UTC)
    ctx = open_context(Settings(data_dir=src), ManualClock(start), migrate=True)
    try:
        accounts.add_user(ctx, "alice", password=None)
        token = accounts.create_token(ctx, "alice")[1]
        kept, gone = make_wheel(tmp_path / "dist", "tidy", "1.0"), make_wheel(tmp_path / "dist", "tidy", "1.1")
        upload(ctx, token, kept)
        upload(ctx, token, gone)
        deletion.delete(ctx, "tidy", "1.1", gone.filename, reason="mistake")
        assert isinstance(ctx.clock, ManualClock)
        ctx.clock.advance(ctx.settings.lifecycle.retention + timedelta(days=1))
        assert deletion.purge(ctx) == [gone.filename]
    finally:
        ctx.close()
    url, dst = new_database(), tmp_path / "target"
    upgrade(url)
    settings = Settings(data_dir=dst, database_url=url)
    blob = src / "blobs" / kept.sha256[:2] / kept.sha256[2:4] / kept.sha256
    data = blob.read_bytes()
    blob.unlink()  # lost, not purged
    with pytest.raises(MigrationFailed, match=f"{kept.filename}: its blob {kept.sha256} is missing from"):
        migrate_from_sqlite(settings, src)
    assert is_empty(url)
    blob.write_bytes(data)
    done = migrate_from_sqlite(settings, src)
    assert (done.files, done.deleted_files, done.blobs, done.purged_blobs) == (2, 1, 2, 2)
    assert row_counts(url)["files"] == 2  # the purged file's row stays, as in SRC
