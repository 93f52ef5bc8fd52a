"""File downloads at immutable URLs: /files/<sha256>/<filename> and its .metadata."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import TYPE_CHECKING

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from moorage.services.context import Context
from moorage.store.queries import FileView, find_file
from moorage.web.responses import not_found
from moorage.web.simple import PageCache

if TYPE_CHECKING:
    from moorage.web.s3files import S3Downloads

IMMUTABLE = "public, max-age=31536000, immutable"


class FileViews:
    """Downloads for one index root: the default one, or the opt-in root of pending removals."""

    def __init__(self, ctx: Context, cache: PageCache, *, pending_root: bool = False) -> None:
        self.ctx = ctx
        self.cache = cache
        self.pending_root = pending_root
        # Bytes never change under a filename, so a hit is remembered; but a quarantine or a
        # deletion can withdraw a file, so a project's entries are dropped whenever the project
        # changes, and an entry lasts only until its project's announced removal takes effect.
        self._known: dict[str, tuple[FileView, datetime | None]] = {}
        self._by_project: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        cache.listeners.append(self.forget_projects)
        self.remote = _remote_downloads(ctx)  # None: the file store, answered below as it always was

    def _lookup(self, filename: str) -> FileView | None:
        self.cache.sync()
        now = self.ctx.clock.now()
        hit = self._known.get(filename)
        if hit is not None and (hit[1] is None or now < hit[1]):
            return hit[0]
        with self.ctx.db.read() as conn:
            found = find_file(conn, filename, now=now, pending_root=self.pending_root)
        if found is None:
            return None
        view, project, removal_at = found
        valid_until = removal_at if (removal_at is not None and not self.pending_root and now < removal_at) else None
        with self._lock:
            if len(self._known) > 100_000:
                self._known.clear()
                self._by_project.clear()
            self._known[filename] = (view, valid_until)
            self._by_project.setdefault(project, set()).add(filename)
        return view

    def forget_projects(self, projects: set[str]) -> None:
        with self._lock:
            for project in projects:
                for filename in self._by_project.pop(project, ()):
                    self._known.pop(filename, None)

    async def download(self, request: Request) -> Response:
        sha256 = request.path_params["sha256"]
        filename: str = request.path_params["filename"]
        want_metadata = False
        view = await to_thread.run_sync(self._lookup, filename)
        if view is None and filename.endswith(".metadata"):
            want_metadata = True
            view = await to_thread.run_sync(self._lookup, filename[: -len(".metadata")])
        if view is None or view.sha256 != sha256:
            return not_found(f"no file {filename!r} on this index")
        if want_metadata:
            if view.metadata_sha256 is None:
                return not_found(f"{view.filename} has no separately served metadata (PEP 658)")
            if self.remote is not None:
                return await self.remote.respond(request, view, want_metadata=True)
            return FileResponse(
                self.ctx.blobs.path(view.metadata_sha256),
                media_type="text/plain; charset=utf-8",
                headers={"etag": f'"{view.metadata_sha256}"', "cache-control": IMMUTABLE},
            )
        if self.remote is not None:
            return await self.remote.respond(request, view, want_metadata=False)
        return FileResponse(
            self.ctx.blobs.path(view.sha256),
            media_type="application/octet-stream",
            headers={"etag": f'"{view.sha256}"', "cache-control": IMMUTABLE},
            content_disposition_type="attachment",
            filename=view.filename,
        )


def _remote_downloads(ctx: Context) -> S3Downloads | None:
    """The S3 store's downloads (streamed or redirected), or None for the file store."""
    if ctx.settings.blobs.store != "s3":
        return None
    from moorage.store.s3blobs import S3BlobStore
    from moorage.web.s3files import S3Downloads

    assert isinstance(ctx.blobs, S3BlobStore)
    return S3Downloads(ctx.blobs, redirect=ctx.settings.blobs.downloads == "redirect",
                       presign_seconds=ctx.settings.blobs.presign_seconds)
