"""File downloads at immutable URLs: /files/<sha256>/<filename> and its .metadata.

The file is found through the root's source (sources/base.py) and its bytes read from where
the source locates them: a file on this host's disk (sent with sendfile, ranges and all), or
bytes elsewhere, streamed or redirected to (web/s3files.py)."""

from __future__ import annotations

import logging
import threading

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from moorage import oplog
from moorage.domain.decisions import Decision
from moorage.domain.downloads import counts_as_download
from moorage.services import fsck
from moorage.services.context import Context
from moorage.services.downloads import DownloadCounter
from moorage.sources import BlobMissing, FileView, FoundFile, LocalBytes
from moorage.web.metrics import MISSING_BLOBS
from moorage.web.ranges import FileDownload, etag_matches, not_modified
from moorage.web.responses import Refusal, not_found
from moorage.web.s3files import remote_download
from moorage.web.simple import PageCache

IMMUTABLE = "public, max-age=31536000, immutable"
log = logging.getLogger(__name__)


class CountedResponse(Response):
    """A file's response, sent unchanged; the download is recorded when its status is known.

    Whether it counts depends on what is actually sent (200, a 206 from byte 0, a redirect to
    the bytes; not a 416 or a failure before the first byte), so the status is read as it
    goes out rather than guessed from the request."""

    def __init__(self, inner: Response, counter: DownloadCounter, project: str, request: Request) -> None:
        # Only __call__ is used; the attributes mirror the inner response for middleware.
        self.inner = inner
        self.status_code = inner.status_code
        self.background = inner.background
        self.raw_headers = inner.raw_headers
        self.counter = counter
        self.project = project
        self.method = request.method
        self.request_range = request.headers.get("range")
        self.user_agent = request.headers.get("user-agent")
        client = request.scope.get("client")
        self.address = client[0] if client else ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def observe(message: Message) -> None:
            if message["type"] == "http.response.start":
                self._note(message)
            await send(message)

        await self.inner(scope, receive, observe)

    def _note(self, message: Message) -> None:
        try:
            status = int(message["status"])
            content_range = None
            if status == 206:
                for name, value in message.get("headers") or ():
                    if name.lower() == b"content-range":
                        content_range = value.decode("latin-1")
                        break
            if counts_as_download(self.method, status, self.request_range, content_range):
                self.counter.record(self.project, self.address, self.user_agent)
        except Exception:  # counting never fails a download
            log.exception("recording a download failed")


class FileViews:
    """Downloads for one index root (the default one, or the opt-in root of pending removals):
    files are found through the source of the root's page cache."""

    def __init__(self, ctx: Context, cache: PageCache, *, downloads: DownloadCounter | None = None) -> None:
        self.ctx = ctx
        self.cache = cache
        self.source = cache.source
        # Bytes never change under a filename, so a hit is remembered; but a quarantine or a
        # deletion can withdraw a file, so a project's entries are dropped whenever the project
        # changes, and an entry lasts only until the instant the source said its answer holds.
        # The entry keeps the file's project too: counting a download needs it, and a hit
        # must not cost a query.
        self._known: dict[str, FoundFile] = {}
        self._by_project: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        cache.listeners.append(self.forget_projects)
        # None with `[downloads] count = false`: responses are not even wrapped.
        self.downloads = downloads if downloads is not None and downloads.enabled else None

    def _lookup(self, filename: str) -> FoundFile | None:
        """The offered file of this name, with its project's normalized name."""
        self.cache.sync()
        now = self.ctx.clock.now()
        hit = self._known.get(filename)
        if hit is not None and (hit.until is None or now < hit.until):
            return hit
        found = self.source.file(filename, now)
        if found is None:
            return None
        with self._lock:
            if len(self._known) > 100_000:
                self._known.clear()
                self._by_project.clear()
            self._known[filename] = found
            self._by_project.setdefault(found.project, set()).add(filename)
        return found

    def forget_projects(self, projects: set[str]) -> None:
        with self._lock:
            for project in projects:
                for filename in self._by_project.pop(project, ()):
                    self._known.pop(filename, None)

    async def _missing(self, request: Request, view: FileView, *, want_metadata: bool) -> Response:
        """The file is offered but its bytes are not in the blob store: 503 naming it, never a
        500. Counted, logged as one line, and kept in the database (so /healthz of every
        worker reports the store degraded) until `moorage admin fsck` finds the bytes again."""
        name = view.filename + (".metadata" if want_metadata else "")
        sha = view.metadata_sha256 if want_metadata else view.sha256
        assert sha is not None
        MISSING_BLOBS.inc()
        log.error("blob-missing %s", oplog.fields(
            status=503, file=name, sha256=sha, method=request.method, path=request.url.path,
            reason="its bytes are missing from the blob store; `moorage admin fsck --repair` restores them"))
        try:
            await to_thread.run_sync(fsck.note_missing, self.ctx, sha, name)
        except Exception as exc:  # noqa: BLE001 - the answer stays the 503 below
            log.error("could not record the missing bytes of %s: %s", name, type(exc).__name__)
        return Refusal(Decision.deny(
            "blob-missing", f"the bytes of {name} are missing from the index's blob store; the index's operator "
            "must restore them (moorage admin fsck --repair), try again later"))

    async def download(self, request: Request) -> Response:
        sha256 = request.path_params["sha256"]
        filename: str = request.path_params["filename"]
        want_metadata = False
        found = await to_thread.run_sync(self._lookup, filename)
        if found is None and filename.endswith(".metadata"):
            want_metadata = True
            found = await to_thread.run_sync(self._lookup, filename[: -len(".metadata")])
        if found is None or found.file.sha256 != sha256:
            return not_found(f"no file {filename!r} on this index")
        view = found.file
        if want_metadata and view.metadata_sha256 is None:
            return not_found(f"{view.filename} has no separately served metadata (PEP 658)")
        etag = f'"{view.metadata_sha256 if want_metadata else view.sha256}"'
        if etag_matches(request.headers.get("if-none-match"), etag):
            return not_modified(etag, IMMUTABLE)  # the client has these bytes; not a download
        data = self.source.locate(found, metadata=want_metadata)
        response: Response
        if not isinstance(data, LocalBytes):
            try:
                response = await remote_download(request, view, data, want_metadata=want_metadata)
            except BlobMissing:
                return await self._missing(request, view, want_metadata=want_metadata)
        elif want_metadata:
            return FileDownload(
                data.path,
                media_type="text/plain; charset=utf-8",
                headers={"etag": etag, "cache-control": IMMUTABLE},
                on_missing=lambda: self._missing(request, view, want_metadata=True),
            )
        else:
            response = FileDownload(
                data.path,
                media_type="application/octet-stream",
                headers={"etag": etag, "cache-control": IMMUTABLE},
                content_disposition_type="attachment",
                filename=view.filename,
                on_missing=lambda: self._missing(request, view, want_metadata=False),
            )
        if want_metadata or self.downloads is None or request.method != "GET":  # a HEAD is not a download
            return response
        return CountedResponse(response, self.downloads, found.project, request)
