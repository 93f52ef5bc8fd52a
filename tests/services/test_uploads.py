"""upload_file: what an accepted upload writes, and that a refused one writes nothing."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from moorage.domain.clock import ManualClock
from moorage.domain.decisions import Denied
from moorage.services import accounts
from moorage.services.context import Context
from moorage.services.uploads import UploadForm, upload_file
from moorage.store.tables import filename_registry, files, projects, releases, roles, users
from moorage.web.statuses import status_of
from tests.services.conftest import START, START_PEP700
from tests.services.helpers import (
    all_events,
    blob_listing,
    count,
    rows,
    snapshot,
    tmp_listing,
    upload,
)
from tests.support.dists import Dist, make_sdist, make_wheel, metadata_text


def _set_upload_policy(ctx: Context, **changes: object) -> None:
    ctx.settings = dataclasses.replace(
        ctx.settings, upload=dataclasses.replace(ctx.settings.upload, **changes))


def test_wheel_upload_creates_project_release_file_and_events(
        ctx: Context, token: str, dists: Path) -> None:
    wheel = make_wheel(dists, "Demo.Pkg", "1.0")
    before_events = all_events(ctx)
    changed: list[set[str]] = []
    ctx.hooks.append(changed.append)

    result = upload(ctx, token, wheel)

    data = wheel.path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    assert (result.outcome, result.project, result.filename, result.sha256) == (
        "created", "demo-pkg", wheel.filename, sha)
    assert changed == [{"demo-pkg"}]

    (project,) = rows(ctx, projects)
    assert (project.name, project.normalized_name, project.status, project.created_at) == (
        "Demo.Pkg", "demo-pkg", "active", START)
    assert project.total_size == len(data)
    (alice,) = rows(ctx, users)
    assert [(r.project_id, r.user_id, r.role) for r in rows(ctx, roles)] == [
        (project.id, alice.id, "owner")]

    (release,) = rows(ctx, releases)
    assert (release.project_id, release.version, release.canonical_version, release.created_at,
            release.requires_python) == (project.id, "1.0", "1", START, ">=3.8")
    assert release.metadata["name"] == "Demo.Pkg"
    assert release.metadata["version"] == "1.0"

    (f,) = rows(ctx, files)
    assert (f.release_id, f.project_id, f.filename, f.packagetype, f.python_version) == (
        release.id, project.id, wheel.filename, "bdist_wheel", "py3")
    assert (f.sha256, f.blake2_256, f.md5, f.size) == (
        sha, hashlib.blake2b(data, digest_size=32).hexdigest(), hashlib.md5(data).hexdigest(), len(data))
    assert f.upload_time == START
    assert f.requires_python == ">=3.8"
    assert f.uploader_id == alice.id
    assert f.metadata_sha256 == hashlib.sha256(wheel.metadata).hexdigest()

    (reg,) = rows(ctx, filename_registry)
    assert (reg.filename, reg.sha256, reg.project, reg.registered_at) == (
        wheel.filename, sha, "demo-pkg", START)

    # The bytes, and the wheel's METADATA as a blob of its own.
    assert ctx.blobs.path(sha).read_bytes() == data
    assert ctx.blobs.read(f.metadata_sha256) == wheel.metadata
    assert tmp_listing(ctx) == []
    assert len(blob_listing(ctx)) == 2

    new = all_events(ctx)[len(before_events):]
    assert [e.action for e in new] == ["project-created", "role-added", "release-created", "file-added"]
    assert all(e.project == "demo-pkg" and e.actor == "alice" and e.created_at == START for e in new)
    assert new[0].payload == {"project": "demo-pkg", "name": "Demo.Pkg"}
    assert new[1].payload == {"project": "demo-pkg", "user": "alice", "role": "owner"}
    assert new[2].payload == {"project": "demo-pkg", "version": "1.0"}
    assert new[3].payload == {
        "project": "demo-pkg", "version": "1.0", "filename": wheel.filename,
        "packagetype": "bdist_wheel", "sha256": sha, "size": len(data),
        "upload-time": START_PEP700, "metadata-sha256": f.metadata_sha256,
    }
    assert new[3].subject == f"file:{wheel.filename}"
    serials = [e.serial for e in new]
    assert serials == sorted(set(serials))
    assert result.serial == serials[-1]
    assert project.last_serial == serials[-1]


def test_second_file_adds_to_the_existing_release(ctx: Context, token: str, dists: Path,
                                                  clock: ManualClock) -> None:
    upload(ctx, token, make_wheel(dists, "demo", "1.0"))
    before = all_events(ctx)
    clock.advance(timedelta(minutes=5))
    sdist = make_sdist(dists, "demo", "1.0")
    result = upload(ctx, token, sdist)
    assert result.outcome == "created"

    new = all_events(ctx)[len(before):]
    assert [e.action for e in new] == ["file-added"]
    assert new[0].payload["upload-time"] == "2026-05-04T03:07:01.123456Z"
    assert count(ctx, projects) == 1
    assert count(ctx, releases) == 1
    assert count(ctx, roles) == 1
    (f,) = rows(ctx, files, files.c.filename == sdist.filename)
    assert (f.packagetype, f.python_version, f.upload_time) == ("sdist", "source", START + timedelta(minutes=5))
    # PKG-INFO 2.2 with nothing dynamic stands in for the wheel's METADATA (PEP 643).
    assert f.metadata_sha256 == hashlib.sha256(sdist.metadata).hexdigest()
    assert ctx.blobs.read(f.metadata_sha256) == sdist.metadata


def test_old_sdist_metadata_is_not_served(ctx: Context, token: str, dists: Path) -> None:
    sdist = make_sdist(dists, "demo", "1.0", metadata_version="2.1")
    upload(ctx, token, sdist)
    (f,) = rows(ctx, files)
    assert f.metadata_sha256 is None
    assert blob_listing(ctx) == [str(ctx.blobs.path(sdist.sha256).relative_to(ctx.blobs.root))]


def test_identical_reupload_is_accepted_and_changes_nothing(
        ctx: Context, token: str, dists: Path, clock: ManualClock) -> None:
    wheel = make_wheel(dists, "demo", "1.0")
    first = upload(ctx, token, wheel)
    before, blobs = snapshot(ctx), blob_listing(ctx)
    clock.advance(timedelta(days=3))
    changed: list[set[str]] = []
    ctx.hooks.append(changed.append)

    again = upload(ctx, token, wheel)

    assert (again.outcome, again.project, again.filename, again.sha256, again.serial) == (
        "exists", "demo", wheel.filename, first.sha256, None)
    assert snapshot(ctx) == before
    assert blob_listing(ctx) == blobs
    assert tmp_listing(ctx) == []
    (f,) = rows(ctx, files)
    assert f.upload_time == START
    assert changed == []


def test_different_bytes_under_a_known_filename_are_refused(
        ctx: Context, token: str, dists: Path) -> None:
    upload(ctx, token, make_wheel(dists, "demo", "1.0"))
    other = make_wheel(dists / "other", "demo", "1.0", module_body="changed = True\n")
    before, blobs = snapshot(ctx), blob_listing(ctx)
    with pytest.raises(Denied) as err:
        upload(ctx, token, other)
    assert err.value.decision.rule == "file-exists"
    assert status_of(err.value.decision) == 400
    assert snapshot(ctx) == before
    assert blob_listing(ctx) == blobs
    assert not ctx.blobs.exists(other.sha256)


def test_one_sdist_per_release(ctx: Context, token: str, dists: Path) -> None:
    upload(ctx, token, make_sdist(dists, "demo", "1.0"))
    upload(ctx, token, make_wheel(dists, "demo", "1.0"))
    # 1.0.0 is the same release as 1.0, under another filename.
    second = make_sdist(dists, "demo", "1.0.0")
    before, blobs = snapshot(ctx), blob_listing(ctx)
    with pytest.raises(Denied) as err:
        upload(ctx, token, second)
    assert err.value.decision.rule == "one-sdist-per-release"
    assert snapshot(ctx) == before
    assert blob_listing(ctx) == blobs
    # Another release may have its own sdist.
    assert upload(ctx, token, make_sdist(dists, "demo", "1.1")).outcome == "created"
    assert count(ctx, releases) == 2


def test_same_release_under_another_spelling_of_the_version(ctx: Context, token: str, dists: Path) -> None:
    upload(ctx, token, make_wheel(dists, "demo", "1.0"))
    upload(ctx, token, make_wheel(dists, "demo", "1.0.0", tag="py2-none-any"))
    (release,) = rows(ctx, releases)
    assert release.version == "1.0"
    assert count(ctx, files) == 2


def test_total_size_tracks_uploads(ctx: Context, token: str, dists: Path) -> None:
    sizes = 0
    for dist in (make_wheel(dists, "demo", "1.0"), make_sdist(dists, "demo", "1.0"),
                 make_wheel(dists, "demo", "2.0")):
        upload(ctx, token, dist)
        sizes += dist.path.stat().st_size
        (project,) = rows(ctx, projects)
        assert project.total_size == sizes
    upload(ctx, token, make_wheel(dists, "demo", "2.0"))  # identical: "exists"
    with pytest.raises(Denied):
        upload(ctx, token, make_wheel(dists / "x", "demo", "2.0", module_body="x = 1\n"))
    (project,) = rows(ctx, projects)
    assert project.total_size == sizes
    assert project.total_size == sum(f.size for f in rows(ctx, files))


def test_owner_and_maintainer_rules(ctx: Context, token: str, dists: Path) -> None:
    upload(ctx, token, make_wheel(dists, "demo", "1.0"))
    accounts.add_user(ctx, "mallory", password=None)
    _, mallory = accounts.create_token(ctx, "mallory")
    before, blobs = snapshot(ctx), blob_listing(ctx)
    with pytest.raises(Denied) as err:
        upload(ctx, mallory, make_wheel(dists, "demo", "1.1"))
    assert err.value.decision.rule == "not-a-maintainer"
    assert snapshot(ctx) == before
    assert blob_listing(ctx) == blobs


def test_scoped_token(ctx: Context, token: str, dists: Path) -> None:
    _, scoped = accounts.create_token(ctx, "alice", projects=["Demo_Pkg"])
    assert upload(ctx, scoped, make_wheel(dists, "demo.pkg", "1.0")).outcome == "created"
    before = snapshot(ctx)
    with pytest.raises(Denied) as err:
        upload(ctx, scoped, make_wheel(dists, "other", "1.0"))
    assert err.value.decision.rule == "token-scope"
    assert snapshot(ctx) == before


# -- refusals leave nothing behind ---------------------------------------------------------

Refusal = Callable[[Context, str, Path], tuple[str | None, Dist, dict[str, object]]]


def _revoked(ctx: Context, token: str, dists: Path):  # type: ignore[no-untyped-def]
    tid, tok = accounts.create_token(ctx, "alice")
    accounts.revoke_token(ctx, tid)
    return tok, make_wheel(dists, "demo", "1.0"), {}


def _expired(ctx: Context, token: str, dists: Path):  # type: ignore[no-untyped-def]
    _, tok = accounts.create_token(ctx, "alice", expires_days=1)
    ctx.clock.advance(timedelta(days=1))  # type: ignore[attr-defined]
    return tok, make_wheel(dists, "demo", "1.0"), {}


def _no_token(ctx: Context, token: str, dists: Path):  # type: ignore[no-untyped-def]
    return None, make_wheel(dists, "demo", "1.0"), {}


def _unknown_token(ctx: Context, token: str, dists: Path):  # type: ignore[no-untyped-def]
    return token[:-2] + "zz", make_wheel(dists, "demo", "1.0"), {}


def _form_version(ctx: Context, token: str, dists: Path):  # type: ignore[no-untyped-def]
    return token, make_wheel(dists, "demo", "1.0"), {"version": "2.0"}


def _form_name(ctx: Context, token: str, dists: Path):  # type: ignore[no-untyped-def]
    return token, make_wheel(dists, "demo", "1.0"), {"name": "other"}


def _filename_version(ctx: Context, token: str, dists: Path):  # type: ignore[no-untyped-def]
    meta = metadata_text("demo", "1.1")
    return token, make_wheel(dists, "demo", "1.0", metadata=meta), {"version": "1.1"}


def _digest(ctx: Context, token: str, dists: Path):  # type: ignore[no-untyped-def]
    return token, make_wheel(dists, "demo", "1.0"), {"sha256": "0" * 64}


def _md5_digest(ctx: Context, token: str, dists: Path):  # type: ignore[no-untyped-def]
    return token, make_wheel(dists, "demo", "1.0"), {"sha256": "", "md5": "0" * 32}


def _no_digest(ctx: Context, token: str, dists: Path):  # type: ignore[no-untyped-def]
    return token, make_wheel(dists, "demo", "1.0"), {"sha256": ""}


def _project_size_new(ctx: Context, token: str, dists: Path):  # type: ignore[no-untyped-def]
    wheel = make_wheel(dists, "demo", "1.0")
    _set_upload_policy(ctx, max_project_size=wheel.path.stat().st_size - 1)
    return token, wheel, {}


def _project_size_existing(ctx: Context, token: str, dists: Path):  # type: ignore[no-untyped-def]
    first = make_wheel(dists, "demo", "1.0")
    upload(ctx, token, first)
    second = make_wheel(dists, "demo", "1.0", tag="py2-none-any")
    limit = first.path.stat().st_size + second.path.stat().st_size - 1
    _set_upload_policy(ctx, max_project_size=limit)
    return token, second, {}


def _file_size(ctx: Context, token: str, dists: Path):  # type: ignore[no-untyped-def]
    wheel = make_wheel(dists, "demo", "1.0")
    _set_upload_policy(ctx, max_file_size=wheel.path.stat().st_size - 1)
    return token, wheel, {}


def _prohibited(ctx: Context, token: str, dists: Path):  # type: ignore[no-untyped-def]
    _set_upload_policy(ctx, prohibited_names=frozenset({"demo"}))
    return token, make_wheel(dists, "Demo", "1.0"), {}


def _look_alike(ctx: Context, token: str, dists: Path):  # type: ignore[no-untyped-def]
    upload(ctx, token, make_wheel(dists, "f00l", "1.0"))
    return token, make_wheel(dists, "Fool", "1.0"), {}


def _metadata_version(ctx: Context, token: str, dists: Path):  # type: ignore[no-untyped-def]
    return token, make_wheel(dists, "demo", "1.0", metadata_version="9.9"), {}


def _unsafe_archive(ctx: Context, token: str, dists: Path):  # type: ignore[no-untyped-def]
    return token, make_wheel(dists, "demo", "1.0", extra_members={"../evil.py": b"x"}), {}


def _not_a_zip(ctx: Context, token: str, dists: Path):  # type: ignore[no-untyped-def]
    wheel = make_wheel(dists, "demo", "1.0")
    wheel.path.write_bytes(b"not a zip file at all")
    return token, wheel, {}


def _filetype(ctx: Context, token: str, dists: Path):  # type: ignore[no-untyped-def]
    return token, make_wheel(dists, "demo", "1.0"), {"filetype": "sdist"}


def _second_sdist(ctx: Context, token: str, dists: Path):  # type: ignore[no-untyped-def]
    upload(ctx, token, make_sdist(dists, "demo", "1.0"))
    return token, make_sdist(dists, "demo", "1.0.0"), {}


REFUSALS: dict[str, tuple[Refusal, str]] = {
    "revoked-token": (_revoked, "invalid-token"),
    "expired-token": (_expired, "token-expired"),
    "no-token": (_no_token, "invalid-token"),
    "unknown-token": (_unknown_token, "invalid-token"),
    "form-version": (_form_version, "metadata-mismatch"),
    "form-name": (_form_name, "metadata-mismatch"),
    "filename-version": (_filename_version, "filename-mismatch"),
    "sha256-digest": (_digest, "digest-mismatch"),
    "md5-digest": (_md5_digest, "digest-mismatch"),
    "no-digest": (_no_digest, "digest-missing"),
    "project-size-new": (_project_size_new, "project-size-limit"),
    "project-size-existing": (_project_size_existing, "project-size-limit"),
    "file-size": (_file_size, "file-size-limit"),
    "prohibited-name": (_prohibited, "prohibited-name"),
    "look-alike": (_look_alike, "similar-name"),
    "metadata-version": (_metadata_version, "metadata-version"),
    "unsafe-archive": (_unsafe_archive, "unsafe-archive"),
    "not-a-zip": (_not_a_zip, "invalid-archive"),
    "filetype": (_filetype, "invalid-filename"),
    "second-sdist": (_second_sdist, "one-sdist-per-release"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refused_upload_leaves_nothing(ctx: Context, token: str, dists: Path, case: str) -> None:
    prepare, rule = REFUSALS[case]
    use_token, dist, form = prepare(ctx, token, dists)
    before, blobs = snapshot(ctx), blob_listing(ctx)
    changed: list[set[str]] = []
    ctx.hooks.append(changed.append)

    with pytest.raises(Denied) as err:
        upload(ctx, use_token, dist, **form)

    assert err.value.decision.rule == rule, err.value.decision
    assert not err.value.decision.allowed
    assert snapshot(ctx) == before  # no row in any table, no event
    assert blob_listing(ctx) == blobs  # no new blob
    assert tmp_listing(ctx) == []
    assert changed == []


def test_missing_form_fields_are_refused(ctx: Context, token: str, dists: Path) -> None:
    wheel = make_wheel(dists, "demo", "1.0")
    base = UploadForm(action="file_upload", protocol_version="1", name="demo", version="1.0",
                      filetype="bdist_wheel", filename=wheel.filename, sha256_digest=wheel.sha256, pyversion="py3")
    cases = {
        "unsupported-action": dataclasses.replace(base, action="submit"),
        "protocol-version": dataclasses.replace(base, protocol_version="2"),
        "missing-field": dataclasses.replace(base, version=None),
        "invalid-filetype": dataclasses.replace(base, filetype=None),
        "missing-file": dataclasses.replace(base, filename=None),
        "invalid-filename": dataclasses.replace(base, filename="demo-1.0.zip"),
    }
    before = snapshot(ctx)
    for rule, form in cases.items():
        with wheel.path.open("rb") as fh, pytest.raises(Denied) as err:
            upload_file(ctx, token=token, form=form, content=fh)
        assert err.value.decision.rule == rule
    with pytest.raises(Denied) as err:
        upload_file(ctx, token=token, form=base, content=None)
    assert err.value.decision.rule == "missing-file"
    assert snapshot(ctx) == before
    assert blob_listing(ctx) == []


def test_refusal_then_success(ctx: Context, token: str, dists: Path) -> None:
    """A refused upload leaves nothing that gets in the way of the right one."""
    wheel = make_wheel(dists, "demo", "1.0")
    with pytest.raises(Denied):
        upload(ctx, token, wheel, version="2.0")
    result = upload(ctx, token, wheel)
    assert result.outcome == "created"
    assert [e.action for e in all_events(ctx)][-4:] == [
        "project-created", "role-added", "release-created", "file-added"]


def test_an_identical_file_sent_under_another_project_is_refused(ctx: Context, token: str, dists: Path) -> None:
    wheel = make_wheel(dists, "owner-proj", "1.0")
    assert upload(ctx, token, wheel).outcome == "created"
    before = snapshot(ctx)
    with pytest.raises(Denied) as refused:
        upload(ctx, token, wheel, name="other-proj")
    assert refused.value.decision.rule == "filename-mismatch"
    assert "owner-proj" in refused.value.decision.reason
    assert snapshot(ctx) == before


def test_an_upload_records_when_its_token_was_last_used(ctx: Context, clock: ManualClock, dists: Path) -> None:
    accounts.add_user(ctx, "tokenuser", password=None)
    token_id, secret = accounts.create_token(ctx, "tokenuser")
    assert accounts.list_tokens(ctx, "tokenuser")[0].last_used_at is None
    clock.advance(timedelta(minutes=5))
    upload(ctx, secret, make_wheel(dists, "used-token", "1.0"))
    [info] = accounts.list_tokens(ctx, "tokenuser")
    assert info.id == token_id and info.last_used_at == clock.now()
