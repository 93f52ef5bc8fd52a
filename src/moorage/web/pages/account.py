"""Signing in and out, and the account page with its API tokens."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from moorage.domain.decisions import Denied
from moorage.services import accounts, sessions
from moorage.services.accounts import NotFound
from moorage.services.context import Context
from moorage.store.catalog import open_invitations, user_projects
from moorage.web.pages.render import message, page
from moorage.web.pages.session import SESSION_COOKIE, Visitor, WebAuth, set_cookie


def _next(value: object) -> str:
    """Only a path on this site: an open redirect would let a link send people elsewhere."""
    if not isinstance(value, str) or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/account/"
    parts = urlsplit(value)
    return value if not parts.scheme and not parts.netloc else "/account/"


def sign_in_needed(request: Request) -> Response:
    return RedirectResponse(f"/account/login/?next={request.url.path}", 303)


class AccountPages:
    def __init__(self, ctx: Context, auth: WebAuth) -> None:
        self.ctx = ctx
        self.auth = auth

    async def login_form(self, request: Request) -> Response:
        visitor = await self.auth.visitor(request)
        if visitor.user is not None:
            return RedirectResponse(_next(request.query_params.get("next")), 303)
        return page(visitor, "login.html", next=_next(request.query_params.get("next")))

    async def login(self, request: Request) -> Response:
        visitor, form = await self.auth.form(request)
        name = str(form.get("username") or "")[:100]
        password = str(form.get("password") or "")[:1000]
        target = _next(form.get("next"))
        address = request.client.host if request.client else "unknown"
        try:
            session_id = await to_thread.run_sync(
                lambda: sessions.sign_in(self.ctx, name, password, address=address))
        except Denied as denied:
            return page(visitor, "login.html", denied.decision.status, error=denied.decision.reason,
                        username=name, next=target)
        response = RedirectResponse(target, 303)
        set_cookie(response, SESSION_COOKIE, session_id, secure=visitor.secure,
                   max_age=int(self.ctx.settings.web.session_lifetime.total_seconds()))
        return response

    async def logout(self, request: Request) -> Response:
        _visitor, _form = await self.auth.form(request)
        await to_thread.run_sync(sessions.sign_out, self.ctx, request.cookies.get(SESSION_COOKIE))
        response = RedirectResponse("/", 303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    async def _render(self, visitor: Visitor, status: int = 200, **extra: Any) -> Response:
        assert visitor.user is not None
        user = visitor.user

        def load() -> dict[str, Any]:
            tokens = accounts.list_tokens(self.ctx, user.name)
            with self.ctx.db.read() as conn:
                mine, total = user_projects(conn, user.user_id)
                return {"tokens": list(reversed(tokens)), "projects": mine, "projects_total": total,
                        "invitations": open_invitations(conn, user.user_id)}

        data = await to_thread.run_sync(load)
        return page(visitor, "account.html", status, now=self.ctx.clock.now(), **data, **extra)

    async def account(self, request: Request) -> Response:
        visitor = await self.auth.visitor(request)
        if visitor.user is None:
            return sign_in_needed(request)
        return await self._render(visitor)

    async def create_token(self, request: Request) -> Response:
        visitor, form = await self.auth.form(request)
        if visitor.user is None:
            return sign_in_needed(request)
        user = visitor.user.name
        description = str(form.get("description") or "").strip()[:200]
        projects = [p.strip() for p in str(form.get("projects") or "").split(",") if p.strip()]
        raw_days = str(form.get("expires_days") or "").strip()
        if raw_days and not raw_days.isdigit():
            return await self._render(visitor, 400, error="the expiry is a whole number of days")
        days = int(raw_days) if raw_days else None
        if days is not None and not 1 <= days <= 36500:
            return await self._render(visitor, 400, error="the expiry is from 1 to 36500 days")
        try:
            token_id, token = await to_thread.run_sync(lambda: accounts.create_token(
                self.ctx, user, projects=projects, expires_days=days, description=description))
        except Denied as denied:
            return await self._render(visitor, denied.decision.status, error=denied.decision.reason)
        return await self._render(visitor, new_token=token, new_token_id=token_id)

    async def revoke_token(self, request: Request) -> Response:
        visitor, _form = await self.auth.form(request)
        if visitor.user is None:
            return sign_in_needed(request)
        token_id = request.path_params["token_id"]
        user = visitor.user.name
        mine = {t.id for t in await to_thread.run_sync(accounts.list_tokens, self.ctx, user)}
        if token_id not in mine:
            return message(visitor, "Not found", "You have no token with this id.", 404, back="/account/")
        try:
            await to_thread.run_sync(lambda: accounts.revoke_token(self.ctx, token_id, actor=user))
        except NotFound as missing:
            return message(visitor, "Not found", str(missing), 404, back="/account/")
        return RedirectResponse("/account/", 303)
