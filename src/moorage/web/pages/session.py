"""Who is at the browser, and proof that a form came from one of our pages (CSRF).

Every form carries a token: an HMAC, under a secret kept in the data directory, of the
session (signed in) or of a random per-browser cookie (signed out, e.g. the sign-in form).
A post without the right token is refused before anything else is read.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from anyio import to_thread
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from moorage import oplog
from moorage.domain.decisions import Decision
from moorage.services.context import Context
from moorage.services.sessions import SessionUser, current_user
from moorage.web.pages.render import render
from moorage.web.statuses import status_of

SESSION_COOKIE = "moorage_session"
CSRF_COOKIE = "moorage_csrf"
MAX_FORM = 64 * 1024


def load_or_create_secret(path: Path) -> bytes:
    """The key of the CSRF HMACs; shared by every process that shares the data directory."""
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(secrets.token_hex(32))
    os.chmod(tmp, 0o600)
    try:
        os.link(tmp, path)  # the first process to get here wins; the others read its secret
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return bytes.fromhex(path.read_text().strip())


@dataclass
class Visitor:
    user: SessionUser | None
    csrf_token: str
    secure: bool
    # Cookies to set on the response (a new per-browser CSRF cookie, a session).
    set_cookies: dict[str, str] = field(default_factory=dict)

    def apply(self, response: Response) -> Response:
        for name, value in self.set_cookies.items():
            set_cookie(response, name, value, secure=self.secure)
        return response


def set_cookie(response: Response, name: str, value: str, *, secure: bool, max_age: int | None = None) -> None:
    # HttpOnly: no script reads them; SameSite=Lax: other sites' forms do not carry them.
    response.set_cookie(name, value, max_age=max_age, path="/", secure=secure, httponly=True, samesite="lax")


class CSRFError(Exception):
    decision = Decision.deny(
        "csrf-check-failed",
        "this form did not come from a page of this index (its CSRF token is missing or wrong); "
        "reload the page and send it again")


class WebAuth:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.secret = load_or_create_secret(ctx.settings.data_dir / "web-secret")

    def _token(self, binding: str) -> str:
        return hmac.new(self.secret, binding.encode(), hashlib.sha256).hexdigest()

    async def visitor(self, request: Request) -> Visitor:
        secure = request.url.scheme == "https"
        session_id = request.cookies.get(SESSION_COOKIE)
        user = await to_thread.run_sync(current_user, self.ctx, session_id) if session_id else None
        if user is not None:
            return Visitor(user, self._token("session:" + user.session_hash), secure)
        browser = request.cookies.get(CSRF_COOKIE)
        fresh: dict[str, str] = {}
        if not browser or len(browser) > 100:
            browser = secrets.token_urlsafe(24)
            fresh[CSRF_COOKIE] = browser
        return Visitor(None, self._token("browser:" + browser), secure, fresh)

    async def form(self, request: Request) -> tuple[Visitor, FormData]:
        """The visitor and the posted form; raises CSRFError unless its token is right."""
        visitor = await self.visitor(request)
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_FORM:
            raise CSRFError()  # no page of ours posts this much
        form = await request.form(max_files=0, max_fields=50)
        sent = form.get("csrf_token")
        if visitor.set_cookies or not isinstance(sent, str) or not hmac.compare_digest(sent, visitor.csrf_token):
            raise CSRFError()
        return visitor, form

    async def refuse(self, request: Request, exc: Exception) -> Response:
        """The page for a post that failed the CSRF check (an exception handler)."""
        decision = CSRFError.decision
        status = status_of(decision)
        oplog.refused(decision.rule, status, decision.reason, method=request.method, path=request.url.path)
        return render("message.html", status, title="Refused", message=decision.reason, rule=decision.rule,
                      kind="error", user=None, csrf_token="")
