"""Uploads at the same instant from several threads: the database keeps the invariants."""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from moorage.domain.decisions import Denied
from moorage.services import accounts, uploads
from moorage.services.context import Context
from moorage.services.uploads import UploadResult
from moorage.store.blobs import StagedBlob
from moorage.store.tables import filename_registry, files, projects, releases, roles, users
from tests.services.helpers import all_events, count, rows, tmp_listing, upload
from tests.support.dists import Dist, make_sdist, make_wheel

THREADS = 8
TAGS = [f"py3{i}-none-any" for i in range(THREADS)]


@pytest.fixture(autouse=True)
def jitter(ctx: Context) -> Iterator[None]:
    """A short random pause after each statement of a writer, so that the threads interleave
    in many different ways (races that need an unlucky moment show up run after run)."""
    rng = random.Random()

    def pause(*_: Any) -> None:
        time.sleep(rng.random() * 0.002)

    event.listen(ctx.db.write_engine, "after_cursor_execute", pause)
    yield
    event.remove(ctx.db.write_engine, "after_cursor_execute", pause)


def _run_at_once(jobs: list[Callable[[], UploadResult]]) -> list[UploadResult | BaseException]:
    """Start every job at the same moment; return each one's result or exception."""
    barrier = threading.Barrier(len(jobs))
    results: list[Any] = [None] * len(jobs)
    # Staggered by up to a few transactions' time, so that some threads start while
    # another is half-way through, and some while it commits.
    delays = [random.random() * 0.05 for _ in jobs]

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            time.sleep(delays[i])
            results[i] = jobs[i]()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "an upload is stuck"
    return results


def _job(ctx: Context, token: str, dist: Dist) -> Callable[[], UploadResult]:
    return lambda: upload(ctx, token, dist)


def test_different_wheels_of_one_new_release_at_once(ctx: Context, token: str, dists: Path) -> None:
    wheels = [make_wheel(dists, "Swarm", "1.0", tag=tag) for tag in TAGS]
    results = _run_at_once([_job(ctx, token, w) for w in wheels])

    failures = [r for r in results if isinstance(r, BaseException)]
    assert not failures, failures
    assert all(r.outcome == "created" for r in results)  # type: ignore[union-attr]

    assert [p.normalized_name for p in rows(ctx, projects)] == ["swarm"]
    assert count(ctx, roles) == 1
    assert [r.canonical_version for r in rows(ctx, releases)] == ["1"]
    assert sorted(f.filename for f in rows(ctx, files)) == sorted(w.filename for w in wheels)
    assert count(ctx, filename_registry) == THREADS
    actions = [e.action for e in all_events(ctx) if e.project == "swarm"]
    assert actions.count("project-created") == 1
    assert actions.count("role-added") == 1
    assert actions.count("release-created") == 1
    assert actions.count("file-added") == THREADS
    assert actions[:3] == ["project-created", "role-added", "release-created"]
    added = sorted(e.payload["filename"] for e in all_events(ctx) if e.action == "file-added")
    assert added == sorted(w.filename for w in wheels)
    (project,) = rows(ctx, projects)
    assert project.total_size == sum(w.path.stat().st_size for w in wheels)
    assert project.last_serial == all_events(ctx)[-1].serial
    for w in wheels:
        assert ctx.blobs.read(w.sha256) == w.path.read_bytes()
    assert tmp_listing(ctx) == []


def test_the_same_file_at_once_lands_once(ctx: Context, token: str, dists: Path) -> None:
    wheel = make_wheel(dists, "twin", "1.0")
    results = _run_at_once([_job(ctx, token, wheel) for _ in range(THREADS)])

    failures = [r for r in results if isinstance(r, BaseException)]
    assert not failures, failures
    outcomes = sorted(r.outcome for r in results)  # type: ignore[union-attr]
    assert outcomes == ["created"] + ["exists"] * (THREADS - 1)
    assert count(ctx, files) == 1
    assert count(ctx, releases) == 1
    assert [e.action for e in all_events(ctx) if e.project == "twin"] == [
        "project-created", "role-added", "release-created", "file-added"]
    assert ctx.blobs.read(wheel.sha256) == wheel.path.read_bytes()
    assert tmp_listing(ctx) == []


def test_look_alike_new_projects_at_once(ctx: Context, token: str, dists: Path) -> None:
    """Eight different names that look alike (one similarity key): one project wins."""
    names = ["fool", "foo1", "fo0l", "f00l", "foo-l", "f-ool", "fo-ol", "f.o.o.l"]
    wheels = [make_wheel(dists, n, "1.0") for n in names]
    results = _run_at_once([_job(ctx, token, w) for w in wheels])

    created = [r for r in results if isinstance(r, UploadResult)]
    refused = [r for r in results if isinstance(r, Denied)]
    others = [r for r in results if not isinstance(r, (UploadResult, Denied))]
    assert not others, others
    assert len(created) == 1
    assert len(refused) == THREADS - 1
    assert {r.decision.rule for r in refused} == {"similar-name"}
    (project,) = rows(ctx, projects)
    assert project.normalized_name == created[0].project
    assert count(ctx, files) == 1
    assert [e.action for e in all_events(ctx) if e.project is not None] == [
        "project-created", "role-added", "release-created", "file-added"]
    winner = next(w for w in wheels if w.filename == created[0].filename)
    assert ctx.blobs.exists(winner.sha256)
    for w in wheels:
        if w is not winner:
            assert not ctx.blobs.exists(w.sha256)
    assert tmp_listing(ctx) == []


def test_project_committed_while_another_upload_is_half_way(ctx: Context, token: str, dists: Path) -> None:
    """An upload reads "no such project", then another upload creates it and commits before
    the first one goes on: the first must still land in that project (not be refused as a
    look-alike of it, nor fail). On SQLite writers never interleave, so there is no pause."""
    late_wheel = make_wheel(dists, "Halfway", "1.0", tag="py2-none-any")
    early_wheel = make_wheel(dists, "Halfway", "1.0", tag="py3-none-any")
    paused, early_done = threading.Event(), threading.Event()

    def pause_once(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if (threading.current_thread().name == "late" and "FOR UPDATE" in statement
                and not paused.is_set()):
            paused.set()
            early_done.wait(timeout=10)

    event.listen(ctx.db.write_engine, "after_cursor_execute", pause_once)
    result: list[Any] = []

    def late() -> None:
        try:
            result.append(upload(ctx, token, late_wheel))
        except BaseException as exc:  # noqa: BLE001 - reported below
            result.append(exc)
        finally:
            paused.set()  # SQLite: no FOR UPDATE, no pause

    thread = threading.Thread(target=late, name="late", daemon=True)
    thread.start()
    try:
        assert paused.wait(timeout=30)
        if ctx.db.dialect == "postgresql":
            assert not result, "the late upload should be waiting half-way"
        assert upload(ctx, token, early_wheel).outcome == "created"
    finally:
        early_done.set()
        thread.join(timeout=30)
        event.remove(ctx.db.write_engine, "after_cursor_execute", pause_once)
    assert not thread.is_alive()
    (outcome,) = result
    assert isinstance(outcome, UploadResult), outcome
    assert outcome.outcome == "created"
    assert count(ctx, projects) == 1
    assert count(ctx, releases) == 1
    assert count(ctx, files) == 2
    actions = [e.action for e in all_events(ctx) if e.project == "halfway"]
    assert actions == ["project-created", "role-added", "release-created", "file-added", "file-added"]


def test_the_same_new_user_at_once(ctx: Context) -> None:
    def job() -> Any:
        return accounts.add_user(ctx, "bob", password=None)

    results = _run_at_once([job for _ in range(THREADS)])
    created = [r for r in results if isinstance(r, int)]
    refused = [r for r in results if isinstance(r, Denied)]
    assert len(created) == 1, results
    assert len(refused) == THREADS - 1, results
    assert {r.decision.rule for r in refused} == {"user-exists"}
    assert [u.name for u in rows(ctx, users)] == ["bob"]
    assert [e.action for e in all_events(ctx)] == ["user-created"]


def test_failed_upload_never_removes_bytes_a_concurrent_upload_committed(
        ctx: Context, token: str, dists: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A and B share a METADATA blob that A's staging created. A fails and decides that
    nothing uses the blob; B commits a row that uses it; then A removes the blob. The
    decision and the removal must not straddle B's commit, or B's row points at nothing."""
    # The release exists, and its sdist's PKG-INFO (2.1: not served) is not a blob.
    upload(ctx, token, make_sdist(dists, "shared", "1.0", metadata_version="2.1"))
    a_wheel = make_wheel(dists, "shared", "1.0", tag="py3-none-any")
    b_wheel = make_wheel(dists, "shared", "1.0", tag="py2-none-any")
    assert a_wheel.metadata == b_wheel.metadata
    shared = hashlib.sha256(a_wheel.metadata).hexdigest()
    assert not ctx.blobs.exists(shared)

    real_append, real_abandon = uploads.append_event, ctx.blobs.abandon
    in_abandon, b_done = threading.Event(), threading.Event()

    def append_failing_for_a(conn: Any, **kw: Any) -> int:
        if kw["action"] == "file-added" and kw["payload"]["filename"] == a_wheel.filename:
            raise RuntimeError("A fails after placing its blobs")
        return real_append(conn, **kw)

    def slow_abandon(staged: StagedBlob, still_referenced: bool) -> None:
        if threading.current_thread().name == "A" and staged.sha256 == shared:
            assert staged.created and not still_referenced
            in_abandon.set()
            b_done.wait(timeout=1.0)  # B finishes meanwhile, unless A holds it back
        real_abandon(staged, still_referenced)

    monkeypatch.setattr(uploads, "append_event", append_failing_for_a)
    monkeypatch.setattr(ctx.blobs, "abandon", slow_abandon)
    a_result: list[BaseException] = []

    def run_a() -> None:
        try:
            upload(ctx, token, a_wheel)
        except BaseException as exc:  # noqa: BLE001 - checked below
            a_result.append(exc)
        finally:
            in_abandon.set()

    a = threading.Thread(target=run_a, name="A", daemon=True)
    a.start()
    assert in_abandon.wait(timeout=30)
    b_out: list[Any] = []
    b = threading.Thread(target=lambda: b_out.append(upload(ctx, token, b_wheel)), name="B", daemon=True)
    b.start()
    b.join(timeout=1.5)
    b_done.set()
    a.join(timeout=30)
    b.join(timeout=30)
    assert not a.is_alive() and not b.is_alive()

    assert [type(e) for e in a_result] == [RuntimeError]
    assert [r.outcome for r in b_out] == ["created"]
    (b_row,) = rows(ctx, files, files.c.filename == b_wheel.filename)
    assert b_row.metadata_sha256 == shared
    assert ctx.blobs.exists(shared), "B's committed row points at a removed blob"
    assert ctx.blobs.read(shared) == b_wheel.metadata
    assert ctx.blobs.read(b_wheel.sha256) == b_wheel.path.read_bytes()
    assert not rows(ctx, files, files.c.filename == a_wheel.filename)
    assert not ctx.blobs.exists(a_wheel.sha256)
    assert tmp_listing(ctx) == []
