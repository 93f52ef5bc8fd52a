"""Pages anyone may read: home, search, project, release, history, the log.

A project's pages show its record as the index's source has it (sources/base.py): what is
offered, and what is withheld, marked."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from anyio import to_thread
from packaging.utils import canonicalize_version
from packaging.version import InvalidVersion, Version
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from moorage.domain.downloads import grace_wording
from moorage.domain.events import PUBLIC_ACTIONS
from moorage.domain.lifecycle import check_upload_window, release_facts, upload_window_closes
from moorage.domain.names import is_valid_name, normalize
from moorage.services.context import Context
from moorage.services.log import LogService
from moorage.sources import FileView, ProjectView, ReleaseView, Source
from moorage.store.downloads import ProjectDownloads, project_downloads
from moorage.store.queries import EventView, list_events, log_indexes
from moorage.web.pages.catalog_cache import CatalogCache
from moorage.web.pages.description import render_description
from moorage.web.pages.render import page, when
from moorage.web.pages.session import Visitor, WebAuth
from moorage.web.simple import file_url

MAX_QUERY = 200


def span_text(seconds: float) -> str:
    """A duration for a sentence: "an hour", "30 minutes", "5 seconds"."""
    whole = round(seconds)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if whole >= size and whole % size == 0:
            n = whole // size
            return f"an {unit}" if n == 1 and unit == "hour" else f"a {unit}" if n == 1 else f"{n} {unit}s"
    return "a second" if whole <= 1 else f"{whole} seconds"


def safe_url(value: object) -> str | None:
    """Only http(s) links from metadata become links (no javascript:, data:, ...)."""
    if not isinstance(value, str):
        return None
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return None
    return value.strip() if parts.scheme in ("http", "https") and parts.netloc else None


def project_urls(metadata: dict[str, Any]) -> list[tuple[str, str | None, str]]:
    """(label, href or None, text) for the release's URLs; unsafe ones are shown as text."""
    out: list[tuple[str, str | None, str]] = []
    urls = metadata.get("project_urls") or {}
    if isinstance(urls, dict):
        for label, url in list(urls.items())[:30]:
            out.append((str(label)[:100], safe_url(url), str(url)[:500]))
    if metadata.get("home_page"):
        out.append(("Homepage", safe_url(metadata["home_page"]), str(metadata["home_page"])[:500]))
    return out


@dataclass(frozen=True)
class ReleaseRow:
    release: ReleaseView
    files: list[FileView]
    yanked: bool
    yank_reasons: list[str]
    window: str  # "upload window closes ...", "closed since ...", "reopened until ..."
    window_open: bool


class PublicPages:
    def __init__(self, ctx: Context, auth: WebAuth, log: LogService, source: Source) -> None:
        self.ctx = ctx
        self.auth = auth
        self.log = log
        self.source = source
        self.catalog = CatalogCache(ctx)

    def not_found(self, visitor: Visitor, message: str) -> Response:
        return page(visitor, "message.html", 404, title="Not found", message=message)

    async def home(self, request: Request) -> Response:
        visitor = await self.auth.visitor(request)

        data = await to_thread.run_sync(self.catalog.home)
        base = str(request.base_url)
        return page(visitor, "home.html", counts=data.counts, recent=data.recent, simple=base + "simple/",
                          legacy=base + "legacy/")

    async def search(self, request: Request) -> Response:
        visitor = await self.auth.visitor(request)
        query = request.query_params.get("q", "")[:MAX_QUERY]

        results = await to_thread.run_sync(self.catalog.search, query) if query.strip() else []
        return page(visitor, "search.html", query=query, results=results)

    async def _project(self, request: Request, suffix: str = "", *, downloads: bool = False
                       ) -> tuple[Visitor, ProjectView | Response, ProjectDownloads | None]:
        """The project of the URL (or the response instead: not found, deleted, a redirect to
        the normalized name); with ``downloads``, its counts and critical designation."""
        visitor = await self.auth.visitor(request)
        name = request.path_params["name"]
        if not is_valid_name(name):
            return visitor, self.not_found(visitor, "There is no project of this name on this index."), None
        normalized = normalize(name)
        if normalized != name:
            return visitor, RedirectResponse(f"/project/{normalized}/{suffix}", 301), None
        now = self.ctx.clock.now()

        def load() -> tuple[ProjectView | None, ProjectDownloads | None]:
            found = self.source.record(normalized, now)
            if found is None or not downloads:
                return found, None
            with self.ctx.db.read() as conn:
                return found, project_downloads(conn, normalized, now.date())

        view, counts = await to_thread.run_sync(load)
        if view is None:
            return visitor, self.not_found(visitor, "There is no project of this name on this index."), None
        if view.deleted_at is not None:
            return visitor, page(visitor, "message.html", 404, title="Deleted",
                                       message=f"The project {view.name} was deleted; its name cannot be "
                                               "registered by anyone else."), None
        return visitor, view, counts

    def _releases(self, view: ProjectView) -> list[ReleaseRow]:
        now = self.ctx.clock.now()
        policy = self.ctx.settings.lifecycle
        live = [r for r in view.releases if not r.deleted]
        facts = release_facts(view.normalized_name, [(Version(r.version), r.created_at, r.reopened_until)
                                                     for r in live])
        rows = []
        for r in reversed(live):  # newest first
            fs = [f for f in view.files if f.version == r.version and f.deleted_at is None]
            fact = facts[Version(r.version)]
            decision = check_upload_window(fact, policy, now)
            closes = upload_window_closes(fact, policy)
            if decision.allowed and decision.rule == "reopened":
                window = f"reopened until {when(decision.until)}"
            elif decision.allowed:
                window = f"upload window closes {when(closes)}"
            else:
                window = f"upload window closed since {when(closes)}"
            yanked = bool(fs) and all(f.yanked for f in fs)
            reasons = sorted({f.yanked_reason for f in fs if f.yanked and f.yanked_reason})
            rows.append(ReleaseRow(r, fs, yanked, reasons, window, decision.allowed))
        return rows

    def _status(self, view: ProjectView) -> dict[str, Any]:
        now = self.ctx.clock.now()
        return {"status": view.status, "reason": view.status_reason, "successor": view.successor,
                "removal_at": view.removal_at, "removed": view.removal_in_effect(now)}

    def _critical(self, counts: ProjectDownloads | None) -> dict[str, Any] | None:
        if counts is None or counts.critical is None:
            return None
        critical = counts.critical
        return {"since": critical.since, "grace_until": critical.grace_until, "rule": critical.rule,
                "wording": grace_wording(critical.grace_until, self.ctx.clock.now())}

    def _counting(self) -> dict[str, str] | None:
        """How the counts are made, for the small print (None: counting is off)."""
        settings = self.ctx.settings.downloads
        if not settings.count:
            return None
        window = settings.dedupe_window.total_seconds()
        return {"window": span_text(window) if window else "", "delay": span_text(settings.flush_interval)}

    async def project(self, request: Request) -> Response:
        visitor, view, counts = await self._project(request, downloads=True)
        if isinstance(view, Response):
            return view
        rows = self._releases(view)
        offered = [row for row in rows if not row.release.quarantined]
        latest = next((row for row in offered if not row.yanked), offered[0] if offered else None)
        meta = latest.release.metadata if latest else {}
        description = render_description(str(meta.get("description") or ""),
                                         meta.get("description_content_type")) if meta.get("description") else None
        return page(visitor, "project.html", project=view, status=self._status(view), rows=rows,
                          latest=latest, meta=meta, description=description, urls=project_urls(meta),
                          file_url=file_url, simple=str(request.base_url) + "simple/", downloads=counts,
                          critical=self._critical(counts), counting=self._counting())

    async def release(self, request: Request) -> Response:
        version = request.path_params["version"]
        visitor, view, counts = await self._project(request, suffix=f"{quote(version)}/", downloads=True)
        if isinstance(view, Response):
            return view
        try:
            wanted = canonicalize_version(Version(version))
        except InvalidVersion:
            return self.not_found(visitor, f"{view.name} has no release {version[:100]!r}.")
        row = next((r for r in self._releases(view) if canonicalize_version(Version(r.release.version)) == wanted),
                   None)
        if row is None:
            return self.not_found(visitor, f"{view.name} has no release {version[:100]!r}.")
        if row.release.version != version:
            return RedirectResponse(f"/project/{view.normalized_name}/{quote(row.release.version)}/", 301)
        meta = row.release.metadata
        description = render_description(str(meta.get("description") or ""),
                                         meta.get("description_content_type")) if meta.get("description") else None
        return page(visitor, "release.html", project=view, status=self._status(view), row=row, meta=meta,
                          description=description, urls=project_urls(meta), file_url=file_url,
                          simple=str(request.base_url) + "simple/", critical=self._critical(counts))

    async def history(self, request: Request) -> Response:
        visitor, view, _counts = await self._project(request, suffix="history/")
        if isinstance(view, Response):
            return view
        is_admin = visitor.user is not None and visitor.user.is_admin

        def load() -> tuple[list[EventView], dict[int, int]]:
            with self.ctx.db.read() as conn:
                found = list_events(conn, project=view.normalized_name, limit=100_000,
                                    actions=None if is_admin else PUBLIC_ACTIONS)
                index = log_indexes(conn, view.normalized_name) if found else {}
            return list(reversed(found)), index

        found, index = await to_thread.run_sync(load)
        tree_size = await to_thread.run_sync(self.log.size)
        return page(visitor, "history.html", project=view, events=found, index=index, all=is_admin,
                          tree_size=tree_size,
                          status=self._status(view))

    async def log_page(self, request: Request) -> Response:
        visitor = await self.auth.visitor(request)
        checkpoint = await to_thread.run_sync(self.log.checkpoint)
        return page(visitor, "log.html", checkpoint=checkpoint, key=self.log.signer.verifier.vkey(),
                          base=str(request.base_url))
