"""Every upload refusal, against the real server: a clear 4xx, the reason in the status line
and body, and nothing of the refused upload left in the database, the blob store or the pages.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import tarfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import clients
from tests.support.db import TestDB
from tests.support.dists import (
    Dist,
    make_sdist,
    make_tar_bomb_sdist,
    make_wheel,
    make_zip_bomb_wheel,
    make_zip_sdist,
)
from tests.support.server import Server, start_server
from tests.support.upload import OMIT, post_upload

pytestmark = pytest.mark.slow

KiB = 1024
MiB = 1024 * KiB
BOMB_SIZE = 128 * MiB
TABLES = ("projects", "releases", "files", "filename_registry", "roles")
JSON_V1 = "application/vnd.pypi.simple.v1+json"


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def under(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


# -- the server's state, read from outside ----------------------------------------------------
@dataclass(frozen=True)
class State:
    blobs: frozenset[str]
    tables: dict[str, list[tuple[object, ...]]]
    last_serial: int
    projects: frozenset[str]
    page: frozenset[tuple[str, str]] | None  # the project's files on its simple page, None: 404


def _ro(server: Server) -> TestDB:
    return TestDB(server.data_dir, readonly=True)


def blob_files(server: Server) -> frozenset[str]:
    root = server.data_dir / "blobs"
    tmp = root / "tmp"
    return frozenset(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and tmp not in p.parents
    )


def temp_files(server: Server) -> list[str]:
    return sorted(p.name for p in (server.data_dir / "blobs" / "tmp").iterdir())


def snapshot(server: Server, project: str) -> State:
    with closing(_ro(server)) as conn:
        tables = {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in TABLES}
        serial = conn.execute("SELECT coalesce(max(serial), 0) FROM events").fetchone()[0]
        names = frozenset(r[0] for r in conn.execute("SELECT normalized_name FROM projects"))
    return State(blob_files(server), tables, int(serial), names, page_files(server, project))


def http_get(url: str, accept: str | None = None) -> tuple[int, bytes]:
    assert url.startswith("http://127.0.0.1:")
    req = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def page_files(server: Server, project: str) -> frozenset[tuple[str, str]] | None:
    """(filename, sha256) on the project's simple page (JSON and HTML agree), None on 404."""
    status, body = http_get(server.simple + norm(project) + "/", JSON_V1)
    html_status, html = http_get(server.simple + norm(project) + "/", "text/html")
    assert status == html_status, (status, html_status)
    if status == 404:
        return None
    assert status == 200, (status, body)
    listed = frozenset((f["filename"], f["hashes"]["sha256"]) for f in json.loads(body)["files"])
    for filename, sha in listed:
        assert filename.encode() in html and sha.encode() in html
    return listed


def page_filenames(server: Server, project: str) -> set[str] | None:
    listed = page_files(server, project)
    return None if listed is None else {filename for filename, _sha in listed}


def assert_nothing_left(server: Server, before: State, *, project: str, filename: str,
                        data: bytes | None) -> None:
    after = snapshot(server, project)
    assert temp_files(server) == [], "a refused upload left a temporary file in blobs/tmp"
    assert after.blobs == before.blobs, f"blobs changed: +{sorted(after.blobs - before.blobs)}"
    for table in TABLES:
        assert after.tables[table] == before.tables[table], f"table {table} changed"
    assert after.last_serial == before.last_serial, "an event was recorded for a refused upload"
    registered_before = {row[0] for row in before.tables["filename_registry"]}
    with closing(_ro(server)) as conn:
        for name in {filename, Path(filename.replace("\\", "/")).name} - registered_before:
            assert conn.execute("SELECT 1 FROM files WHERE filename = ?", (name,)).fetchone() is None
            assert conn.execute("SELECT 1 FROM filename_registry WHERE filename = ?", (name,)).fetchone() is None
        if data is not None:
            sha = hashlib.sha256(data).hexdigest()
            assert conn.execute("SELECT 1 FROM files WHERE sha256 = ?", (sha,)).fetchone() is None
            assert conn.execute("SELECT 1 FROM filename_registry WHERE sha256 = ?", (sha,)).fetchone() is None
            assert f"{sha[:2]}/{sha[2:4]}/{sha}" not in after.blobs
    assert after.page == before.page, f"the page of {project!r} changed: {before.page} -> {after.page}"
    if norm(project) in before.projects:
        assert after.page is not None
    else:
        assert after.page is None, f"the refused project {project!r} has a page: {after.page}"
        status, index = http_get(server.simple)
        assert status == 200
        assert f"/simple/{norm(project)}/".encode() not in index


def refuse(server: Server, token: str | None, path: Path, *, status: int, reason: list[str],
           project: str, fields: dict[str, object] | None = None, username: str = "__token__",
           filename: str | None = None, data: bytes | None = None, already_there: bool = False) -> str:
    """Upload, expect a refusal whose status-line reason holds every fragment; check nothing stayed.
    ``already_there``: the same bytes were accepted before (a re-upload), so only their absence
    of any new row, blob or event is checked."""
    before = snapshot(server, project)
    got_status, phrase, body = post_upload(server.legacy, token, path, fields_override=fields,
                                           username=username, filename=filename, data=data)
    assert got_status == status, (got_status, phrase, body)
    for fragment in reason:
        assert fragment.lower() in phrase.lower(), f"{fragment!r} not in the reason {phrase!r}"
        assert fragment.lower() in body.lower(), f"{fragment!r} not in the body {body!r}"
    assert phrase.strip() == body.strip()[:300].strip(), (phrase, body)
    sent = path.read_bytes() if data is None else data
    assert_nothing_left(server, before, project=project, filename=filename or path.name,
                        data=None if already_there else sent)
    return phrase


def accept(server: Server, token: str, dist: Dist, **fields: object) -> None:
    status, phrase, body = post_upload(server.legacy, token, dist.path,
                                       fields_override={"name": dist.name, "version": dist.version, **fields})
    assert status == 200, (status, phrase, body)
    assert temp_files(server) == []


def fields_of(dist: Dist) -> dict[str, object]:
    return {"name": dist.name, "version": dist.version}


# -- servers, users and tokens ----------------------------------------------------------------
@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with small limits and a prohibited name."""
    root = tmp_path_factory.mktemp("limited")
    config = root / "moorage.toml"
    config.write_text('[upload]\nmax_file_size = "64 KiB"\nmax_project_size = "200 KiB"\n'
                      'prohibited_names = ["forbidden-name"]\n')
    srv = start_server(root / "data", config=config)
    yield srv
    srv.stop()


def new_token(server: Server, user: str, *args: str) -> str:
    token = server.cli("token", "create", user, *args).stdout.strip().splitlines()[-1]
    assert token.startswith("moorage-"), token
    return token


def token_id(server: Server, user: str, description: str) -> str:
    listed = json.loads(server.cli("token", "list", user, "--json").stdout)
    [found] = [t["id"] for t in listed if t["description"] == description]
    return str(found)


def add_user(server: Server, name: str) -> None:
    server.cli("user", "add", name, "--password-stdin", input="a password for the tests\n")


# -- digests, form and metadata agreement -----------------------------------------------------
@pytest.mark.parametrize("kind", ["sha256", "md5", "blake2_256"])
def test_a_wrong_digest_is_refused(server: Server, unique: str, dists: Path, kind: str) -> None:
    wheel = make_wheel(dists, f"digest-{unique}", "1.0")
    other = b"some other bytes"
    wrong = {
        "sha256": hashlib.sha256(other).hexdigest(),
        "md5": hashlib.md5(other).hexdigest(),
        "blake2_256": hashlib.blake2b(other, digest_size=32).hexdigest(),
    }[kind]
    refuse(server, server.admin_token, wheel.path, status=400, project=wheel.name,
           fields={**fields_of(wheel), f"{kind}_digest": wrong},
           reason=[f"{kind} digest", "does not match"])


def test_an_upload_without_any_digest_is_refused(server: Server, unique: str, dists: Path) -> None:
    wheel = make_wheel(dists, f"nodigest-{unique}", "1.0")
    refuse(server, server.admin_token, wheel.path, status=400, project=wheel.name,
           fields={**fields_of(wheel), "md5_digest": OMIT, "sha256_digest": OMIT, "blake2_256_digest": OMIT},
           reason=["digest"])


def test_the_form_name_must_match_the_metadata(server: Server, unique: str, dists: Path) -> None:
    wheel = make_wheel(dists, f"formname-{unique}", "1.0")
    other = f"othername-{unique}"
    refuse(server, server.admin_token, wheel.path, status=400, project=other,
           fields={"name": other, "version": "1.0"},
           reason=[f"the form names project {other!r}", wheel.name])
    # Nor was the file's own project created.
    assert page_filenames(server, wheel.name) is None


def test_the_form_version_must_match_the_metadata(server: Server, unique: str, dists: Path) -> None:
    wheel = make_wheel(dists, f"formversion-{unique}", "1.0")
    refuse(server, server.admin_token, wheel.path, status=400, project=wheel.name,
           fields={"name": wheel.name, "version": "2.0"},
           reason=["the form says version 2.0", "metadata says 1.0"])


def test_a_wheel_renamed_to_another_project_is_refused(server: Server, unique: str, dists: Path) -> None:
    real, claimed = f"realproj-{unique}", f"claimed-{unique}"
    wheel = make_wheel(dists, real, "1.0", filename=f"{under(claimed)}-1.0-py3-none-any.whl")
    refuse(server, server.admin_token, wheel.path, status=400, project=claimed,
           fields={"name": claimed, "version": "1.0"},
           reason=["does not belong to", under(claimed)])
    # Sent under its real name in the form, the filename still names another project.
    refuse(server, server.admin_token, wheel.path, status=400, project=real,
           fields={"name": real, "version": "1.0"}, reason=["does not belong to"])


def test_a_filename_that_disagrees_with_the_metadata_is_refused(server: Server, unique: str,
                                                                 dists: Path) -> None:
    real, claimed = f"inside-{unique}", f"outside-{unique}"
    # The wheel is consistently built as `claimed` except for the Name in its METADATA.
    from tests.support.dists import metadata_text

    wheel = make_wheel(dists, claimed, "1.0", metadata=metadata_text(real, "1.0"))
    refuse(server, server.admin_token, wheel.path, status=400, project=real,
           fields={"name": real, "version": "1.0"},
           reason=[f"the filename {wheel.filename!r} does not match the metadata name {real!r}"])
    # An sdist renamed to another project's name.
    sdist = make_sdist(dists, real, "1.0", filename=f"{under(claimed)}-1.0.tar.gz")
    refuse(server, server.admin_token, sdist.path, status=400, project=real,
           fields={"name": real, "version": "1.0"},
           reason=["does not match the metadata name"])
    # And one renamed to another version.
    sdist = make_sdist(dists / "v", real, "1.0", filename=f"{under(real)}-2.0.tar.gz")
    refuse(server, server.admin_token, sdist.path, status=400, project=real,
           fields={"name": real, "version": "1.0"},
           reason=["does not match the metadata version 1.0"])


def test_a_second_sdist_for_a_release_is_refused(server: Server, unique: str, dists: Path) -> None:
    name = f"twosdist-{unique}"
    first = make_sdist(dists, name, "1.0")
    accept(server, server.admin_token, first)
    # "1.0.0" is a normalized version of its own (PEP 625 accepts the filename) and the same
    # release as "1.0" (PEP 440), so this is a second sdist for that release.
    second = make_sdist(dists / "second", name, "1.0.0")
    assert second.filename != first.filename
    refuse(server, server.admin_token, second.path, status=400, project=name,
           fields={"name": name, "version": "1.0.0"},
           reason=["release 1.0.0", "already has a source distribution"])
    assert page_filenames(server, name) == {first.filename}
    # The release still takes wheels.
    wheel = make_wheel(dists, name, "1.0.0")
    accept(server, server.admin_token, wheel)
    assert page_filenames(server, name) == {first.filename, wheel.filename}


# -- archive safety -------------------------------------------------------------------------
def _tar(name: str, *, kind: bytes = tarfile.REGTYPE, link: str = "",
         data: bytes = b"print('evil')\n") -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mtime, info.mode = kind, link, 1767225600, 0o644
    if kind == tarfile.REGTYPE:
        info.size = len(data)
        return info, data
    return info, None


def _wheel_with_symlink(out: Path, name: str) -> Dist:
    wheel = make_wheel(out, name, "1.0")
    with zipfile.ZipFile(wheel.path, "a") as zf:
        info = zipfile.ZipInfo(f"{under(name)}/link.py", date_time=(2026, 1, 1, 0, 0, 0))
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "../../../etc/passwd")
    return wheel


def _sdist(*members: Callable[[str], tuple[tarfile.TarInfo, bytes | None]]
           ) -> Callable[[Path, str], Dist]:
    def build(out: Path, name: str) -> Dist:
        top = f"{under(name)}-1.0"
        return make_sdist(out, name, "1.0", extra_members=[m(top) for m in members])
    return build


UNSAFE: dict[str, tuple[Callable[[Path, str], Dist], list[str]]] = {
    "wheel-dotdot": (lambda out, n: make_wheel(out, n, "1.0", extra_members={"../evil.py": b"x"}),
                     ["'../evil.py'", "outside the archive"]),
    "wheel-nested-dotdot": (
        lambda out, n: make_wheel(out, n, "1.0", extra_members={f"{under(n)}/../../evil.py": b"x"}),
        ["outside the archive"]),
    "wheel-absolute": (lambda out, n: make_wheel(out, n, "1.0", extra_members={"/tmp/evil.py": b"x"}),
                       ["'/tmp/evil.py'", "absolute path"]),
    "wheel-drive": (lambda out, n: make_wheel(out, n, "1.0", extra_members={"C:/evil.py": b"x"}),
                    ["absolute path"]),
    "wheel-backslash": (lambda out, n: make_wheel(out, n, "1.0", extra_members={"..\\evil.py": b"x"}),
                        ["evil.py", "backslash"]),
    "wheel-symlink": (_wheel_with_symlink, ["symbolic link"]),
    "sdist-dotdot": (_sdist(lambda top: _tar("../evil")), ["'../evil'", "outside the archive"]),
    "sdist-nested-dotdot": (_sdist(lambda top: _tar(f"{top}/../../evil")), ["outside the archive"]),
    "sdist-absolute": (_sdist(lambda top: _tar("/tmp/evil")), ["'/tmp/evil'", "absolute path"]),
    "sdist-symlink-out": (_sdist(lambda top: _tar(f"{top}/link", kind=tarfile.SYMTYPE, link="../../etc/passwd")),
                          ["links to '../../etc/passwd'", "outside the archive"]),
    "sdist-symlink-absolute": (_sdist(lambda top: _tar(f"{top}/link", kind=tarfile.SYMTYPE, link="/etc/passwd")),
                               ["links to '/etc/passwd'", "outside the archive"]),
    "sdist-symlink-sibling": (_sdist(lambda top: _tar(f"{top}/sub/link", kind=tarfile.SYMTYPE,
                                                      link="../../elsewhere/x")),
                              ["outside the archive"]),
    "sdist-hardlink-out": (_sdist(lambda top: _tar(f"{top}/hard", kind=tarfile.LNKTYPE, link="../etc/passwd")),
                           ["links to '../etc/passwd'", "outside the archive"]),
    "sdist-device": (_sdist(lambda top: _tar(f"{top}/dev", kind=tarfile.CHRTYPE)), ["device"]),
}


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_an_unsafe_archive_is_refused(server: Server, unique: str, dists: Path, case: str) -> None:
    build, reason = UNSAFE[case]
    dist = build(dists, f"unsafe-{unique}")
    refuse(server, server.admin_token, dist.path, status=400, project=dist.name, fields=fields_of(dist),
           reason=reason)


def test_links_inside_an_sdist_are_accepted(server: Server, unique: str, dists: Path) -> None:
    """The control for the refusals above: links that stay inside the archive are fine."""
    build = _sdist(lambda top: _tar(f"{top}/link", kind=tarfile.SYMTYPE, link="pyproject.toml"),
                   lambda top: _tar(f"{top}/sub/up", kind=tarfile.SYMTYPE, link="../PKG-INFO"),
                   lambda top: _tar(f"{top}/hard", kind=tarfile.LNKTYPE, link=f"{top}/pyproject.toml"))
    dist = build(dists, f"safelinks-{unique}")
    accept(server, server.admin_token, dist)
    assert page_filenames(server, dist.name) == {dist.filename}


def _peak_rss(server: Server) -> int:
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    assert match, status
    return int(match.group(1)) * 1024


@pytest.mark.parametrize("builder", [make_zip_bomb_wheel, make_tar_bomb_sdist], ids=["zip", "tar"])
def test_a_decompression_bomb_is_refused(server: Server, unique: str, dists: Path,
                                         builder: Callable[..., Dist]) -> None:
    bomb = builder(dists, f"bomb-{unique}", "1.0", expanded=BOMB_SIZE)
    assert bomb.path.stat().st_size * 500 < BOMB_SIZE, "the test bomb does not compress like a bomb"
    peak = _peak_rss(server)
    refuse(server, server.admin_token, bomb.path, status=400, project=bomb.name, fields=fields_of(bomb),
           reason=["expands to more than", "decompression bomb"])
    grown = _peak_rss(server) - peak
    assert grown < BOMB_SIZE // 2, f"the server's peak memory grew by {grown} bytes"


# -- sizes --------------------------------------------------------------------------------------
def _heavy_wheel(out: Path, name: str, version: str, payload: int) -> Dist:
    return make_wheel(out, name, version, extra_members={f"{under(name)}/blob.bin": os.urandom(payload)})


def test_a_file_over_the_size_limit_is_refused(limited: Server, unique: str, dists: Path) -> None:
    wheel = _heavy_wheel(dists, f"big-{unique}", "1.0", 80 * KiB)
    assert wheel.path.stat().st_size > 64 * KiB
    phrase = refuse(limited, limited.admin_token, wheel.path, status=400, project=wheel.name,
                    fields=fields_of(wheel), reason=["larger than", "64 KiB per file"])
    # The reason must not state a size within the limit for a file that is over it.
    assert not re.search(r"the file is 64 KiB\b", phrase), phrase


def test_a_body_far_over_the_size_limit_is_refused_before_it_is_read(limited: Server, unique: str,
                                                                      dists: Path) -> None:
    wheel = make_wheel(dists, f"huge-{unique}", "1.0")
    refuse(limited, limited.admin_token, wheel.path, status=400, project=wheel.name, fields=fields_of(wheel),
           data=b"\0" * (9 * MiB), reason=["the limit is", "per file"])


def test_a_file_that_would_take_the_project_over_its_limit_is_refused(limited: Server, unique: str,
                                                                       dists: Path) -> None:
    name = f"grow-{unique}"
    for version in ("1.0", "1.1", "1.2"):
        accept(limited, limited.admin_token, _heavy_wheel(dists, name, version, 58_000))
    fourth = _heavy_wheel(dists, name, "1.3", 58_000)
    assert fourth.path.stat().st_size < 64 * KiB  # under the per-file limit on its own
    phrase = refuse(limited, limited.admin_token, fourth.path, status=400, project=name,
                    fields=fields_of(fourth), reason=["200 KiB per project"])
    grown = re.search(r"would grow to ([\d.]+) KiB", phrase)
    assert grown and float(grown.group(1)) > 200, phrase


# -- authentication and authorization ---------------------------------------------------------
def test_an_upload_without_credentials_is_refused(server: Server, unique: str, dists: Path) -> None:
    wheel = make_wheel(dists, f"noauth-{unique}", "1.0")
    refuse(server, None, wheel.path, status=401, project=wheel.name, fields=fields_of(wheel),
           reason=["authentication required", "__token__"])


def test_a_user_name_other_than_token_is_refused(server: Server, unique: str, dists: Path) -> None:
    wheel = make_wheel(dists, f"username-{unique}", "1.0")
    refuse(server, server.admin_token, wheel.path, status=403, project=wheel.name, fields=fields_of(wheel),
           username="admin", reason=["API tokens", "__token__"])


@pytest.mark.parametrize("token", ["moorage-000000000000-" + "A" * 43, "not-a-token-at-all"])
def test_an_unknown_token_is_refused(server: Server, unique: str, dists: Path, token: str) -> None:
    wheel = make_wheel(dists, f"unknown-{unique}", "1.0")
    refuse(server, token, wheel.path, status=403, project=wheel.name, fields=fields_of(wheel),
           reason=["invalid or non-existent authentication information"])


def test_an_expired_token_is_refused(server: Server, unique: str, dists: Path) -> None:
    token = new_token(server, "admin", "--expires-days", "1", "--description", f"expiring-{unique}")
    tid = token_id(server, "admin", f"expiring-{unique}")
    accept(server, token, make_wheel(dists, f"expiry-{unique}", "1.0"))  # valid until it expires
    # The server's clock cannot be moved from outside; move the expiry into the past instead.
    with TestDB(server.data_dir) as conn:
        changed = conn.execute("UPDATE tokens SET expires_at = ? WHERE id = ?",
                               ("2020-01-02 03:04:05.000000", tid)).rowcount
    assert changed == 1
    wheel = make_wheel(dists, f"expiry-{unique}", "1.1")
    refuse(server, token, wheel.path, status=403, project=wheel.name, fields=fields_of(wheel),
           reason=[f"the API token {tid} expired", "2020-01-02 03:04"])


def test_a_revoked_token_is_refused(server: Server, unique: str, dists: Path) -> None:
    token = new_token(server, "admin", "--description", f"revoke-me-{unique}")
    tid = token_id(server, "admin", f"revoke-me-{unique}")
    accept(server, token, make_wheel(dists, f"revoked-{unique}", "1.0"))
    server.cli("token", "revoke", tid)
    listed = json.loads(server.cli("token", "list", "admin", "--json").stdout)
    assert [t["revoked_at"] for t in listed if t["id"] == tid] != [None]
    wheel = make_wheel(dists, f"revoked-{unique}", "1.1")
    refuse(server, token, wheel.path, status=403, project=wheel.name, fields=fields_of(wheel),
           reason=[f"the API token {tid}", "revoked"])


def test_a_token_scoped_to_another_project_is_refused(server: Server, unique: str, dists: Path) -> None:
    other = f"scope-other-{unique}"
    token = new_token(server, "admin", "--project", other)
    wheel = make_wheel(dists, f"scope-target-{unique}", "1.0")
    refuse(server, token, wheel.path, status=403, project=wheel.name, fields=fields_of(wheel),
           reason=[f"scoped to {other}", f"not {norm(wheel.name)!r}"])
    accept(server, token, make_wheel(dists, other, "1.0"))  # the project it is scoped to


def test_a_user_who_does_not_maintain_the_project_is_refused(server: Server, unique: str,
                                                              dists: Path) -> None:
    bob = f"bob-{unique}"
    add_user(server, bob)
    bobs = new_token(server, bob)
    name = f"adminsown-{unique}"
    accept(server, server.admin_token, make_wheel(dists, name, "1.0"))
    wheel = make_wheel(dists, name, "2.0")
    refuse(server, bobs, wheel.path, status=403, project=name, fields=fields_of(wheel),
           reason=[f"the user {bob!r} is not an owner or maintainer of {norm(name)!r}"])
    accept(server, bobs, make_wheel(dists, f"bobsown-{unique}", "1.0"))  # his own new project is fine


# -- names --------------------------------------------------------------------------------------
SIMILAR = {
    "separators": ("foo-bar-{u}", "foobar{u}"),
    "separator-kinds": ("foo-bar-{u}x", "foo.bar_{u}-x"),
    "l-to-1": ("pool-{u}", "poo1-{u}"),
    "i-to-l": ("pil-{u}", "pll-{u}"),
    "1-to-i": ("tool1-{u}", "tooli-{u}"),
    "o-to-0": ("foo-{u}", "f0o-{u}"),
    "0-to-o": ("lib0-{u}", "libo-{u}"),
}


@pytest.mark.parametrize("case", sorted(SIMILAR))
def test_a_look_alike_project_name_is_refused(server: Server, unique: str, dists: Path, case: str) -> None:
    existing, new = (n.format(u=unique) for n in SIMILAR[case])
    assert norm(existing) != norm(new)
    accept(server, server.admin_token, make_wheel(dists, existing, "1.0"))
    wheel = make_wheel(dists / "new", new, "1.0")
    refuse(server, server.admin_token, wheel.path, status=400, project=new, fields=fields_of(wheel),
           reason=[f"the name {new!r} is too similar to the existing project {existing!r}"])


def test_the_same_name_spelled_differently_is_the_same_project(server: Server, unique: str,
                                                               dists: Path) -> None:
    """The control for look-alikes: a name that normalizes the same joins the existing project."""
    accept(server, server.admin_token, make_wheel(dists, f"foo-bar-{unique}", "1.0"))
    wheel = make_wheel(dists, f"Foo_Bar.{unique}", "2.0")
    accept(server, server.admin_token, wheel)
    assert wheel.filename in (page_filenames(server, f"foo-bar-{unique}") or set())


@pytest.mark.parametrize("name", ["forbidden-name", "Forbidden_Name", "forbidden.name"])
def test_a_prohibited_name_is_refused(limited: Server, dists: Path, name: str) -> None:
    wheel = make_wheel(dists, name, "1.0")
    refuse(limited, limited.admin_token, wheel.path, status=400, project=name, fields=fields_of(wheel),
           reason=["'forbidden-name' is prohibited"])


# -- the form and the filename --------------------------------------------------------------
FORM_CASES: dict[str, tuple[str, str, dict[str, object], list[str]]] = {
    # case: (kind of dist, filename sent ("{w}"/"{s}" = the real one), fields, reason fragments)
    "slash": ("wheel", "sub/{w}", {}, ["path separators"]),
    "dotdot": ("wheel", "../{w}", {}, ["path separators"]),
    "backslash": ("wheel", "..\\{w}", {}, ["path separators"]),
    "control-char": ("wheel", "x\x01{w}", {}, ["control characters"]),
    "wheel-not-whl": ("wheel", "{stem}-1.0-py3-none-any.zip", {}, ["a bdist_wheel must end in .whl"]),
    "wheel-bad-name": ("wheel", "{stem}-1.0.whl", {}, ["invalid wheel filename"]),
    "sdist-zip-not-a-zip": ("sdist", "{stem}-1.0.zip", {}, ["not a valid zip file"]),
    "sdist-tar-bz2": ("sdist", "{stem}-1.0.tar.bz2", {}, ["must be a .tar.gz"]),
    "sdist-as-wheel": ("sdist", "{s}", {"filetype": "bdist_wheel"}, ["a bdist_wheel must end in .whl"]),
    "filetype-egg": ("wheel", "{w}", {"filetype": "bdist_egg"}, ["unsupported filetype 'bdist_egg'"]),
    "filetype-missing": ("wheel", "{w}", {"filetype": OMIT}, ["filetype"]),
    "protocol-missing": ("wheel", "{w}", {"protocol_version": OMIT}, ["protocol_version"]),
    "protocol-wrong": ("wheel", "{w}", {"protocol_version": "2"}, ["protocol_version '2'", "use 1"]),
    "action-wrong": ("wheel", "{w}", {":action": "submit"}, ["'submit'", "file_upload"]),
    "action-missing": ("wheel", "{w}", {":action": OMIT}, ["no :action", "file_upload"]),
    "pyversion-missing": ("wheel", "{w}", {"pyversion": OMIT}, ["pyversion"]),
    "pyversion-sdist": ("sdist", "{s}", {"pyversion": "py3"}, ["'source'"]),
    "digest-not-hex": ("wheel", "{w}", {"sha256_digest": "z" * 64}, ["not a hex-encoded digest"]),
    "name-invalid": ("wheel", "{w}", {"name": "-bad name-"}, ["not a valid project name"]),
    "version-invalid": ("wheel", "{w}", {"version": "1.0\r\nX-Evil: 1"}, ["is not a valid version"]),
    "version-local": ("wheel", "{w}", {"version": "1.0+cpu"}, ["local version", "allow_local_versions"]),
}


@pytest.mark.parametrize("case", sorted(FORM_CASES))
def test_an_invalid_form_or_filename_is_refused(server: Server, unique: str, dists: Path, case: str) -> None:
    kind, sent, fields, reason = FORM_CASES[case]
    name = f"form-{unique}"
    dist = make_wheel(dists, name, "1.0") if kind == "wheel" else make_sdist(dists, name, "1.0")
    filename = sent.format(w=dist.filename, s=dist.filename, stem=under(name))
    refuse(server, server.admin_token, dist.path, status=400, project=name, filename=filename,
           fields={**fields_of(dist), "filetype": "bdist_wheel" if kind == "wheel" else "sdist", **fields},
           reason=reason)


@pytest.mark.parametrize("case", ["name-case", "name-dash", "name-dot", "version", "zip"])
def test_an_sdist_named_as_before_pep_625_is_accepted(server: Server, unique: str, dists: Path, case: str) -> None:
    """Real sdists of older releases are named ``Foo-Bar-1.0.tar.gz`` or ``.zip``; pip reads them."""
    name, version = f"Sdist-Norm.{unique}", "1.0"
    stem, suffix = {
        "name-case": (f"Sdist_Norm_{unique}-1.0", ".tar.gz"),
        "name-dash": (f"sdist-norm-{unique}-1.0", ".tar.gz"),
        "name-dot": (f"sdist.norm.{unique}-1.0", ".tar.gz"),
        "version": (f"sdist_norm_{unique}-01.0", ".tar.gz"),
        "zip": (f"Sdist-Norm.{unique}-1.0", ".zip"),
    }[case]
    sdist = (make_zip_sdist if suffix == ".zip" else make_sdist)(dists, name, version, filename=stem + suffix)
    accept(server, server.admin_token, sdist)
    assert page_filenames(server, name) == {sdist.filename}
    # The one sdist of the release: the normalized name of the same release is now refused.
    good = make_sdist(dists / "good", name, version, requires=["attrs"])
    refuse(server, server.admin_token, good.path, status=400, project=name, fields=fields_of(good),
           reason=["already has a source distribution"])


def test_an_older_sdist_name_must_still_name_the_release(server: Server, unique: str, dists: Path) -> None:
    name = f"older-{unique}"
    sdist = make_sdist(dists, name, "1.0", filename=f"Older-{unique}-1.0-1.tar.gz")
    refuse(server, server.admin_token, sdist.path, status=400, project=name, fields=fields_of(sdist),
           reason=["does not match the metadata version 1.0"])


CONTROL = {"NUL": "\x00", "ESC": "\x1b[31m", "BEL": "\x07", "DEL": "\x7f", "C1": "\x9b"}


@pytest.mark.parametrize("char", sorted(CONTROL))
def test_a_control_character_in_a_single_line_field_is_refused(server: Server, unique: str, dists: Path,
                                                               char: str) -> None:
    from tests.support.dists import metadata_text

    name = f"ctrl-{unique}"
    raw = metadata_text(name, "1.0").replace("Summary: ", f"Summary: before{CONTROL[char]}after ", 1)
    assert CONTROL[char] in raw
    wheel = make_wheel(dists, name, "1.0", metadata=raw)
    refuse(server, server.admin_token, wheel.path, status=400, project=name, fields=fields_of(wheel),
           reason=["Summary holds the control character"])
    author = metadata_text(name, "1.0") .replace("\n\n", f"\nAuthor: A{CONTROL[char]}B\n\n", 1)
    wheel = make_wheel(dists / "author", name, "1.0", metadata=author)
    refuse(server, server.admin_token, wheel.path, status=400, project=name, fields=fields_of(wheel),
           reason=["Author holds the control character"])


def test_an_identical_reupload_with_a_bad_form_is_refused(server: Server, unique: str, dists: Path) -> None:
    """The form is checked before the bytes are recognised: an identical re-upload answers 200 only to a
    well-formed form that names the file's own release."""
    wheel = make_wheel(dists, f"again-{unique}", "1.0")
    accept(server, server.admin_token, wheel)
    for fields, reason in (
        ({"version": "1.0\r\nX-Evil: 1"}, ["is not a valid version"]),
        ({"version": "2.0"}, ["the form says version 2.0", "of version 1.0"]),
        ({":action": OMIT}, ["no :action"]),
        ({"protocol_version": "7"}, ["protocol_version '7'"]),
        ({"filetype": "sdist", "pyversion": "source"}, ["must be a .tar.gz"]),
    ):
        refuse(server, server.admin_token, wheel.path, status=400, project=wheel.name,
               fields={**fields_of(wheel), **fields}, reason=reason, already_there=True)
    accept(server, server.admin_token, wheel)  # and the well-formed one still answers 200


def test_local_versions_are_taken_when_the_operator_allows_them(tmp_path_factory: pytest.TempPathFactory,
                                                                dists: Path) -> None:
    root = tmp_path_factory.mktemp("local")
    config = root / "moorage.toml"
    config.write_text("[upload]\nallow_local_versions = true\n")
    srv = start_server(root / "data", config=config)
    try:
        wheel = make_wheel(dists, "localbuild", "1.0+cpu")
        accept(srv, srv.admin_token, wheel)
        assert page_filenames(srv, "localbuild") == {wheel.filename}
    finally:
        srv.stop()


@pytest.mark.parametrize("kind", ["wheel", "sdist"])
def test_an_unsupported_metadata_version_is_refused(server: Server, unique: str, dists: Path,
                                                    kind: str) -> None:
    name = f"mdv-{unique}"
    build = make_wheel if kind == "wheel" else make_sdist
    dist = build(dists, name, "1.0", metadata_version="3.0")
    refuse(server, server.admin_token, dist.path, status=400, project=name, fields=fields_of(dist),
           reason=["Metadata-Version 3.0 is not supported"])


def test_a_known_filename_with_different_bytes_is_refused(server: Server, unique: str, dists: Path) -> None:
    name = f"reuse-{unique}"
    first = make_wheel(dists, name, "1.0")
    accept(server, server.admin_token, first)
    accept(server, server.admin_token, first)  # the identical bytes again: 200
    second = make_wheel(dists / "again", name, "1.0", module_body="changed = True\n")
    assert second.filename == first.filename and second.sha256 != first.sha256
    refuse(server, server.admin_token, second.path, status=400, project=name, fields=fields_of(second),
           reason=["File already exists"])
    status, body = http_get(server.simple + norm(name) + "/", JSON_V1)
    [listed] = json.loads(body)["files"]
    assert listed["hashes"]["sha256"] == first.sha256


# -- the reason reaches the user of a real client ---------------------------------------------
def _said(result: object) -> str:
    out = getattr(result, "stdout", "") + getattr(result, "stderr", "")
    return " ".join(out.split())


def test_twine_shows_file_already_exists(server: Server, unique: str, dists: Path) -> None:
    name = f"twine-reuse-{unique}"
    first = make_wheel(dists, name, "1.0")
    ok = clients.twine_upload(server.legacy, server.admin_token, first.path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    second = make_wheel(dists / "again", name, "1.0", module_body="changed = True\n")
    before = snapshot(server, name)
    result = clients.twine_upload(server.legacy, server.admin_token, second.path)
    assert result.returncode != 0
    assert "400" in _said(result) and "File already exists" in _said(result), _said(result)
    assert_nothing_left(server, before, project=name, filename=second.filename, data=second.path.read_bytes())


def test_twine_shows_a_scope_refusal(server: Server, unique: str, dists: Path) -> None:
    other = f"twine-scope-other-{unique}"
    token = new_token(server, "admin", "--project", other)
    wheel = make_wheel(dists, f"twine-scope-{unique}", "1.0")
    before = snapshot(server, wheel.name)
    result = clients.twine_upload(server.legacy, token, wheel.path)
    assert result.returncode != 0
    assert "403" in _said(result) and f"is scoped to {other}" in _said(result), _said(result)
    assert_nothing_left(server, before, project=wheel.name, filename=wheel.filename,
                        data=wheel.path.read_bytes())


def test_twine_shows_a_look_alike_refusal(server: Server, unique: str, dists: Path) -> None:
    accept(server, server.admin_token, make_wheel(dists, f"twine-alike-{unique}", "1.0"))
    wheel = make_wheel(dists / "new", f"twinealike{unique}", "1.0")
    before = snapshot(server, wheel.name)
    result = clients.twine_upload(server.legacy, server.admin_token, wheel.path)
    assert result.returncode != 0
    assert "too similar to the existing project" in _said(result), _said(result)
    assert_nothing_left(server, before, project=wheel.name, filename=wheel.filename,
                        data=wheel.path.read_bytes())
