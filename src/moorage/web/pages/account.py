"""Signing in and out, the account page with its API tokens, and second factors.

An account with a second factor signs in in two steps (password, then /account/login/factor/).
Sensitive actions go through fresh_factor_gate: without a recent enough factor check it answers
with a page asking for one, whose forms post the original fields again with the factor.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode, urlsplit

import segno
from anyio import to_thread
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from moorage import oplog
from moorage.domain import factors as factor_rules
from moorage.domain.decisions import NOT_FOUND, Denied
from moorage.services import accounts, factors, sessions
from moorage.services.context import Context
from moorage.services.factors import Proof, RelyingParty
from moorage.services.sessions import SessionUser
from moorage.store.catalog import open_invitations, user_projects
from moorage.web.pages.render import SECURITY_HEADERS, denied_page, message, page
from moorage.web.pages.session import SESSION_COOKIE, Visitor, WebAuth, set_cookie
from moorage.web.statuses import status_of

# The security-key pages run /static/webauthn.js; every other page keeps the stricter policy.
KEY_PAGE_HEADERS = {"Content-Security-Policy": SECURITY_HEADERS["Content-Security-Policy"] + "; script-src 'self'"}
FACTOR_FIELDS = ("factor_method", "factor_code", "factor_credential")
DONE = {
    "factor-added": "Second factor added.",
    "factor-removed": "Second factor removed.",
    "last-factor-removed": "Second factor removed. It was the last one: your recovery codes are gone too, and "
                           "signing in asks only for the password.",
}


def _refused(request: Request, denied: Denied, actor: str | None) -> None:
    """The operator's log line for a refused sign-in or account action (docs/operations.md)."""
    decision = denied.decision
    oplog.refused(decision.rule, status_of(decision), decision.reason, actor=actor, method=request.method,
                  path=request.url.path)


def _next(value: object) -> str:
    """Only a path on this site: an open redirect would let a link send people elsewhere."""
    if not isinstance(value, str) or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/account/"
    parts = urlsplit(value)
    return value if not parts.scheme and not parts.netloc else "/account/"


def sign_in_needed(request: Request) -> Response:
    return RedirectResponse(f"/account/login/?next={request.url.path}", 303)


def relying_party(request: Request) -> RelyingParty:
    """WebAuthn's view of this site: the host name the browser used, and its origin. The browser
    puts its real origin into what the key signs, so a forged Host header gains nothing."""
    url = request.url
    return RelyingParty(id=url.hostname or "", origin=f"{url.scheme}://{url.netloc}")


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def proof_from(form: FormData) -> Proof:
    method = str(form.get("factor_method") or "")
    field = "factor_credential" if method == factors.WEBAUTHN else "factor_code"
    return Proof(method, str(form.get(field) or ""))


async def factor_choices(ctx: Context, request: Request, session_id_hash: str,
                         user_id: int) -> tuple[set[str], str | None]:
    """The kinds of factor the account has, and the security-key options (a new challenge) if it has a key."""
    kinds = await to_thread.run_sync(factors.factor_kinds, ctx, user_id)
    options = None
    if factors.WEBAUTHN in kinds:
        rp = relying_party(request)
        options = await to_thread.run_sync(factors.authentication_options, ctx, session_id_hash, user_id, rp)
    return kinds, options


async def fresh_factor_gate(ctx: Context, request: Request, visitor: Visitor, form: FormData, what: str,
                            back: str) -> Response | None:
    """None when the action may go on: the account has no factor, the session passed a check
    within settings.accounts.fresh_factor, or the form carries a factor that checks out now.
    Otherwise the page asking for one (its forms post this form's fields again)."""
    user = visitor.user
    assert user is not None
    error = None
    status = 403
    if form.get("factor_method"):
        proof = proof_from(form)
        try:
            await to_thread.run_sync(lambda: factors.confirm(ctx, user, proof, address=client_address(request),
                                                             rp=relying_party(request)))
            return None
        except Denied as denied:
            _refused(request, denied, visitor.user.name if visitor.user else None)
            error, status = denied.decision.reason, status_of(denied.decision)
        reason = f"{what[:1].upper()}{what[1:]} needs a second-factor check"
    else:
        decision = await to_thread.run_sync(factors.fresh_check, ctx, user, what)
        if decision.allowed:
            return None
        reason = decision.reason[:1].upper() + decision.reason[1:]
    hidden = [(k, v[:2000]) for k, v in form.multi_items()
              if isinstance(v, str) and k != "csrf_token" and k not in FACTOR_FIELDS][:50]
    kinds, options = await factor_choices(ctx, request, user.session_hash, user.user_id)
    return page(visitor, "factor_check.html", status, headers=KEY_PAGE_HEADERS if options else None,
                reason=reason, error=error, action=request.url.path, hidden=hidden, kinds=kinds,
                key_options=options, back=back)


def _qr(uri: str) -> str:
    """The otpauth address as a QR code: an SVG data URI drawn here (segno), no script."""
    return str(segno.make(uri, error="m").svg_data_uri(scale=4, border=4))


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
            _refused(request, denied, name)
            return page(visitor, "login.html", status_of(denied.decision), error=denied.decision.reason,
                        username=name, next=target)
        pending = await to_thread.run_sync(sessions.pending_user, self.ctx, session_id)
        if pending is not None:  # the password was right; the second factor comes next
            response = RedirectResponse("/account/login/factor/?" + urlencode({"next": target}), 303)
            set_cookie(response, SESSION_COOKIE, session_id, secure=visitor.secure,
                       max_age=int(sessions.PENDING_LIFETIME.total_seconds()))
            return response
        response = RedirectResponse(target, 303)
        set_cookie(response, SESSION_COOKIE, session_id, secure=visitor.secure,
                   max_age=int(self.ctx.settings.web.session_lifetime.total_seconds()))
        return response

    async def _factor_page(self, request: Request, visitor: Visitor, pending: SessionUser, target: str,
                           status: int = 200, error: str | None = None) -> Response:
        kinds, options = await factor_choices(self.ctx, request, pending.session_hash, pending.user_id)
        return page(visitor, "login_factor.html", status, headers=KEY_PAGE_HEADERS if options else None,
                    pending=pending, kinds=kinds, key_options=options, next=target, error=error)

    async def factor_form(self, request: Request) -> Response:
        """The second step of signing in: the factors the account has, and a recovery code."""
        visitor = await self.auth.visitor(request)
        target = _next(request.query_params.get("next"))
        if visitor.user is not None:
            return RedirectResponse(target, 303)
        pending = await to_thread.run_sync(sessions.pending_user, self.ctx, request.cookies.get(SESSION_COOKIE))
        if pending is None:
            return RedirectResponse("/account/login/?" + urlencode({"next": target}), 303)
        return await self._factor_page(request, visitor, pending, target)

    async def factor_login(self, request: Request) -> Response:
        visitor, form = await self.auth.form(request)
        target = _next(form.get("next"))
        session_id = request.cookies.get(SESSION_COOKIE) or ""
        proof = proof_from(form)
        address = client_address(request)
        rp = relying_party(request)
        try:
            new_id = await to_thread.run_sync(
                lambda: factors.finish_sign_in(self.ctx, session_id, proof, address=address, rp=rp))
        except Denied as denied:
            _refused(request, denied, visitor.user.name if visitor.user else None)
            status = status_of(denied.decision)
            pending = await to_thread.run_sync(sessions.pending_user, self.ctx, session_id)
            if pending is None:
                return page(visitor, "login.html", status, error=denied.decision.reason, next=target)
            return await self._factor_page(request, visitor, pending, target, status, denied.decision.reason)
        response = RedirectResponse(target, 303)
        set_cookie(response, SESSION_COOKIE, new_id, secure=visitor.secure,
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
            mine_factors = factors.list_factors(self.ctx, user.user_id)
            codes_left = factors.recovery_codes_left(self.ctx, user.user_id)
            with self.ctx.db.read() as conn:
                mine, total = user_projects(conn, user.user_id)
                return {"tokens": list(reversed(tokens)), "projects": mine, "projects_total": total,
                        "invitations": open_invitations(conn, user.user_id), "factors": mine_factors,
                        "codes_left": codes_left, "codes_total": factor_rules.RECOVERY_CODES}

        data = await to_thread.run_sync(load)
        return page(visitor, "account.html", status, now=self.ctx.clock.now(), **data, **extra)

    async def account(self, request: Request) -> Response:
        visitor = await self.auth.visitor(request)
        if visitor.user is None:
            return sign_in_needed(request)
        return await self._render(visitor, done=DONE.get(request.query_params.get("done", "")))

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
        gate = await fresh_factor_gate(self.ctx, request, visitor, form, "creating an API token", "/account/")
        if gate is not None:
            return gate
        try:
            token_id, token = await to_thread.run_sync(lambda: accounts.create_token(
                self.ctx, user, projects=projects, expires_days=days, description=description))
        except Denied as denied:
            _refused(request, denied, visitor.user.name if visitor.user else None)
            return await self._render(visitor, status_of(denied.decision), error=denied.decision.reason)
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
        except Denied as denied:  # the token went meanwhile: not found
            return denied_page(visitor, denied, back="/account/")
        return RedirectResponse("/account/", 303)

    # -- second factors ---------------------------------------------------------------------

    def _totp_page(self, visitor: Visitor, secret: str, label: str = "Authenticator app", status: int = 200,
                   error: str | None = None) -> Response:
        assert visitor.user is not None
        uri = factor_rules.totp_uri(secret, visitor.user.name)
        return page(visitor, "totp_enrol.html", status, secret=secret, grouped=factor_rules.group(secret), uri=uri,
                    qr=_qr(uri), label=label, error=error)

    async def totp_form(self, request: Request) -> Response:
        visitor = await self.auth.visitor(request)
        if visitor.user is None:
            return sign_in_needed(request)
        return self._totp_page(visitor, factors.new_totp_secret())

    async def _enrolled(self, visitor: Visitor, enrolled: factors.Enrolled) -> Response:
        if enrolled.recovery_codes:  # the first factor: its recovery codes, shown this once
            return page(visitor, "recovery_codes.html", intro="Second factor added. Here are your recovery codes.",
                        codes=enrolled.recovery_codes)
        return RedirectResponse("/account/?done=factor-added", 303)

    async def totp_enrol(self, request: Request) -> Response:
        visitor, form = await self.auth.form(request)
        if visitor.user is None:
            return sign_in_needed(request)
        user = visitor.user
        secret = str(form.get("secret") or "").strip().upper()[:64]
        code = str(form.get("code") or "")[:20]
        label = str(form.get("label") or "")[:200]
        try:
            enrolled = await to_thread.run_sync(
                lambda: factors.enrol_totp(self.ctx, user, secret=secret, code=code, label=label))
        except Denied as denied:
            _refused(request, denied, visitor.user.name if visitor.user else None)
            if not factor_rules.valid_totp_secret(secret):
                secret = factors.new_totp_secret()
            return self._totp_page(visitor, secret, label or "Authenticator app", status_of(denied.decision),
                                   denied.decision.reason)
        return await self._enrolled(visitor, enrolled)

    async def _key_page(self, request: Request, visitor: Visitor, label: str = "Security key", status: int = 200,
                        error: str | None = None) -> Response:
        assert visitor.user is not None
        user = visitor.user
        rp = relying_party(request)
        options = await to_thread.run_sync(lambda: factors.registration_options(self.ctx, user, rp))
        return page(visitor, "key_enrol.html", status, headers=KEY_PAGE_HEADERS, options=options, rp_id=rp.id,
                    label=label, error=error)

    async def key_form(self, request: Request) -> Response:
        visitor = await self.auth.visitor(request)
        if visitor.user is None:
            return sign_in_needed(request)
        return await self._key_page(request, visitor)

    async def key_enrol(self, request: Request) -> Response:
        visitor, form = await self.auth.form(request)
        if visitor.user is None:
            return sign_in_needed(request)
        user = visitor.user
        credential = str(form.get("factor_credential") or "")
        label = str(form.get("label") or "")[:200]
        if not credential:
            return await self._key_page(request, visitor, label or "Security key", 400,
                                        "the security key gave no answer (registering one needs JavaScript)")
        rp = relying_party(request)
        try:
            enrolled = await to_thread.run_sync(
                lambda: factors.enrol_webauthn(self.ctx, user, credential=credential, label=label, rp=rp))
        except Denied as denied:
            _refused(request, denied, visitor.user.name if visitor.user else None)
            return await self._key_page(request, visitor, label or "Security key", status_of(denied.decision),
                                        denied.decision.reason)
        return await self._enrolled(visitor, enrolled)

    async def remove_factor(self, request: Request) -> Response:
        visitor, form = await self.auth.form(request)
        if visitor.user is None:
            return sign_in_needed(request)
        user = visitor.user
        factor_id = request.path_params["factor_id"]
        mine = {f.id: f for f in await to_thread.run_sync(factors.list_factors, self.ctx, user.user_id)}
        if factor_id not in mine:
            return message(visitor, "Not found", "You have no second factor with this id.", 404, back="/account/")
        what = f"removing the second factor \u201c{mine[factor_id].label}\u201d"
        gate = await fresh_factor_gate(self.ctx, request, visitor, form, what, "/account/")
        if gate is not None:
            return gate
        try:
            last = await to_thread.run_sync(lambda: factors.remove_factor(self.ctx, user, factor_id))
        except Denied as denied:
            if denied.decision.rule == NOT_FOUND:  # the factor went meanwhile
                return denied_page(visitor, denied, back="/account/")
            _refused(request, denied, visitor.user.name if visitor.user else None)
            return await self._render(visitor, status_of(denied.decision), error=denied.decision.reason)
        return RedirectResponse(f"/account/?done={'last-factor-removed' if last else 'factor-removed'}", 303)

    async def regenerate_codes(self, request: Request) -> Response:
        visitor, form = await self.auth.form(request)
        if visitor.user is None:
            return sign_in_needed(request)
        user = visitor.user
        gate = await fresh_factor_gate(self.ctx, request, visitor, form, "making new recovery codes", "/account/")
        if gate is not None:
            return gate
        try:
            codes = await to_thread.run_sync(lambda: factors.regenerate_recovery_codes(self.ctx, user))
        except Denied as denied:
            _refused(request, denied, visitor.user.name if visitor.user else None)
            return await self._render(visitor, status_of(denied.decision), error=denied.decision.reason)
        return page(visitor, "recovery_codes.html", intro="New recovery codes: the old ones no longer work.",
                    codes=codes)
