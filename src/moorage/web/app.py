"""Assembles the ASGI application: /simple/ on its own fast handler, the rest routed."""

from __future__ import annotations

import logging
import os
import threading

from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from moorage.config import load_settings
from moorage.services.context import Context, open_context
from moorage.web import reason
from moorage.web.events import EventsAPI
from moorage.web.files import FileViews
from moorage.web.home import Home
from moorage.web.jsonapi import JSONAPI
from moorage.web.legacy import LegacyUpload
from moorage.web.simple import PageCache
from moorage.web.simple_api import SimpleAPI


class MoorageApp:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.cache = PageCache(ctx.db, ctx.settings.cache_check_interval, max_bytes=ctx.settings.page_cache_size)
        ctx.hooks.append(self.cache.invalidate)
        self.simple = SimpleAPI(self.cache)
        files = FileViews(ctx, self.cache)
        home = Home(ctx)
        jsonapi = JSONAPI(ctx)
        upload = LegacyUpload(ctx)
        events = EventsAPI(ctx)
        self.router = Starlette(routes=[
            Route("/", home.page, methods=["GET", "HEAD"]),
            Route("/healthz", home.health, methods=["GET", "HEAD"]),
            Route("/files/{sha256:str}/{filename:str}", files.download, methods=["GET", "HEAD"]),
            Route("/legacy/", upload.handle, methods=["POST"]),
            Route("/legacy", upload.handle, methods=["POST"]),
            Route("/pypi/{name:str}/json", jsonapi.project, methods=["GET", "HEAD"]),
            Route("/api/projects/{name:str}/events", events.project_events, methods=["GET", "HEAD"]),
            Route("/pypi/{name:str}/{version:str}/json", jsonapi.release, methods=["GET", "HEAD"]),
        ])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/simple"):
            await self.simple(scope, receive, send)  # type: ignore[arg-type]
            return
        await self.router(scope, receive, send)


def create_app(ctx: Context) -> MoorageApp:
    reason.install()
    app = MoorageApp(ctx)
    if ctx.settings.warm_cache:
        threading.Thread(target=_warm, args=(app.cache,), name="moorage-warm-cache", daemon=True).start()
    return app


def _warm(cache: PageCache) -> None:
    try:
        cache.warm()
    except Exception:  # a failed warm-up only means pages render on first request
        logging.getLogger(__name__).exception("warming the page cache failed")


def from_environment() -> MoorageApp:
    """Factory for uvicorn worker processes: settings come from MOORAGE_* variables."""
    settings = load_settings(os.environ.get("MOORAGE_CONFIG"))
    return create_app(open_context(settings))
