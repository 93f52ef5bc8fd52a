"""The simple repository API: PEP 503 HTML and PEP 691 JSON (api-version 1.4), cached.

Pages are rendered from a source (sources/base.py: the index's own projects, or the opt-in
root of pending removals around them) and never from the database directly. Rendered pages
(bytes and ETag per representation) are kept per project and dropped when a commit changes
the project: at once in this process (an after-commit hook), and within
``cache_check_interval`` in other processes, which ask the source what changed since the
serial they saw. A page the source says holds only until an instant is dropped then.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import TYPE_CHECKING

from moorage.domain.clock import isoformat_z
from moorage.services.clocks import SystemClock
from moorage.sources import ProjectView, Source, as_source
from moorage.web.negotiation import HTML_V1, JSON_V1, TEXT_HTML

if TYPE_CHECKING:
    from moorage.store.database import Database

API_VERSION = "1.4"
INDEX = ""  # cache key of /simple/


def file_url(sha256: str, filename: str, prefix: str = "../../") -> str:
    return f"{prefix}files/{sha256}/{filename}"


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


GZIP_MIN_SIZE = 1024


@dataclass(slots=True)
class Rendered:
    body: bytes
    etag: str
    _gzipped: bytes | None = None

    def gzipped(self) -> bytes | None:
        """The body compressed once (mtime 0, so the bytes are stable), if worth it."""
        if len(self.body) < GZIP_MIN_SIZE:
            return None
        if self._gzipped is None:
            self._gzipped = gzip.compress(self.body, compresslevel=6, mtime=0)
        return self._gzipped

    @property
    def gzip_etag(self) -> str:
        return self.etag[:-1] + '-gz"'


@dataclass(slots=True)
class Page:
    serial: int
    html: Rendered
    json: Rendered
    valid_until: datetime | None = None  # the source's answer changes then (an announced removal)

    @property
    def size(self) -> int:
        return len(self.html.body) + len(self.json.body)

    def pick(self, media: str) -> Rendered:
        return self.json if media == JSON_V1 else self.html


def render_project_html(view: ProjectView) -> bytes:
    name = escape(view.name)
    out = [
        "<!DOCTYPE html>\n<html>\n  <head>\n",
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">\n',
        f'    <meta name="pypi:project-status" content="{escape(view.status)}">\n',
    ]
    if view.status_reason:
        out.append(f'    <meta name="pypi:project-status-reason" content="{escape(view.status_reason)}">\n')
    out.append(f"    <title>Links for {name}</title>\n  </head>\n  <body>\n    <h1>Links for {name}</h1>\n")
    for f in view.files:
        attrs = [f'href="{escape(file_url(f.sha256, f.filename))}#sha256={f.sha256}"']
        if f.requires_python:
            attrs.append(f'data-requires-python="{escape(f.requires_python)}"')
        if f.metadata_sha256:
            attrs.append(f'data-dist-info-metadata="sha256={f.metadata_sha256}"')
            attrs.append(f'data-core-metadata="sha256={f.metadata_sha256}"')
        if f.yanked:
            attrs.append(f'data-yanked="{escape(f.yanked_reason or "")}"')
        out.append(f"    <a {' '.join(attrs)}>{escape(f.filename)}</a><br />\n")
    out.append("  </body>\n</html>\n")
    return "".join(out).encode()


def render_project_json(view: ProjectView) -> bytes:
    status: dict[str, str] = {"status": view.status}
    if view.status_reason:
        status["reason"] = view.status_reason
    files = []
    for f in view.files:
        metadata: dict[str, str] | bool = {"sha256": f.metadata_sha256} if f.metadata_sha256 else False
        files.append({
            "filename": f.filename,
            "url": file_url(f.sha256, f.filename),
            "hashes": {"sha256": f.sha256},
            "requires-python": f.requires_python,
            "core-metadata": metadata,
            "dist-info-metadata": metadata,
            "yanked": (f.yanked_reason or True) if f.yanked else False,
            "size": f.size,
            "upload-time": isoformat_z(f.upload_time),
            "_log-index": f.log_index,  # index-specific key (PEP 691): the upload's leaf in /log/
        })
    doc: dict[str, object] = {
        "meta": {"api-version": API_VERSION, "_last-serial": view.last_serial},
        "name": view.normalized_name,
        "project-status": status,
        "versions": [r.version for r in view.releases],
        "files": files,
    }
    if view.successor:
        doc["_successor"] = view.successor  # index-specific key (PEP 691): the project that replaces this one
    if view.removal_at is not None:
        # index-specific key (PEP 691): when an announced removal takes the files off the default
        # root, so a client need not parse the date out of the status reason (moorage audit)
        doc["_removal-at"] = isoformat_z(view.removal_at)
    return json.dumps(doc, separators=(",", ":")).encode()


def render_index_html(names: list[tuple[str, str]]) -> bytes:
    out = [
        "<!DOCTYPE html>\n<html>\n  <head>\n",
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">\n',
        "    <title>Simple index</title>\n  </head>\n  <body>\n",
    ]
    out.extend(f'    <a href="{escape(norm)}/">{escape(name)}</a><br />\n' for name, norm in names)
    out.append("  </body>\n</html>\n")
    return "".join(out).encode()


def render_index_json(names: list[tuple[str, str]], serial: int) -> bytes:
    doc = {
        "meta": {"api-version": API_VERSION, "_last-serial": serial},
        "projects": [{"name": name} for name, _norm in names],
    }
    return json.dumps(doc, separators=(",", ":")).encode()


class PageCache:
    """The rendered pages of one index root, read from its source. ``source`` may be a
    Database: its own projects are read from it then."""

    def __init__(self, source: Source | Database, check_interval: float, clock: Callable[[], float] = time.monotonic,
                 max_bytes: int = 128 * 1024 * 1024, wall: Callable[[], datetime] | None = None) -> None:
        self.source = as_source(source)
        # The instant the source is asked at; a page lasts until the instant its answer changes.
        self._wall = wall or SystemClock().now
        self._pages: dict[str, Page] = {}
        self._bytes = 0
        self._max_bytes = max_bytes
        self._lock = threading.Lock()  # renders store from worker threads
        # Told the names of changed projects, here or in another process (e.g. file lookups).
        self.listeners: list[Callable[[set[str]], None]] = []
        # Names known not to exist, so scanners and typos do not reach the source each time.
        self._missing: set[str] = set()
        self._interval = check_interval
        self._clock = clock
        self._checked_at = -1e9
        self._seen_serial = 0
        self._generation = 0
        self.global_serial = 0

    # -- invalidation --------------------------------------------------------------------
    def invalidate(self, projects: set[str]) -> None:
        self._generation += 1
        self._drop(INDEX)
        for name in projects:
            self._drop(name)
            self._missing.discard(name)
        for listener in self.listeners:
            listener(projects)
        self._checked_at = -1e9  # read the serial afresh on the next request

    def sync(self) -> None:
        """Pick up changes committed by other processes, at most every check interval."""
        now = self._clock()
        if now - self._checked_at < self._interval:
            return
        self._checked_at = now
        changes = self.source.changes_since(self._seen_serial)
        newest, changed = changes.serial, set(changes.projects)
        if newest != self._seen_serial:
            self._generation += 1
            self._drop(INDEX)
            for name in changed:
                self._drop(name)
            self._missing.clear()
            for listener in self.listeners:
                listener(changed)
            self._seen_serial = newest
            self.global_serial = newest

    def _drop(self, key: str) -> None:
        with self._lock:
            page = self._pages.pop(key, None)
            if page is not None:
                self._bytes -= page.size

    def _store(self, key: str, page: Page) -> None:
        with self._lock:
            old = self._pages.pop(key, None)
            if old is not None:
                self._bytes -= old.size
            self._pages[key] = page
            self._bytes += page.size
            # Bounded memory: the pages cached longest go first (they are re-rendered on demand).
            while self._bytes > self._max_bytes and len(self._pages) > 1:
                evicted = self._pages.pop(next(iter(self._pages)))
                self._bytes -= evicted.size

    @property
    def cached_bytes(self) -> int:
        return self._bytes

    # -- lookups -------------------------------------------------------------------------
    def get(self, key: str) -> Page | None:
        self.sync()
        page = self._pages.get(key)
        if page is not None and page.valid_until is not None and self._wall() >= page.valid_until:
            self._drop(key)
            return None
        return page

    def known_missing(self, key: str) -> bool:
        return key in self._missing

    def build_project(self, name: str) -> Page | None:
        """Render a project's page from the source (call off the event loop)."""
        generation = self._generation
        offered = self.source.project(name, self._wall())
        if offered is None:
            if generation == self._generation:
                if len(self._missing) >= 10_000:
                    self._missing.clear()
                self._missing.add(name)
            return None
        view = offered.view
        html, body = render_project_html(view), render_project_json(view)
        page = Page(view.last_serial, Rendered(html, _etag(html)), Rendered(body, _etag(body)), offered.until)
        if generation == self._generation:
            self._store(name, page)
        return page

    def warm(self) -> int:
        """Render pages ahead of requests, most recently changed projects first, until the
        byte budget is reached; returns how many were rendered. Runs in a background thread
        at start, so the first installs after a restart do not pay for rendering."""
        self.sync()
        if self.get(INDEX) is None:
            self.build_index()
        rendered = 0
        for name in self.source.changes_since(0).projects:
            if name in self._pages:
                continue
            page = self.build_project(name)
            if page is None:
                continue
            rendered += 1
            if self._bytes + page.size > self._max_bytes:
                break
        return rendered

    def build_index(self) -> Page:
        generation = self._generation
        offered = self.source.project_list()
        names = offered.projects
        html, body = render_index_html(names), render_index_json(names, offered.serial)
        page = Page(offered.serial, Rendered(html, _etag(html)), Rendered(body, _etag(body)))
        if generation == self._generation:
            self._store(INDEX, page)
        return page


def content_type(media: str) -> str:
    if media == TEXT_HTML:
        return "text/html; charset=utf-8"
    return media if media == JSON_V1 else HTML_V1
