"""Assembles the ASGI application: /simple/ on its own fast handler, the rest routed."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.exc import DBAPIError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from moorage.config import load_settings
from moorage.log.keys import load_or_create
from moorage.services.context import Context, open_context
from moorage.services.downloads import DownloadCounter
from moorage.services.log import LogService
from moorage.sources import LocalSource, PendingSource
from moorage.web import failures, reason
from moorage.web import manage as manage_api
from moorage.web.events import EventsAPI
from moorage.web.files import FileViews
from moorage.web.home import Home
from moorage.web.jsonapi import JSONAPI
from moorage.web.legacy import LegacyUpload
from moorage.web.log import LogViews
from moorage.web.manage import ManagementAPI
from moorage.web.metrics import MetricsMiddleware, metrics_view
from moorage.web.pages import static
from moorage.web.pages.account import AccountPages
from moorage.web.pages.admin import AdminPages
from moorage.web.pages.errors import method_not_allowed, not_found_page
from moorage.web.pages.manage import ManagePages
from moorage.web.pages.public import PublicPages
from moorage.web.pages.session import CSRFError, WebAuth
from moorage.web.simple import PageCache
from moorage.web.simple_api import SimpleAPI


class MoorageApp:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        local = self._caches(ctx)
        # Downloads are counted in memory and written in batches by a task of the lifespan.
        self.downloads = DownloadCounter(ctx)
        self.log = LogService(ctx, load_or_create(ctx.settings.log_key_file, ctx.settings.log_origin))
        # A failed database or disk answers 503/507 with the reason, on the fast paths too.
        self._guarded = failures.FailureGuard(self._dispatch)
        auth = WebAuth(ctx)
        self.router = Starlette(
            routes=[*self._page_routes(auth, local), *self._api_routes(local)],
            exception_handlers={CSRFError: auth.refuse, 404: _not_found, 405: _method_not_allowed,
                                DBAPIError: failures.handle, OSError: failures.handle},
            lifespan=self._lifespan)

    def _caches(self, ctx: Context) -> LocalSource:
        """Where pages and files come from (sources/): the index's own projects, and the opt-in
        root of pending removals around them (everything the default root offers, plus the
        files of projects whose announced removal has taken effect), each behind its page cache
        and its /simple/ handler. Returns the index's own source."""
        settings = ctx.settings
        local = LocalSource(ctx.db, ctx.blobs)
        self.cache = PageCache(local, settings.cache_check_interval, max_bytes=settings.page_cache_size,
                               wall=ctx.clock.now)
        self.pending_cache = PageCache(PendingSource(local), settings.cache_check_interval,
                                       max_bytes=settings.page_cache_size // 4, wall=ctx.clock.now)
        ctx.hooks.append(self.cache.invalidate)
        ctx.hooks.append(self.pending_cache.invalidate)
        self.simple = SimpleAPI(self.cache)
        self.pending_simple = SimpleAPI(self.pending_cache, root="/pending/simple")
        return local

    def _page_routes(self, auth: WebAuth, local: LocalSource) -> list[Route]:
        """The pages people read and the forms they post (web/pages/)."""
        ctx = self.ctx
        public = PublicPages(ctx, auth, self.log, local)
        account = AccountPages(ctx, auth)
        manage_pages = ManagePages(ctx, auth)
        admin = AdminPages(ctx, auth)
        return [
            Route("/", public.home, methods=["GET", "HEAD"]),
            Route("/search/", public.search, methods=["GET", "HEAD"]),
            Route("/project/{name:str}/", public.project, methods=["GET", "HEAD"]),
            Route("/project/{name:str}/history/", public.history, methods=["GET", "HEAD"]),
            Route("/project/{name:str}/{version:str}/", public.release, methods=["GET", "HEAD"]),
            Route("/log/", public.log_page, methods=["GET", "HEAD"]),
            Route("/account/login/", account.login_form, methods=["GET", "HEAD"]),
            Route("/account/login/", account.login, methods=["POST"]),
            Route("/account/logout/", account.logout, methods=["POST"]),
            Route("/account/", account.account, methods=["GET", "HEAD"]),
            Route("/account/tokens/", account.create_token, methods=["POST"]),
            Route("/account/tokens/{token_id:str}/revoke/", account.revoke_token, methods=["POST"]),
            # Second factors (docs/accounts.md): the sign-in step after the password, enrolment, removal.
            Route("/account/login/factor/", account.factor_form, methods=["GET", "HEAD"]),
            Route("/account/login/factor/", account.factor_login, methods=["POST"]),
            Route("/account/factors/totp/", account.totp_form, methods=["GET", "HEAD"]),
            Route("/account/factors/totp/", account.totp_enrol, methods=["POST"]),
            Route("/account/factors/webauthn/", account.key_form, methods=["GET", "HEAD"]),
            Route("/account/factors/webauthn/", account.key_enrol, methods=["POST"]),
            Route("/account/factors/{factor_id:str}/remove/", account.remove_factor, methods=["POST"]),
            Route("/account/recovery-codes/", account.regenerate_codes, methods=["POST"]),
            Route("/manage/project/{name:str}/", manage_pages.page, methods=["GET", "HEAD"]),
            Route("/manage/project/{name:str}/{action:str}/", manage_pages.act, methods=["POST"]),
            Route("/admin/", admin.page, methods=["GET", "HEAD"]),
            Route("/admin/{action:str}/", admin.act, methods=["POST"]),
            Route("/static/{name:str}", static.serve, methods=["GET", "HEAD"]),
        ]

    def _api_routes(self, local: LocalSource) -> list[Route]:
        """What programs ask for: health and metrics, files, uploads, the JSON and management
        APIs, the transparency log (/simple/ is answered before the router, in _dispatch)."""
        ctx = self.ctx
        home = Home(ctx)
        files = FileViews(ctx, self.cache, downloads=self.downloads)
        pending_files = FileViews(ctx, self.pending_cache, downloads=self.downloads)
        upload = LegacyUpload(ctx)
        jsonapi = JSONAPI(ctx, local)
        events = EventsAPI(ctx)
        manage = ManagementAPI(ctx)
        log = LogViews(self.log)
        return [
            Route("/healthz", home.health, methods=["GET", "HEAD"]),
            Route("/metrics", metrics_view, methods=["GET", "HEAD"]),
            Route("/files/{sha256:str}/{filename:str}", files.download, methods=["GET", "HEAD"]),
            Route("/pending/files/{sha256:str}/{filename:str}", pending_files.download, methods=["GET", "HEAD"]),
            Route("/legacy/", upload.handle, methods=["POST"]),
            Route("/legacy", upload.handle, methods=["POST"]),
            Route("/pypi/{name:str}/json", jsonapi.project, methods=["GET", "HEAD"]),
            Route("/api/projects/{name:str}/events", events.project_events, methods=["GET", "HEAD"]),
            *manage.routes(),
            Route("/log/checkpoint", log.checkpoint, methods=["GET", "HEAD"]),
            Route("/log/key", log.key, methods=["GET", "HEAD"]),
            Route("/log/tile/{path:path}", log.tile, methods=["GET", "HEAD"]),
            Route("/log/proof/inclusion", log.inclusion, methods=["GET"]),
            Route("/log/proof/consistency", log.consistency, methods=["GET"]),
            Route("/pypi/{name:str}/{version:str}/json", jsonapi.release, methods=["GET", "HEAD"]),
        ]

    @asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        """uvicorn runs the shutdown half on SIGTERM / SIGINT after the last response: the
        download counts still in memory are written then."""
        await self.downloads.start()
        try:
            yield
        finally:
            await self.downloads.stop()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._guarded(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/simple"):
            await self.simple(scope, receive, send)  # type: ignore[arg-type]
            return
        if scope["type"] == "http" and scope["path"].startswith("/pending/simple"):
            await self.pending_simple(scope, receive, send)  # type: ignore[arg-type]
            return
        await self.router(scope, receive, send)


async def _not_found(request: Request, exc: Exception) -> Response:
    if request.url.path.startswith("/api/"):
        return await manage_api.not_found(request, exc)
    return await not_found_page(request, exc)


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    """A wrong method: 405 with Allow, the methods the address has (RFC 9110); the router puts
    them on the exception."""
    answer = manage_api.method_not_allowed if request.url.path.startswith("/api/") else method_not_allowed
    response = await answer(request, exc)
    if isinstance(exc, HTTPException) and exc.headers:
        response.headers.update(exc.headers)
    return response


def create_app(ctx: Context) -> MetricsMiddleware:
    """The application, inside the metrics middleware (``.app`` is the MoorageApp)."""
    reason.install()
    app = MoorageApp(ctx)
    if ctx.settings.warm_cache:
        threading.Thread(target=_warm, args=(app.cache,), name="moorage-warm-cache", daemon=True).start()
    threading.Thread(target=_sign_checkpoints, args=(app.log,), name="moorage-checkpoints", daemon=True).start()
    return MetricsMiddleware(app)


def _sign_checkpoints(log: LogService, interval: float = 1.0) -> None:
    """Sign a checkpoint within a second of any commit (batched), so one exists for every
    state the index has shown, whether or not anyone asked for it."""
    while True:
        try:
            log.checkpoint()
        except Exception:  # the next round tries again; requests sign on demand meanwhile
            logging.getLogger(__name__).exception("signing a checkpoint failed")
        time.sleep(interval)


def _warm(cache: PageCache) -> None:
    try:
        cache.warm()
    except Exception:  # a failed warm-up only means pages render on first request
        logging.getLogger(__name__).exception("warming the page cache failed")


def from_environment() -> MetricsMiddleware:
    """Factory for uvicorn worker processes: settings come from MOORAGE_* variables."""
    settings = load_settings(os.environ.get("MOORAGE_CONFIG"))
    return create_app(open_context(settings))
