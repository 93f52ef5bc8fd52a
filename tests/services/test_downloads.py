"""Download counting against a real database (SQLite and PostgreSQL): batches, upserts that
add, the sums of the last day / week / month, failed flushes, the lifespan's task."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from moorage.config import DownloadSettings
from moorage.domain.accounts import CriticalFacts
from moorage.domain.clock import ManualClock
from moorage.domain.downloads import DownloadSums
from moorage.services.context import Context
from moorage.services.downloads import DownloadCounter
from moorage.store.database import Database
from moorage.store.downloads import add_counts, project_downloads, project_ids
from moorage.store.tables import critical_projects, download_counts
from tests.services.helpers import upload
from tests.support.dists import make_wheel
from tests.support.loops import run_in_own_loop

PIP = "pip/24.0 CPython/3.12.1"
MIRROR = "bandersnatch/6.5.0 (cpython 3.12.1-final0, Linux x86_64)"



@pytest.fixture
def projects(ctx: Context, token: str, dists: Path) -> dict[str, int]:
    for name in ("alpha", "beta"):
        upload(ctx, token, make_wheel(dists, name, "1.0"))
    with ctx.db.read() as conn:
        return project_ids(conn, ["alpha", "beta"])


def configure(ctx: Context, **kwargs: object) -> None:
    ctx.settings = replace(ctx.settings, downloads=replace(DownloadSettings(), **kwargs))


def stored(ctx: Context) -> dict[tuple[int, date, str], int]:
    with ctx.db.read() as conn:
        return {(r.project_id, r.day, r.kind): int(r.count) for r in conn.execute(sa.select(download_counts))}


def sums_of(ctx: Context, name: str) -> tuple[DownloadSums, DownloadSums]:
    with ctx.db.read() as conn:
        found = project_downloads(conn, name, ctx.clock.now().date())
    return found.client, found.mirror


@contextmanager
def counting_writes(ctx: Context) -> Iterator[list[int]]:
    """How many write transactions the database is asked for meanwhile."""
    calls: list[int] = []
    original = ctx.db.write

    @contextmanager
    def write() -> Iterator[sa.Connection]:
        calls.append(1)
        with original() as conn:
            yield conn

    ctx.db.write = write  # type: ignore[method-assign]
    try:
        yield calls
    finally:
        ctx.db.write = original  # type: ignore[method-assign]


def down_database(backend: str, tmp_path: Path) -> Database:
    """A database that cannot be reached: nothing listens on the port, or the file is a directory."""
    if backend == "postgresql":
        return Database("postgresql+psycopg://postgres@127.0.0.1:9/moorage_down")
    target = tmp_path / "down.db"
    target.mkdir()
    return Database(f"sqlite:///{target}")


def test_downloads_are_batched_into_one_transaction_per_flush(ctx: Context, clock: ManualClock,
                                                             projects: dict[str, int]) -> None:
    configure(ctx, dedupe_window=timedelta(0))
    counter = DownloadCounter(ctx)
    with counting_writes(ctx) as writes:
        for i in range(250):
            assert counter.record("alpha", f"10.0.{i // 256}.{i % 256}", PIP)
        for _ in range(40):
            assert counter.record("beta", "10.1.0.1", PIP)
        for _ in range(3):
            assert counter.record("beta", "10.1.0.2", MIRROR)
        assert writes == []  # recording never touches the database
        assert stored(ctx) == {}
        assert counter.pending() == 293
        assert counter.flush() == 293
        assert len(writes) == 1
        assert counter.flush() == 0  # nothing pending: no transaction at all
        assert len(writes) == 1
    today = clock.now().date()
    assert stored(ctx) == {(projects["alpha"], today, "client"): 250, (projects["beta"], today, "client"): 40,
                           (projects["beta"], today, "mirror"): 3}
    assert counter.pending() == 0


def test_upserts_add_to_existing_counts_across_flushes_and_days(ctx: Context, clock: ManualClock,
                                                                projects: dict[str, int]) -> None:
    configure(ctx, dedupe_window=timedelta(0))
    alpha = projects["alpha"]
    first_day = clock.now().date()
    with ctx.db.write() as conn:  # counted earlier, by another process
        add_counts(conn, {(alpha, first_day, "client"): 1000})
    counter = DownloadCounter(ctx)
    for _ in range(3):
        counter.record("alpha", "10.0.0.1", PIP)
    assert counter.flush() == 3
    assert stored(ctx) == {(alpha, first_day, "client"): 1003}
    for _ in range(4):
        counter.record("alpha", "10.0.0.1", PIP)
    assert counter.flush() == 4
    assert stored(ctx) == {(alpha, first_day, "client"): 1007}
    # Recorded late on one day, flushed on the next: the download's own day counts.
    clock.set(datetime.combine(first_day, datetime.max.time(), tzinfo=UTC) - timedelta(seconds=1))
    counter.record("alpha", "10.0.0.1", PIP)
    clock.advance(timedelta(seconds=2))
    counter.record("alpha", "10.0.0.1", PIP)
    counter.record("alpha", "10.0.0.1", MIRROR)
    assert counter.flush() == 3
    second_day = first_day + timedelta(days=1)
    assert stored(ctx) == {(alpha, first_day, "client"): 1008, (alpha, second_day, "client"): 1,
                           (alpha, second_day, "mirror"): 1}


def test_two_processes_flushing_the_same_rows_add_up(ctx: Context, projects: dict[str, int]) -> None:
    configure(ctx, dedupe_window=timedelta(0))
    counters = [DownloadCounter(ctx), DownloadCounter(ctx)]
    rounds = 5
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def work(counter: DownloadCounter) -> None:
        try:
            for _ in range(rounds):
                for name in ("beta", "alpha"):
                    for kind_agent in (PIP, MIRROR):
                        counter.record(name, "10.0.0.1", kind_agent)
                barrier.wait(timeout=30)
                assert counter.flush() == 4
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(c,)) for c in counters]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert sorted(stored(ctx).values()) == [2 * rounds] * 4


def test_last_day_week_and_month(ctx: Context, clock: ManualClock, projects: dict[str, int]) -> None:
    configure(ctx, dedupe_window=timedelta(0))
    counter = DownloadCounter(ctx)
    # Day by day for 40 days: on day i, i + 1 downloads by clients and one by a mirror.
    for i in range(40):
        for _ in range(i + 1):
            counter.record("alpha", "10.0.0.1", PIP)
        counter.record("alpha", "10.0.0.9", MIRROR)
        assert counter.flush() == i + 2
        if i < 39:
            clock.advance(timedelta(days=1))
    client, mirror = sums_of(ctx, "alpha")
    assert client == DownloadSums(last_day=40, last_week=sum(range(34, 41)), last_month=sum(range(11, 41)))
    assert mirror == DownloadSums(1, 7, 30)
    assert sums_of(ctx, "beta") == (DownloadSums(0, 0, 0), DownloadSums(0, 0, 0))
    # A week later with no downloads: the day and week are empty, the month has the rest.
    clock.advance(timedelta(days=7))
    client, mirror = sums_of(ctx, "alpha")
    assert client == DownloadSums(0, 0, sum(range(18, 41)))
    assert mirror == DownloadSums(0, 0, 23)


def test_the_dedupe_window_counts_one_address_once_and_forgets_it(ctx: Context, clock: ManualClock,
                                                                  projects: dict[str, int]) -> None:
    counter = DownloadCounter(ctx)  # the default window: an hour
    assert counter.record("alpha", "10.0.0.1", PIP)
    clock.advance(timedelta(minutes=10))
    assert not counter.record("alpha", "10.0.0.1", "uv/0.4.18")  # same address, another client
    assert counter.record("beta", "10.0.0.1", PIP)
    assert counter.record("alpha", "10.0.0.2", PIP)
    assert counter.record("alpha", "10.0.0.1", MIRROR)  # mirrors are counted apart
    assert counter.flush() == 4
    assert counter.dedupe_entries() == 4
    clock.advance(timedelta(minutes=50))  # an hour after the first download
    assert counter.flush() == 0
    assert counter.dedupe_entries() == 3  # the flush dropped what the window no longer needs
    assert counter.record("alpha", "10.0.0.1", PIP)
    assert not counter.record("beta", "10.0.0.1", PIP)
    clock.advance(timedelta(minutes=10))
    assert counter.flush() == 1
    assert counter.dedupe_entries() == 1  # only the one counted again an hour later is left
    assert sums_of(ctx, "alpha")[0].last_day == 3


def test_a_failed_flush_keeps_the_counts_and_logs_once(ctx: Context, backend: str, tmp_path: Path,
                                                       projects: dict[str, int],
                                                       caplog: pytest.LogCaptureFixture) -> None:
    configure(ctx, dedupe_window=timedelta(0))
    counter = DownloadCounter(ctx)
    for _ in range(5):
        counter.record("alpha", "10.0.0.1", PIP)
    working = ctx.db
    ctx.db = down_database(backend, tmp_path)
    try:
        with caplog.at_level(logging.WARNING, logger="moorage.services.downloads"):
            assert counter.flush() == 0
            assert counter.pending() == 5
            for _ in range(2):
                counter.record("alpha", "10.0.0.1", PIP)
                counter.record("beta", "10.0.0.1", MIRROR)
            assert counter.flush() == 0
            assert counter.pending() == 9
        failures = [r for r in caplog.records if "failed" in r.getMessage()]
        assert len(failures) == 1, [r.getMessage() for r in caplog.records]
    finally:
        ctx.db.dispose()
        ctx.db = working
    assert stored(ctx) == {}
    counter.record("alpha", "10.0.0.1", PIP)
    assert counter.flush() == 10
    assert counter.pending() == 0
    assert sums_of(ctx, "alpha")[0].last_day == 8
    assert sums_of(ctx, "beta")[1].last_day == 2


def test_counting_off_records_nothing(ctx: Context, projects: dict[str, int]) -> None:
    configure(ctx, count=False)
    counter = DownloadCounter(ctx)
    assert not counter.record("alpha", "10.0.0.1", PIP)
    assert counter.pending() == 0
    assert counter.flush() == 0

    async def lifespan() -> None:
        await counter.start()
        assert counter._task is None  # no background task either
        await counter.stop()

    run_in_own_loop(lifespan())
    assert stored(ctx) == {}


def test_the_lifespan_task_flushes_periodically_and_at_stop(ctx: Context, projects: dict[str, int]) -> None:
    configure(ctx, dedupe_window=timedelta(0), flush_interval=0.05)
    counter = DownloadCounter(ctx)

    async def lifespan() -> None:
        await counter.start()
        counter.record("alpha", "10.0.0.1", PIP)
        for _ in range(200):  # within 10 s: the task writes it without being asked
            await asyncio.sleep(0.05)
            if stored(ctx):
                break
        assert sum(stored(ctx).values()) == 1
        counter.flush_interval = 3600  # the next periodic flush is far away ...
        await asyncio.sleep(0.1)  # (the task picks up the new interval after its current sleep)
        counter.record("alpha", "10.0.0.2", PIP)
        counter.record("beta", "10.0.0.2", PIP)
        await counter.stop()  # ... so only the stop writes these

    run_in_own_loop(lifespan())
    assert sums_of(ctx, "alpha")[0].last_day == 2
    assert sums_of(ctx, "beta")[0].last_day == 1
    assert counter.pending() == 0


def test_critical_designation_is_read_with_the_counts(ctx: Context, clock: ManualClock,
                                                      projects: dict[str, int]) -> None:
    since = clock.now()
    with ctx.db.read() as conn:
        assert project_downloads(conn, "alpha", since.date()).critical is None
    with ctx.db.write() as conn:
        conn.execute(sa.insert(critical_projects).values(
            project_id=projects["alpha"], since=since, grace_until=since + timedelta(days=30),
            rule="top 1% by 30-day downloads", downloads_30d=12345))
    with ctx.db.read() as conn:
        assert project_downloads(conn, "alpha", since.date()).critical == CriticalFacts(
            since, since + timedelta(days=30), "top 1% by 30-day downloads")
        assert project_downloads(conn, "beta", since.date()).critical is None
        missing = project_downloads(conn, "no-such-project", since.date())
    assert missing.critical is None and missing.client == DownloadSums()
