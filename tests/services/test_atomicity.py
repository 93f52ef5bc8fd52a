"""A commit that fails after the blob was placed: no row, no event, and no orphan blob."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Connection

from moorage.services import uploads
from moorage.services.context import Context
from moorage.store.tables import files
from tests.services.helpers import blob_listing, rows, snapshot, tmp_listing, upload
from tests.support.dists import make_wheel


class Boom(RuntimeError):
    pass


def _fail_on_file_added(monkeypatch: pytest.MonkeyPatch, ctx: Context) -> list[bool]:
    """append_event raises for file-added, after the blob is placed (placed[0] tells)."""
    real = uploads.append_event
    placed: list[bool] = []

    def failing(conn: Connection, **kw: Any) -> int:
        if kw["action"] == "file-added":
            sha = kw["payload"]["sha256"]
            placed.append(ctx.blobs.exists(sha))
            raise Boom("the disk is full")
        return real(conn, **kw)

    monkeypatch.setattr(uploads, "append_event", failing)
    return placed


def _fail_at_commit(monkeypatch: pytest.MonkeyPatch, ctx: Context) -> list[int]:
    """The whole transaction runs, then the commit fails (the rows are rolled back)."""
    real = ctx.db.write
    calls: list[int] = []

    @contextmanager
    def failing() -> Iterator[Connection]:
        with real() as conn:
            yield conn
            calls.append(1)
            raise Boom("connection lost at commit")

    monkeypatch.setattr(ctx.db, "write", failing)
    return calls


@pytest.mark.parametrize("failure", ["append_event", "commit"])
def test_failed_commit_of_a_new_project_leaves_nothing(
        ctx: Context, token: str, dists: Path, monkeypatch: pytest.MonkeyPatch, failure: str) -> None:
    wheel = make_wheel(dists, "demo", "1.0")
    before, blobs = snapshot(ctx), blob_listing(ctx)
    assert blobs == []
    probe: list[Any] = (_fail_on_file_added(monkeypatch, ctx) if failure == "append_event"
                        else _fail_at_commit(monkeypatch, ctx))
    changed: list[set[str]] = []
    ctx.hooks.append(changed.append)

    with pytest.raises(Boom):
        upload(ctx, token, wheel)

    assert probe and all(probe), "the failure must come after the blob was placed"
    assert snapshot(ctx) == before
    assert blob_listing(ctx) == []  # neither the wheel nor its METADATA
    assert tmp_listing(ctx) == []
    assert changed == []

    # Nothing left in the way: the same upload goes through once the failure is gone.
    monkeypatch.undo()
    assert upload(ctx, token, wheel).outcome == "created"
    assert ctx.blobs.read(wheel.sha256) == wheel.path.read_bytes()


@pytest.mark.parametrize("failure", ["append_event", "commit"])
def test_failed_commit_keeps_blobs_that_other_files_use(
        ctx: Context, token: str, dists: Path, monkeypatch: pytest.MonkeyPatch, failure: str) -> None:
    first = make_wheel(dists, "demo", "1.0", tag="py3-none-any")
    second = make_wheel(dists, "demo", "1.0", tag="py2-none-any")
    assert first.metadata == second.metadata  # one METADATA blob for both wheels
    upload(ctx, token, first)
    (f1,) = rows(ctx, files)
    shared = f1.metadata_sha256
    before, blobs = snapshot(ctx), blob_listing(ctx)
    probe: list[Any] = (_fail_on_file_added(monkeypatch, ctx) if failure == "append_event"
                        else _fail_at_commit(monkeypatch, ctx))

    with pytest.raises(Boom):
        upload(ctx, token, second)

    assert probe and all(probe)
    assert snapshot(ctx) == before
    assert blob_listing(ctx) == blobs
    assert not ctx.blobs.exists(second.sha256)  # this upload's own blob is gone
    assert ctx.blobs.read(shared) == first.metadata  # the shared one is kept
    assert ctx.blobs.read(first.sha256) == first.path.read_bytes()
    assert tmp_listing(ctx) == []


def test_placing_again_keeps_the_blob_ours(tmp_path: Path) -> None:
    """A retried transaction places the same staging twice: it still created the blob,
    so a failure after the retry must still remove it."""
    from moorage.store.blobs import FileBlobStore

    store = FileBlobStore(tmp_path / "blobs")
    staged = store.stage_bytes(b"payload")
    store.place(staged)
    assert staged.created
    store.place(staged)
    assert staged.created
    other = store.stage_bytes(b"payload")
    store.place(other)
    assert not other.created
    store.abandon(other, still_referenced=False)
    assert store.exists(staged.sha256)
    store.abandon(staged, still_referenced=False)
    assert not store.exists(staged.sha256)
    assert list(store.tmp.iterdir()) == []
