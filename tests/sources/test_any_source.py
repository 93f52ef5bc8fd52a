"""The simple API and the file downloads serve any source: here one held in memory, which
knows nothing of the database or the blob store (as an upstream mirror would not)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from starlette.requests import Request

from moorage.domain.clock import ManualClock
from moorage.sources import (
    BlobBytes,
    BlobMissing,
    Changes,
    FileView,
    FoundFile,
    LocalBytes,
    ProjectList,
    ProjectPage,
    ProjectView,
    ReleaseView,
    RemoteBytes,
    Source,
)
from moorage.web.files import FileViews
from moorage.web.negotiation import JSON_V1
from moorage.web.simple import PageCache
from moorage.web.simple_api import SimpleAPI
from tests.support.loops import run_in_own_loop

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
HELD_UNTIL = T0 + timedelta(days=2)  # e.g. a mirror's cooldown: offered from then on
OLD = b"the bytes of far-away 1.0" * 100
NEW = b"the bytes of far-away 2.0"
METADATA = b"Metadata-Version: 2.1\nName: far-away\nVersion: 1.0\n"


def _file(filename: str, version: str, data: bytes, uploaded: datetime, metadata: bytes | None = None) -> FileView:
    yanked = version == "0.9"
    return FileView(filename, version, "bdist_wheel", "py3", hashlib.sha256(data).hexdigest(), "b" * 64, "m" * 32,
                    len(data), uploaded, ">=3.9", hashlib.sha256(metadata).hexdigest() if metadata else None,
                    yanked_at=uploaded if yanked else None, yanked_reason="broken" if yanked else None)


@dataclass(frozen=True)
class _Stream:
    data: bytes
    last_modified: datetime | None = None

    @property
    def length(self) -> int:
        return len(self.data)

    def chunks(self, chunk_size: int = 1 << 16) -> Iterator[bytes]:
        for i in range(0, len(self.data), chunk_size):
            yield self.data[i:i + chunk_size]


class MemorySource:
    """One project, "far-away": a yanked 0.9, a 1.0 with its metadata, and a 2.0 held until
    HELD_UNTIL. Bytes come from memory (RemoteBytes), or, for 0.9, from a file on disk."""

    def __init__(self, disk: Path) -> None:
        self.serial = 7
        self.changed: tuple[str, ...] = ()
        self.disk = disk
        self.files = [_file("far_away-0.9-py3-none-any.whl", "0.9", b"old", T0 - timedelta(days=9)),
                      _file("far_away-1.0-py3-none-any.whl", "1.0", OLD, T0 - timedelta(days=1), METADATA),
                      _file("far_away-2.0-py3-none-any.whl", "2.0", NEW, T0)]
        self.blobs = {f.sha256: data for f, data in zip(self.files, (b"old", OLD, NEW), strict=True)}
        self.blobs[hashlib.sha256(METADATA).hexdigest()] = METADATA
        (disk / self.files[0].sha256).write_bytes(b"old")

    def _offered(self, now: datetime) -> tuple[list[FileView], datetime | None]:
        if now >= HELD_UNTIL:
            return self.files, None
        return [f for f in self.files if f.version != "2.0"], HELD_UNTIL

    def project_list(self) -> ProjectList:
        return ProjectList(self.serial, [("Far_Away", "far-away")])

    def project(self, name: str, now: datetime) -> ProjectPage | None:
        if name != "far-away":
            return None
        files, until = self._offered(now)
        releases = [ReleaseView(f.version, f.upload_time, f.requires_python, {}) for f in files]
        view = ProjectView("Far_Away", "far-away", "deprecated", "use near-by", self.serial, releases, files,
                           successor="near-by")
        return ProjectPage(view, until)

    def record(self, name: str, now: datetime) -> ProjectView | None:
        page = self.project(name, now)
        return None if page is None else page.view

    def file(self, filename: str, now: datetime) -> FoundFile | None:
        files, until = self._offered(now)
        return next((FoundFile(f, "far-away", until) for f in files if f.filename == filename), None)

    def locate(self, found: FoundFile, *, metadata: bool = False) -> BlobBytes:
        sha = found.file.metadata_sha256 if metadata else found.file.sha256
        assert sha is not None
        if found.file.version == "0.9":
            return LocalBytes(self.disk / sha)

        def read(byte_range: tuple[int, int] | None) -> _Stream:
            if sha not in self.blobs:
                raise BlobMissing(sha)
            data = self.blobs[sha]
            return _Stream(data if byte_range is None else data[byte_range[0]:byte_range[1] + 1])

        url = None if found.file.version == "1.0" else (lambda ctype, disposition: f"https://cdn.invalid/{sha}")
        return RemoteBytes(size=lambda: len(self.blobs[sha]) if sha in self.blobs else None, read=read, url=url)

    def changes_since(self, serial: int) -> Changes:
        return Changes(self.serial, self.changed if serial else ("far-away",))


def _source(tmp_path: Path) -> MemorySource:
    source = MemorySource(tmp_path)
    _typed: Source = source  # the protocol, checked by mypy
    return source


Answer = tuple[int, dict[str, str], bytes]


async def _asgi(app: Any, path: str, headers: dict[str, str] | None = None, method: str = "GET",
                path_params: dict[str, str] | None = None) -> Answer:
    scope: dict[str, Any] = {"type": "http", "method": method, "path": path, "root_path": "", "query_string": b"",
                             "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]}
    if path_params is not None:
        scope["path_params"] = path_params
    sent: list[dict[str, Any]] = []
    received: list[bool] = []

    async def receive() -> dict[str, Any]:
        if received:  # the client stays connected until the response is sent
            await asyncio.Event().wait()
        received.append(True)
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    if path_params is not None:  # a file view: the request in, a response out, then sent
        response = await app(Request(scope, receive))
        await response(scope, receive, send)
    else:
        await app(scope, receive, send)
    start = sent[0]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body


def _get(app: Any, path: str, **kw: Any) -> Answer:
    return run_in_own_loop(_asgi(app, path, **kw))


def test_the_simple_api_renders_pages_from_any_source(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    api = SimpleAPI(PageCache(_source(tmp_path), check_interval=3600, wall=clock.now))

    status, headers, body = _get(api, "/simple/")
    assert status == 200 and headers["x-pypi-last-serial"] == "7"
    assert b'<a href="far-away/">Far_Away</a>' in body
    assert json.loads(_get(api, "/simple/", headers={"Accept": JSON_V1})[2])["projects"] == [{"name": "Far_Away"}]

    status, headers, body = _get(api, "/simple/far-away/", headers={"Accept": JSON_V1})
    assert status == 200 and headers["content-type"] == JSON_V1
    doc = json.loads(body)
    assert doc["meta"]["_last-serial"] == 7
    assert doc["project-status"] == {"status": "deprecated", "reason": "use near-by"}
    assert doc["_successor"] == "near-by"
    assert doc["versions"] == ["0.9", "1.0"]
    old = doc["files"][1]
    assert old["url"] == f"../../files/{hashlib.sha256(OLD).hexdigest()}/far_away-1.0-py3-none-any.whl"
    assert old["core-metadata"] == {"sha256": hashlib.sha256(METADATA).hexdigest()}
    assert (old["size"], old["requires-python"], old["yanked"]) == (len(OLD), ">=3.9", False)
    assert doc["files"][0]["yanked"] == "broken"

    html = _get(api, "/simple/far-away/")[2]
    assert b'data-yanked="broken"' in html and b"far_away-1.0-py3-none-any.whl</a>" in html
    assert _get(api, "/simple/Far_Away/")[0] == 301
    assert _get(api, "/simple/nowhere/")[0] == 404

    # The source said its answer holds until HELD_UNTIL: the page is rendered again then.
    clock.advance(timedelta(days=2))
    doc = json.loads(_get(api, "/simple/far-away/", headers={"Accept": JSON_V1})[2])
    assert doc["versions"] == ["0.9", "1.0", "2.0"]


def test_a_page_is_dropped_when_the_source_says_its_project_changed(tmp_path: Path) -> None:
    source = _source(tmp_path)
    timer = [0.0]
    cache = PageCache(source, check_interval=1.0, clock=lambda: timer[0], wall=lambda: T0)
    api = SimpleAPI(cache)
    assert b"use near-by" in _get(api, "/simple/far-away/")[2]
    first = cache.get("far-away")
    assert first is not None
    source.files = [replace(f, yanked_at=T0, yanked_reason="gone bad") for f in source.files]
    source.serial, source.changed = 8, ("far-away",)
    assert cache.get("far-away") is first  # within the check interval
    timer[0] += 2
    assert cache.get("far-away") is None
    assert b'data-yanked="gone bad"' in _get(api, "/simple/far-away/")[2]


def test_files_are_served_from_wherever_the_source_locates_them(tmp_path: Path) -> None:
    source = _source(tmp_path)
    clock = ManualClock(T0)
    views = FileViews(SimpleNamespace(clock=clock), PageCache(source, 3600, wall=clock.now))  # type: ignore[arg-type]
    old, yanked, new = source.files[1], source.files[0], source.files[2]

    def get(view: FileView, suffix: str = "", **kw: Any) -> Answer:
        name = view.filename + suffix
        return _get(views.download, f"/files/{view.sha256}/{name}",
                    path_params={"sha256": view.sha256, "filename": name}, **kw)

    status, headers, body = get(old)  # streamed from the source's bytes
    assert (status, body) == (200, OLD)
    assert headers["etag"] == f'"{old.sha256}"' and "immutable" in headers["cache-control"]
    assert headers["content-disposition"] == f'attachment; filename="{old.filename}"'
    status, headers, body = get(old, headers={"Range": "bytes=0-9"})
    assert (status, body, headers["content-range"]) == (206, OLD[:10], f"bytes 0-9/{len(OLD)}")
    status, headers, body = get(old, method="HEAD")
    assert (status, body, headers["content-length"]) == (200, b"", str(len(OLD)))
    assert get(old, ".metadata")[2] == METADATA
    assert get(yanked)[:3:2] == (200, b"old")  # a file on this host's disk (yanked files stay downloadable)
    assert get(new)[0] == 404  # held until HELD_UNTIL
    clock.advance(timedelta(days=2))
    status, headers, _ = get(new)  # offered now, and the source hands out a URL for it
    assert (status, headers["location"]) == (302, f"https://cdn.invalid/{new.sha256}")
    del source.blobs[old.sha256]
    status, headers, _ = get(old, method="HEAD")
    assert status == 503
