"""One upload is one read transaction and one write transaction. What changes while the bytes
arrive (between the two) is checked again in the write, against what is there then."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from moorage.domain.clock import ManualClock
from moorage.domain.decisions import Denied
from moorage.services import accounts, deletion, roles
from moorage.services.context import Context
from moorage.services.uploads import upload_file
from moorage.store.blobs import StagedBlob
from moorage.store.tables import files, tokens
from tests.services.helpers import all_events, blob_listing, form_for, rows, snapshot, tmp_listing, upload
from tests.support.dists import make_sdist, make_wheel


def _count_transactions(monkeypatch: pytest.MonkeyPatch, ctx: Context) -> list[str]:
    opened: list[str] = []
    for kind in ("read", "write"):
        real = getattr(ctx.db, kind)

        def counting(real: Callable[[], Any] = real, kind: str = kind) -> Iterator[Connection]:
            opened.append(kind)
            with real() as conn:
                yield conn

        monkeypatch.setattr(ctx.db, kind, contextmanager(counting))
    return opened


def _meanwhile(monkeypatch: pytest.MonkeyPatch, ctx: Context, change: Callable[[], object]) -> None:
    """Run ``change`` once, while the next upload's bytes are received (after its read)."""
    real = ctx.blobs.receive
    pending = [change]

    def receive(source: IO[bytes], limit: int, chunk_size: int = 1 << 20) -> StagedBlob:
        while pending:
            pending.pop()()
        return real(source, limit, chunk_size)

    monkeypatch.setattr(ctx.blobs, "receive", receive)


def test_an_upload_is_one_read_and_one_write(ctx: Context, token: str, dists: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    upload(ctx, token, make_wheel(dists, "demo", "1.0"))
    opened = _count_transactions(monkeypatch, ctx)
    assert upload(ctx, token, make_wheel(dists, "demo", "1.1")).outcome == "created"  # a new release
    assert opened == ["read", "write"]
    opened.clear()
    assert upload(ctx, token, make_wheel(dists, "demo", "1.1", tag="py2-none-any")).outcome == "created"
    assert opened == ["read", "write"]
    opened.clear()
    assert upload(ctx, token, make_wheel(dists, "fresh", "1.0")).outcome == "created"  # a new project
    assert opened == ["read", "write"]


def test_an_identical_upload_is_one_read(ctx: Context, token: str, dists: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    wheel = make_wheel(dists, "demo", "1.0")
    upload(ctx, token, wheel)
    opened = _count_transactions(monkeypatch, ctx)
    assert upload(ctx, token, wheel).outcome == "exists"
    assert opened == ["read"]


def test_a_role_removed_meanwhile_refuses_the_upload(ctx: Context, token: str, dists: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    upload(ctx, token, make_wheel(dists, "demo", "1.0"))
    accounts.add_user(ctx, "bob", password=None)
    _, bob = accounts.create_token(ctx, "bob")
    roles.set_role(ctx, "demo", "bob", "maintainer", actor="alice")
    _meanwhile(monkeypatch, ctx, lambda: roles.remove_role(ctx, "demo", "bob", actor="alice"))
    before, blobs = snapshot(ctx), blob_listing(ctx)
    with pytest.raises(Denied) as refused:
        upload(ctx, bob, make_wheel(dists, "demo", "1.1"))
    assert refused.value.decision.rule == "not-a-maintainer"
    assert [e.action for e in all_events(ctx)][-1] == "role-removed"
    assert rows(ctx, files, files.c.filename.like("demo-1.1%")) == []
    assert snapshot(ctx)["files"] == before["files"]
    assert blob_listing(ctx) == blobs and tmp_listing(ctx) == []


def test_a_project_deleted_meanwhile_is_taken_again_only_by_an_owner(
        ctx: Context, token: str, dists: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    upload(ctx, token, make_wheel(dists, "demo", "1.0"))
    accounts.add_user(ctx, "bob", password=None)
    _, bob = accounts.create_token(ctx, "bob")
    roles.set_role(ctx, "demo", "bob", "maintainer", actor="alice")
    _meanwhile(monkeypatch, ctx, lambda: deletion.delete(ctx, "demo", as_user="alice"))
    with pytest.raises(Denied) as refused:
        upload(ctx, bob, make_wheel(dists, "demo", "1.1"))
    assert refused.value.decision.rule == "name-tombstoned"
    assert tmp_listing(ctx) == []
    # Its owner takes it again.
    assert upload(ctx, token, make_wheel(dists, "demo", "1.2")).outcome == "created"
    assert [e.action for e in all_events(ctx)][-3:] == ["project-reregistered", "release-created", "file-added"]


@pytest.mark.parametrize("kind", ["wheel", "sdist"])
def test_the_same_file_uploaded_meanwhile_answers_exists(ctx: Context, token: str, dists: Path,
                                                         monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    """Into a new project too: the other upload made it, with the file."""
    dist = make_wheel(dists, "demo", "1.0") if kind == "wheel" else make_sdist(dists, "demo", "1.0")
    other: list[str] = []
    _meanwhile(monkeypatch, ctx, lambda: other.append(upload(ctx, token, dist).outcome))
    assert upload(ctx, token, dist).outcome == "exists"
    assert other == ["created"]
    assert [r.filename for r in rows(ctx, files)] == [dist.filename]
    assert tmp_listing(ctx) == []


def test_another_file_uploaded_meanwhile_is_no_obstacle(ctx: Context, token: str, dists: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    wheel, other = make_wheel(dists, "demo", "1.0"), make_wheel(dists, "demo", "1.0", tag="py2-none-any")
    _meanwhile(monkeypatch, ctx, lambda: upload(ctx, token, other))
    assert upload(ctx, token, wheel).outcome == "created"
    assert sorted(r.filename for r in rows(ctx, files)) == sorted([wheel.filename, other.filename])


def test_the_token_use_is_recorded_with_the_upload(ctx: Context, token: str, dists: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    opened = _count_transactions(monkeypatch, ctx)
    wheel = make_wheel(dists, "demo", "1.0")
    with wheel.path.open("rb") as fh:
        upload_file(ctx, token=token, form=form_for(wheel), content=fh, address="192.0.2.9")
    assert opened == ["read", "write"]
    [info] = accounts.list_tokens(ctx, "alice")
    assert (info.last_used_at, info.last_used_address) == (ctx.clock.now(), "192.0.2.9")


def test_an_upload_never_waits_for_its_tokens_row(ctx: Context, clock: ManualClock, token: str, dists: Path,
                                                  backend: str) -> None:
    """A revocation takes the token's row first and the event log's lock after it; the upload
    holds that lock when it records its use, so it must not wait for the row (PostgreSQL; on
    SQLite the one writer at a time rules this out)."""
    if backend != "postgresql":
        pytest.skip("row locks: PostgreSQL")
    upload(ctx, token, make_wheel(dists, "demo", "1.0"))
    [before] = accounts.list_tokens(ctx, "alice")
    with ctx.db.write_engine.connect() as other:
        other.execute(sa.select(tokens.c.id).where(tokens.c.id == before.id).with_for_update())  # held
        clock.advance(timedelta(minutes=1))
        wheel, done = make_wheel(dists, "demo", "1.1"), []
        job = threading.Thread(target=lambda: done.append(upload(ctx, token, wheel).outcome), daemon=True)
        job.start()
        job.join(timeout=20)
        waited = job.is_alive()
        other.rollback()
        job.join(timeout=20)
    assert not waited and done == ["created"]
    [after] = accounts.list_tokens(ctx, "alice")
    assert after.last_used_at == before.last_used_at  # not recorded: someone held the row
    clock.advance(timedelta(minutes=1))
    upload(ctx, token, make_wheel(dists, "demo", "1.2"))
    [again] = accounts.list_tokens(ctx, "alice")
    assert again.last_used_at == clock.now()
