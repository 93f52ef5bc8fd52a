"""Races against four worker processes on PostgreSQL: the rules hold under concurrency.

Every client connects first, waits at a barrier, then sends its whole request at once, so
the uploads reach the server within a millisecond or so of each other. Outcomes are checked
against the log's order: each must be one the policy allows at some serialization.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import secrets
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.dists import make_wheel
from tests.support.server import Server, cli_env, run_cli, start_server
from tests.support.upload import encode_multipart, form_fields

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

PG = dict(host="127.0.0.1", port=5432, user="postgres")


def _pg_admin():  # type: ignore[no-untyped-def]
    import psycopg

    return psycopg.connect(dbname="test", autocommit=True, connect_timeout=5, **PG)


@dataclass
class RaceServer:
    server: Server
    offset_file: Path
    offset: float = 0.0

    def move_clock(self, delta: timedelta) -> None:
        self.offset += delta.total_seconds()
        tmp = self.offset_file.with_suffix(".tmp")
        tmp.write_text(str(self.offset))
        tmp.replace(self.offset_file)


@pytest.fixture(scope="module")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RaceServer]:
    try:
        admin = _pg_admin()
    except Exception as exc:  # psycopg.OperationalError, or psycopg missing
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL at 127.0.0.1:5432 is needed in CI: {exc}")
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is not reachable: {exc}")
    name = f"moorage_races_{os.getpid()}_{secrets.token_hex(3)}"
    admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    root = tmp_path_factory.mktemp("races")
    env = {**cli_env(root / "data"), "MOORAGE_DATABASE_URL": url}
    run_cli(root / "data", "db", "upgrade", env=env)
    offset = root / "clock-offset"
    server = start_server(root / "data", workers=4,
                          extra_env={"MOORAGE_DATABASE_URL": url, "MOORAGE_CLOCK_OFFSET_FILE": str(offset)})
    try:
        yield RaceServer(server, offset)
    finally:
        server.stop()
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@dataclass
class Reply:
    status: int
    reason: str
    rule: str | None
    body: str


def _race(url: str, requests: list[tuple[str, bytes, dict[str, str]]],
          before_go: Callable[[], None] | None = None) -> list[Reply]:
    """Send every (method+path, body, headers) at the same instant; replies in the same order."""
    parts = urllib.request.urlparse(url)
    barrier = threading.Barrier(len(requests) + 1)
    replies: list[Reply | None] = [None] * len(requests)

    def one(i: int, target: str, body: bytes, headers: dict[str, str]) -> None:
        method, _, path = target.partition(" ")
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        conn.connect()
        barrier.wait()
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        replies[i] = Reply(resp.status, resp.reason, resp.getheader("X-Moorage-Rule"),
                           resp.read().decode("utf-8", "replace"))
        conn.close()

    threads = [threading.Thread(target=one, args=(i, *r)) for i, r in enumerate(requests)]
    for t in threads:
        t.start()
    barrier.wait()
    if before_go is not None:
        before_go()
    for t in threads:
        t.join(120)
    assert all(r is not None for r in replies), "a client got no reply"
    return [r for r in replies if r is not None]


def _upload_request(token: str, path: Path, data: bytes | None = None) -> tuple[str, bytes, dict[str, str]]:
    payload = path.read_bytes() if data is None else data
    name, version = path.name.split("-")[:2]
    body, content_type = encode_multipart(form_fields(path, payload, name, version), path.name, payload)
    auth = base64.b64encode(f"__token__:{token}".encode()).decode()
    return "POST /legacy/", body, {"Content-Type": content_type, "Content-Length": str(len(body)),
                                   "Authorization": f"Basic {auth}"}


def _get_json(url: str, token: str | None = None) -> dict[str, object]:
    headers = {"Accept": "application/vnd.pypi.simple.v1+json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as resp:
        return dict(json.load(resp))


def _events(server: Server, project: str) -> list[dict[str, object]]:
    doc = _get_json(f"{server.url}api/projects/{project}/events", server.admin_token)
    return list(doc["events"])  # type: ignore[arg-type]


def _files(server: Server, project: str) -> dict[str, dict[str, object]]:
    page = _get_json(f"{server.simple}{project}/")
    return {f["filename"]: f for f in page["files"]}  # type: ignore[index, union-attr]


def _verify(server: Server, tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "moorage", "verify", "--index", server.url,
                             "--state", str(tmp_path / "verify-state.json")],
                            capture_output=True, text=True, timeout=300, env=cli_env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr


TAGS = [f"cp3{minor}-cp3{minor}-{plat}" for minor in (10, 11, 12, 13)
        for plat in ("manylinux_2_17_x86_64", "manylinux_2_17_aarch64", "macosx_11_0_arm64", "win_amd64")]


def test_sixteen_wheels_of_one_release_at_once_all_land_once_with_one_event_each(
        pg_server: RaceServer, tmp_path: Path) -> None:
    server = pg_server.server
    wheels = [make_wheel(tmp_path, "matrix", "1.0", tag=tag) for tag in TAGS]
    assert len(wheels) == 16
    replies = _race(server.url, [_upload_request(server.admin_token, w.path) for w in wheels])
    assert [r.status for r in replies] == [200] * 16, [(r.status, r.reason) for r in replies]
    files = _files(server, "matrix")
    assert sorted(files) == sorted(w.filename for w in wheels)
    for w in wheels:
        assert files[w.filename]["hashes"] == {"sha256": w.sha256}
    events = _events(server, "matrix")
    added = [e["subject"] for e in events if e["action"] == "file-added"]
    assert sorted(added) == sorted(f"file:{w.filename}" for w in wheels)  # one event each
    assert [e["action"] for e in events].count("release-created") == 1
    assert [e["action"] for e in events].count("project-created") == 1
    serials = [int(e["serial"]) for e in events]  # type: ignore[call-overload]
    assert serials == sorted(serials) and len(set(serials)) == len(serials)
    _verify(server, tmp_path)


def test_eight_different_files_under_one_filename_exactly_one_wins(pg_server: RaceServer, tmp_path: Path) -> None:
    server = pg_server.server
    variants = []
    for i in range(8):
        out = tmp_path / f"v{i}"
        variants.append(make_wheel(out, "contested", "1.0", module_body=f"variant = {i}\n"))
    assert len({v.sha256 for v in variants}) == 8
    replies = _race(server.url, [_upload_request(server.admin_token, v.path) for v in variants])
    winners = [i for i, r in enumerate(replies) if r.status == 200]
    assert len(winners) == 1, [(r.status, r.reason) for r in replies]
    for i, r in enumerate(replies):
        if i != winners[0]:
            assert r.status == 400 and "File already exists" in r.reason, (r.status, r.reason, r.body)
    (offered,) = _files(server, "contested").values()
    assert offered["hashes"] == {"sha256": variants[winners[0]].sha256}
    added = [e for e in _events(server, "contested") if e["action"] == "file-added"]
    assert len(added) == 1
    _verify(server, tmp_path)


def test_uploads_racing_a_release_deletion_fall_on_one_side_of_it(pg_server: RaceServer, tmp_path: Path) -> None:
    server = pg_server.server
    first = make_wheel(tmp_path, "doomed", "1.0", tag="py3-none-any")
    assert _race(server.url, [_upload_request(server.admin_token, first.path)])[0].status == 200
    wheels = [make_wheel(tmp_path, "doomed", "1.0", tag=tag) for tag in TAGS[:10]]
    body = json.dumps({"version": "1.0", "reason": "built from the wrong commit"}).encode()
    delete = ("POST /api/projects/doomed/delete", body,
              {"Content-Type": "application/json", "Content-Length": str(len(body)),
               "Authorization": f"Bearer {server.admin_token}"})
    replies = _race(server.url, [_upload_request(server.admin_token, w.path) for w in wheels] + [delete])
    assert replies[-1].status == 200, replies[-1]
    assert all(r.status == 200 for r in replies[:-1]), [(r.status, r.reason) for r in replies]
    events = _events(server, "doomed")
    (deletion,) = [e for e in events if e["action"] in ("release-deleted", "file-deleted")]
    deleted = {f["filename"] for f in deletion["payload"]["files"]}  # type: ignore[index, union-attr]
    added_at = {str(e["subject"]).removeprefix("file:"): int(e["serial"])  # type: ignore[call-overload]
                for e in events if e["action"] == "file-added"}
    offered = set(_files(server, "doomed"))
    # One serialization explains everything: files added before the deletion went with it,
    # files added after it are offered (they brought the release back).
    for filename, serial in added_at.items():
        if serial < int(deletion["serial"]):  # type: ignore[call-overload]
            assert filename in deleted and filename not in offered, filename
        else:
            assert filename in offered and filename not in deleted, filename
    assert first.filename in deleted
    _verify(server, tmp_path)


def test_uploads_racing_the_upload_window_closing_are_accepted_before_it_and_refused_after(
        pg_server: RaceServer, tmp_path: Path) -> None:
    server = pg_server.server
    first = make_wheel(tmp_path, "closing", "1.0", tag="py3-none-any")
    assert _race(server.url, [_upload_request(server.admin_token, first.path)])[0].status == 200
    opened = datetime.fromisoformat(str(_files(server, "closing")[first.filename]["upload-time"]))
    wheels = [make_wheel(tmp_path, "closing", "1.0", tag=tag) for tag in TAGS[:12]]
    # The window closes while the uploads are in flight: a few land before it, the rest after.
    closes = opened + timedelta(days=14)
    replies = _race(server.url, [_upload_request(server.admin_token, w.path) for w in wheels],
                    before_go=lambda: pg_server.move_clock(
                        closes - timedelta(milliseconds=200) - datetime.now(UTC) - timedelta(seconds=pg_server.offset)))
    files = _files(server, "closing")
    for w, r in zip(wheels, replies, strict=True):
        if r.status == 200:
            uploaded = datetime.fromisoformat(str(files[w.filename]["upload-time"]))
            assert uploaded < closes, (w.filename, uploaded, closes)
        else:
            assert (r.status, r.rule) == (400, "upload-window"), (r.status, r.reason)
            assert w.filename not in files
    accepted = sum(r.status == 200 for r in replies)
    assert len(files) == 1 + accepted
    late = make_wheel(tmp_path, "closing", "1.0", tag="py2-none-any")
    # The racing uploads may all finish inside the last 200 ms: make sure the window has closed.
    behind = closes + timedelta(seconds=1) - datetime.now(UTC) - timedelta(seconds=pg_server.offset)
    if behind > timedelta(0):
        pg_server.move_clock(behind)
    (after,) = _race(server.url, [_upload_request(server.admin_token, late.path)])
    assert (after.status, after.rule) == (400, "upload-window")
    _verify(server, tmp_path)


def test_one_token_uploading_new_and_existing_releases_at_once_never_deadlocks(
        pg_server: RaceServer, tmp_path: Path) -> None:
    """A CI matrix shares one token: uploads that create releases and uploads into an existing
    release, at the same instant, must all land (no deadlock answered as a 503)."""
    server = pg_server.server
    for round_ in range(3):
        base = make_wheel(tmp_path, f"shared{round_}", "1.0", tag="py3-none-any")
        assert _race(server.url, [_upload_request(server.admin_token, base.path)])[0].status == 200
        into_existing = [make_wheel(tmp_path, f"shared{round_}", "1.0", tag=tag) for tag in TAGS[:4]]
        new_releases = [make_wheel(tmp_path, f"fresh{round_}x{i}", "1.0") for i in range(4)]
        new_versions = [make_wheel(tmp_path, f"shared{round_}", f"2.{i}") for i in range(2)]
        dists = into_existing + new_releases + new_versions
        replies = _race(server.url, [_upload_request(server.admin_token, d.path) for d in dists])
        assert [r.status for r in replies] == [200] * len(dists), [(r.status, r.reason) for r in replies]
    _verify(server, tmp_path)
