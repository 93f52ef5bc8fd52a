"""The management page of a project, and the forms it posts (owners and maintainers by role).

Each form posts to /manage/project/<name>/<action>/ and calls the same service as the CLI and
the management API; a refusal comes back as a page with the rule and its sentence.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from anyio import to_thread
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from moorage.domain.decisions import NOT_FOUND, Decision, Denied
from moorage.domain.names import is_valid_name, normalize
from moorage.services import deletion, handover, lifecycle, removal
from moorage.services.context import Context
from moorage.services.manage_view import manage_view
from moorage.web.pages.account import fresh_factor_gate, sign_in_needed
from moorage.web.pages.render import denied_page, message, page, refusal_page
from moorage.web.pages.session import WebAuth

Run = Callable[[Context, str, str, dict[str, str]], Any]


def optional(form: dict[str, str], key: str) -> str | None:
    return form.get(key) or None


def _days(form: dict[str, str]) -> float | None:
    raw = form.get("days", "").strip()
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        raise Denied.by("invalid-days", "the number of days must be a number") from None


@dataclass(frozen=True)
class FormAction:
    run: Run
    label: str  # past tense, for the page after
    confirm: bool = False  # destructive: the project's name must be typed again
    fresh: bool = False  # sensitive: a recent second-factor check, if the account has a factor


FORM_ACTIONS: dict[str, FormAction] = {
    "yank": FormAction(lambda c, p, u, f: lifecycle.yank(c, p, f["version"], optional(f, "filename"),
                                                         reason=optional(f, "reason"), as_user=u), "Yanked"),
    "unyank": FormAction(lambda c, p, u, f: lifecycle.unyank(c, p, f["version"], optional(f, "filename"), as_user=u),
                         "Yank taken back"),
    "delete": FormAction(lambda c, p, u, f: deletion.delete(c, p, optional(f, "version"), optional(f, "filename"),
                                                            reason=optional(f, "reason"), as_user=u),
                         "Deleted", confirm=True, fresh=True),
    "reopen": FormAction(lambda c, p, u, f: lifecycle.reopen(c, p, f["version"], reason=f.get("reason", ""),
                                                             days=_days(f), as_user=u), "Reopened"),
    "archive": FormAction(lambda c, p, u, f: lifecycle.set_status(c, p, "archived", reason=optional(f, "reason"),
                                                                  as_user=u), "Archived"),
    "unarchive": FormAction(lambda c, p, u, f: lifecycle.set_status(c, p, "active", as_user=u), "Made active"),
    "deprecate": FormAction(lambda c, p, u, f: lifecycle.set_status(c, p, "deprecated", reason=optional(f, "reason"),
                                                                    successor=optional(f, "successor"), as_user=u),
                            "Deprecated"),
    "undeprecate": FormAction(lambda c, p, u, f: lifecycle.set_status(c, p, "active", as_user=u), "Made active"),
    "disable-deletions": FormAction(lambda c, p, u, f: deletion.disable_deletions(c, p, as_user=u),
                                    "Deletions turned off", confirm=True),
    "announce-removal": FormAction(lambda c, p, u, f: removal.announce_removal(
        c, p, days=_days(f), reason=optional(f, "reason"), as_user=u), "Removal announced", confirm=True),
    "cancel-removal": FormAction(lambda c, p, u, f: removal.cancel_removal(c, p, as_user=u), "Removal cancelled"),
    "invite": FormAction(lambda c, p, u, f: handover.invite(c, p, f.get("user", ""), role=f.get("role") or
                                                            "maintainer", as_user=u), "Invitation sent"),
    "transfer": FormAction(lambda c, p, u, f: handover.invite(c, p, f.get("user", ""), transfer=True, as_user=u),
                           "Transfer offered", confirm=True, fresh=True),
    "leave": FormAction(lambda c, p, u, f: handover.leave(c, p, as_user=u), "Left", confirm=True),
    "accept": FormAction(lambda c, p, u, f: handover.answer(c, p, as_user=u), "Invitation accepted"),
    "decline": FormAction(lambda c, p, u, f: handover.answer(c, p, as_user=u, accept=False), "Invitation declined"),
}
_REQUIRED = {"yank": ("version",), "unyank": ("version",), "reopen": ("version", "reason"),
             "invite": ("user",), "transfer": ("user",)}


def clean_form(form: FormData) -> dict[str, str]:
    """Text fields only, trimmed and bounded (a reason is a sentence, not a document), without
    NUL characters (no database text holds them; no person types them)."""
    return {k: v.replace("\x00", "").strip()[:2000] for k, v in form.items()
            if isinstance(v, str) and k != "csrf_token"}


def _sensitive(verb: str, project: str, form: dict[str, str]) -> str:
    """What the second-factor check is for, in the words of the page asking for it."""
    if verb == "transfer":
        return f"offering {project} to {form.get('user', '')} as its new owner"
    if form.get("filename"):
        return f"deleting {form['filename']}"
    if form.get("version"):
        return f"deleting release {form['version']} of {project}"
    return f"deleting the project {project}"


class ManagePages:
    def __init__(self, ctx: Context, auth: WebAuth) -> None:
        self.ctx = ctx
        self.auth = auth

    async def page(self, request: Request) -> Response:
        visitor = await self.auth.visitor(request)
        if visitor.user is None:
            return sign_in_needed(request)
        name = request.path_params["name"]
        if not is_valid_name(name):
            return message(visitor, "Not found", "There is no project of this name on this index.", 404)
        if normalize(name) != name:
            return RedirectResponse(f"/manage/project/{normalize(name)}/", 301)
        user = visitor.user.name
        try:
            view = await to_thread.run_sync(lambda: manage_view(self.ctx, name, as_user=user))
        except Denied as denied:
            if denied.decision.rule != NOT_FOUND:
                raise
            return message(visitor, "Not found", "There is no project of this name on this index.", 404)
        if not view.may_manage:
            return refusal_page(visitor, "Not yours", Decision.deny(
                "not-a-maintainer", f"You have no role on {view.project.name}; its owners manage it."),
                back=f"/project/{name}/", project=name)
        done = FORM_ACTIONS.get(request.query_params.get("done", ""))
        return page(visitor, "manage.html", view=view, project=view.project, done=done.label if done else None)

    async def act(self, request: Request) -> Response:
        visitor, raw = await self.auth.form(request)
        if visitor.user is None:
            return sign_in_needed(request)
        name, verb = request.path_params["name"], request.path_params["action"]
        back = f"/manage/project/{normalize(name)}/" if is_valid_name(name) else "/"
        action = FORM_ACTIONS.get(verb)
        if action is None or not is_valid_name(name):
            return message(visitor, "Not found", "There is no such action or project here.", 404, back=back)
        project = normalize(name)
        form = clean_form(raw)
        missing = [k for k in _REQUIRED.get(verb, ()) if not form.get(k)]
        if missing:
            return refusal_page(visitor, "Something is missing", Decision.deny(
                "invalid-form", f"fill in: {', '.join(missing)}"), back=back, project=project)
        if action.confirm and normalize(form.get("confirm", "") or "-") != project:
            return refusal_page(visitor, "Not confirmed", Decision.deny(
                "confirmation-required", f"type the project's name, {project}, to confirm"), back=back, project=project)
        if action.fresh:
            gate = await fresh_factor_gate(self.ctx, request, visitor, raw, _sensitive(verb, project, form), back)
            if gate is not None:
                return gate
        user = visitor.user.name
        try:
            await to_thread.run_sync(lambda: action.run(self.ctx, project, user, form))
        except Denied as denied:
            return denied_page(visitor, denied, back=back, project=project)
        if verb in ("leave", "decline"):
            return RedirectResponse("/account/", 303)
        return RedirectResponse(f"{back}?done={verb}", 303)
