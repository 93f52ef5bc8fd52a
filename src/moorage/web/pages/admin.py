"""The admin page: quarantine and lift, restore from retention, adopt orphans, prohibit names.

Every admin form requires a reason; it is recorded with the event.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from moorage.domain.decisions import Decision, Denied
from moorage.services import deletion, handover, lifecycle, prohibited
from moorage.services.context import Context
from moorage.store.catalog import admin_overview
from moorage.web.pages.account import sign_in_needed
from moorage.web.pages.manage import clean_form, optional
from moorage.web.pages.render import denied_page, message, page, refusal_page
from moorage.web.pages.session import Visitor, WebAuth

Run = Callable[[Context, str, dict[str, str]], Any]


# action -> (required fields besides the reason, what it does, label)
ADMIN_ACTIONS: dict[str, tuple[tuple[str, ...], Run, str]] = {
    "quarantine": (("project",), lambda c, u, f: lifecycle.set_status(
        c, f["project"], "quarantined", reason=f["reason"], as_user=u), "Quarantined"),
    "unquarantine": (("project",), lambda c, u, f: lifecycle.set_status(
        c, f["project"], "active", reason=f["reason"], as_user=u), "Quarantine lifted"),
    "quarantine-release": (("project", "version"), lambda c, u, f: lifecycle.quarantine_release(
        c, f["project"], f["version"], reason=f["reason"], as_user=u), "Release quarantined"),
    "lift-release": (("project", "version"), lambda c, u, f: lifecycle.quarantine_release(
        c, f["project"], f["version"], reason=f["reason"], lift=True, as_user=u), "Release quarantine lifted"),
    "restore": (("project",), lambda c, u, f: deletion.restore(
        c, f["project"], optional(f, "version"), optional(f, "filename"), reason=f["reason"], as_user=u), "Restored"),
    "adopt": (("project", "user"), lambda c, u, f: handover.adopt(
        c, f["project"], f["user"], reason=f["reason"], as_user=u), "Adopted"),
    "prohibit": (("name",), lambda c, u, f: prohibited.prohibit(
        c, f["name"], reason=f["reason"], as_user=u), "Name prohibited"),
    "unprohibit": (("name",), lambda c, u, f: prohibited.lift_prohibition(
        c, f["name"], reason=f["reason"], as_user=u), "Prohibition lifted"),
}


def _admins_only(visitor: Visitor) -> Response:
    return refusal_page(visitor, "Admins only", Decision.deny("admin-only", "This page is for the index's admins."))


class AdminPages:
    def __init__(self, ctx: Context, auth: WebAuth) -> None:
        self.ctx = ctx
        self.auth = auth

    async def page(self, request: Request) -> Response:
        visitor = await self.auth.visitor(request)
        if visitor.user is None:
            return sign_in_needed(request)
        if not visitor.user.is_admin:
            return _admins_only(visitor)

        def load() -> dict[str, Any]:
            with self.ctx.db.read() as conn:
                overview = admin_overview(conn)
            return {**overview, "prohibited": prohibited.list_prohibited(self.ctx)}

        data = await to_thread.run_sync(load)
        action = ADMIN_ACTIONS.get(request.query_params.get("done", ""))
        return page(visitor, "admin.html", done=action[2] if action else None,
                    retention=self.ctx.settings.lifecycle.retention, **data)

    async def act(self, request: Request) -> Response:
        visitor, raw = await self.auth.form(request)
        if visitor.user is None:
            return sign_in_needed(request)
        if not visitor.user.is_admin:
            return _admins_only(visitor)
        verb = request.path_params["action"]
        action = ADMIN_ACTIONS.get(verb)
        if action is None:
            return message(visitor, "Not found", "There is no such admin action.", 404, back="/admin/")
        required, run, _label = action
        form = clean_form(raw)
        missing = [k for k in (*required, "reason") if not form.get(k)]
        if missing:  # a field of the form left empty, the reason too: invalid-form, as on every form
            return refusal_page(visitor, "Something is missing", Decision.deny(
                "invalid-form", f"fill in: {', '.join(missing)} (every admin action is recorded with its reason)"),
                back="/admin/")
        user = visitor.user.name
        try:
            await to_thread.run_sync(lambda: run(self.ctx, user, form))
        except Denied as denied:
            return denied_page(visitor, denied, back="/admin/", project=form.get("project") or None)
        return RedirectResponse(f"/admin/?done={verb}", 303)
