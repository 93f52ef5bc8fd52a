"""The read side: version order, files, and which projects changed since a serial."""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path

from packaging.version import Version

from moorage.domain.clock import ManualClock
from moorage.services import accounts
from moorage.services.context import Context
from moorage.store import queries
from tests.services.conftest import START
from tests.services.helpers import all_events, upload
from tests.support.dists import make_sdist, make_wheel

# Sorted as strings these come out wrong: "1.10" < "1.2" < "1.9", "2.0" < "2.0rc1".
VERSIONS = ["1.10", "1.9", "1.2", "2.0rc1", "2.0", "1.10.post1", "0.9", "2.0.dev3", "10.0", "1.2a1"]


def test_load_project_orders_versions_as_versions(ctx: Context, token: str, dists: Path,
                                                  clock: ManualClock) -> None:
    shuffled = VERSIONS[:]
    random.Random(7).shuffle(shuffled)
    for v in shuffled:
        clock.advance(timedelta(seconds=1))
        upload(ctx, token, make_wheel(dists, "Ordered", v))
        if v in ("1.9", "2.0"):
            upload(ctx, token, make_sdist(dists, "Ordered", v))

    with ctx.db.read() as conn:
        view = queries.load_project(conn, "ordered")
    assert view is not None
    expected = sorted(VERSIONS, key=Version)
    assert [r.version for r in view.releases] == expected
    assert expected != sorted(VERSIONS)  # the string order would be another
    assert (view.name, view.normalized_name, view.status, view.status_reason) == (
        "Ordered", "ordered", "active", None)
    assert view.last_serial == all_events(ctx)[-1].serial

    # Files by version, then filename: the sdist (.tar.gz) after the wheel of "1.9"/"2.0".
    expected_files = []
    for v in expected:
        names = [make_wheel(dists, "Ordered", v).filename]
        if v in ("1.9", "2.0"):
            names.append(f"ordered-{v}.tar.gz")
        expected_files.extend((v, n) for n in sorted(names))
    assert [(f.version, f.filename) for f in view.files] == expected_files

    by_name = {f.filename: f for f in view.files}
    wheel = make_wheel(dists, "Ordered", "1.2")
    f = by_name[wheel.filename]
    assert (f.packagetype, f.python_version, f.sha256, f.size, f.requires_python) == (
        "bdist_wheel", "py3", wheel.sha256, wheel.path.stat().st_size, ">=3.8")
    assert f.upload_time == START + timedelta(seconds=shuffled.index("1.2") + 1)
    assert f.metadata_sha256 is not None
    rel = next(r for r in view.releases if r.version == "1.2")
    assert rel.created_at == f.upload_time
    assert rel.metadata["version"] == "1.2"


def test_load_project_unknown(ctx: Context) -> None:
    with ctx.db.read() as conn:
        assert queries.load_project(conn, "nothing-here") is None
        assert queries.find_file(conn, "nothing-1.0.tar.gz") is None
        assert queries.project_names(conn) == []
        assert queries.global_serial(conn) == 0
        assert queries.changed_projects_since(conn, 0) == (0, set())


def test_find_file_and_project_names(ctx: Context, token: str, dists: Path) -> None:
    sdist = make_sdist(dists, "Zed_Pkg", "3.1")
    upload(ctx, token, sdist)
    upload(ctx, token, make_wheel(dists, "alpha", "1.0"))
    with ctx.db.read() as conn:
        found = queries.find_file(conn, sdist.filename)
        assert found is not None
        f, project, removal_at = found
        assert removal_at is None
        assert project == "zed-pkg"
        assert (f.filename, f.version, f.packagetype, f.sha256) == (
            sdist.filename, "3.1", "sdist", sdist.sha256)
        assert queries.project_names(conn) == [("alpha", "alpha"), ("Zed_Pkg", "zed-pkg")]


def test_changed_projects_since(ctx: Context, token: str, dists: Path) -> None:
    with ctx.db.read() as conn:
        start = queries.global_serial(conn)
    upload(ctx, token, make_wheel(dists, "one", "1.0"))
    upload(ctx, token, make_wheel(dists, "two", "1.0"))
    with ctx.db.read() as conn:
        newest, changed = queries.changed_projects_since(conn, start)
    assert newest == all_events(ctx)[-1].serial
    assert changed == {"one", "two"}

    mark = newest
    upload(ctx, token, make_wheel(dists, "two", "1.1"))
    with ctx.db.read() as conn:
        newest2, changed = queries.changed_projects_since(conn, mark)
        assert changed == {"two"}
        assert newest2 > mark
        assert queries.changed_projects_since(conn, newest2) == (newest2, set())

    # Events of no project move the serial but change no project.
    accounts.add_user(ctx, "bob", password=None)
    with ctx.db.read() as conn:
        newest3, changed = queries.changed_projects_since(conn, newest2)
    assert newest3 > newest2
    assert newest3 == all_events(ctx)[-1].serial
    assert changed == set()

    # A refused or repeated upload changes nothing.
    upload(ctx, token, make_wheel(dists, "two", "1.1"))
    with ctx.db.read() as conn:
        assert queries.changed_projects_since(conn, newest3) == (newest3, set())
        # From the very start, every project.
        assert queries.changed_projects_since(conn, 0)[1] == {"one", "two"}
