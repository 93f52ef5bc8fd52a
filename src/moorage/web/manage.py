"""The management JSON API: every lifecycle action, authenticated with an API token.

One table describes each action (its fields and the service it calls); the same table
validates request bodies and produces the OpenAPI document, so the two cannot drift.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from moorage import __version__
from moorage.config import policy_rules
from moorage.domain.decisions import Decision, Denied
from moorage.domain.names import is_valid_name, normalize
from moorage.services import checks, deletion, handover, lifecycle, removal, state
from moorage.services.accounts import NotFound
from moorage.services.auth import Caller, caller
from moorage.services.context import Context
from moorage.web.responses import Refusal

MAX_BODY = 64 * 1024
JSONValue = Any


@dataclass(frozen=True)
class Field:
    kind: type  # str, bool or float
    required: bool = False
    doc: str = ""


@dataclass(frozen=True)
class Action:
    summary: str
    fields: dict[str, Field]
    run: Callable[[Context, str, str, dict[str, Any]], JSONValue]


def _files(result: list[str]) -> JSONValue:
    return {"files": result}


def _decision(result: Decision) -> JSONValue:
    return {"decision": result.as_dict()}


V = Field(str, doc="version of the release")
F = Field(str, doc="filename of one file of the release")
R = Field(str, doc="why; recorded with the event")
RR = Field(str, required=True, doc="why; recorded with the event")

ACTIONS: dict[str, Action] = {
    "yank": Action("Yank a release or one file (PEP 592)", {"version": Field(str, True), "filename": F, "reason": R},
                   lambda c, p, u, b: _files(lifecycle.yank(c, p, b["version"], b.get("filename"),
                                                            reason=b.get("reason"), as_user=u))),
    "unyank": Action("Take a yank back", {"version": Field(str, True), "filename": F},
                     lambda c, p, u, b: _files(lifecycle.unyank(c, p, b["version"], b.get("filename"), as_user=u))),
    "delete": Action("Delete a file, a release or the project (deletion window; admins with a reason)",
                     {"version": V, "filename": F, "reason": R},
                     lambda c, p, u, b: _files(deletion.delete(c, p, b.get("version"), b.get("filename"),
                                                               reason=b.get("reason"), as_user=u))),
    "restore": Action("Restore what was deleted, as it was (admin)", {"version": V, "filename": F, "reason": RR},
                      lambda c, p, u, b: _files(deletion.restore(c, p, b.get("version"), b.get("filename"),
                                                                 reason=b["reason"], as_user=u))),
    "disable-deletions": Action("Turn deletions off for good", {},
                                lambda c, p, u, b: {"changed": deletion.disable_deletions(c, p, as_user=u)}),
    "reopen": Action("Let a closed release accept new files for a while",
                     {"version": Field(str, True), "days": Field(float), "reason": RR},
                     lambda c, p, u, b: _decision(lifecycle.reopen(c, p, b["version"], reason=b["reason"],
                                                                   days=b.get("days"), as_user=u))),
    "status": Action("Set the project's status (PEP 792): active, archived, deprecated, quarantined",
                     {"status": Field(str, True), "reason": R, "successor": Field(str, doc="deprecated only")},
                     lambda c, p, u, b: (lifecycle.set_status(c, p, b["status"], reason=b.get("reason"),
                                                              successor=b.get("successor"), as_user=u), {})[1]),
    "quarantine-release": Action("Quarantine one release, or lift it (admin)",
                                 {"version": Field(str, True), "reason": RR, "lift": Field(bool)},
                                 lambda c, p, u, b: {"changed": lifecycle.quarantine_release(
                                     c, p, b["version"], reason=b["reason"], lift=bool(b.get("lift")), as_user=u)}),
    "announce-removal": Action("Announce the project's removal after a grace period",
                               {"days": Field(float), "reason": R},
                               lambda c, p, u, b: _decision(removal.announce_removal(
                                   c, p, days=b.get("days"), reason=b.get("reason"), as_user=u))),
    "cancel-removal": Action("Take an announced removal back", {},
                             lambda c, p, u, b: (removal.cancel_removal(c, p, as_user=u), {})[1]),
    "invite": Action("Invite a user as owner or maintainer",
                     {"user": Field(str, True), "role": Field(str, doc="owner or maintainer (default)")},
                     lambda c, p, u, b: {"invitation": handover.invite(c, p, b["user"], role=b.get("role") or
                                                                       "maintainer", as_user=u)}),
    "transfer": Action("Hand your place as owner to another user (they accept)", {"user": Field(str, True)},
                       lambda c, p, u, b: {"invitation": handover.invite(c, p, b["user"], transfer=True,
                                                                         as_user=u)}),
    "accept": Action("Accept your invitation", {},
                     lambda c, p, u, b: {"role": handover.answer(c, p, as_user=u)}),
    "decline": Action("Decline your invitation", {},
                      lambda c, p, u, b: {"role": handover.answer(c, p, as_user=u, accept=False)}),
    "leave": Action("Give up your role (the last owner orphans the project)", {},
                    lambda c, p, u, b: {"orphaned": handover.leave(c, p, as_user=u)}),
    "adopt": Action("Hand an orphaned project to a user (admin)", {"user": Field(str, True), "reason": RR},
                    lambda c, p, u, b: (handover.adopt(c, p, b["user"], reason=b["reason"], as_user=u), {})[1]),
}


def _bad(rule: str, reason: str, status: int = 400) -> Refusal:
    return Refusal(Decision.deny(rule, reason, status=status), as_json=True)


def _validate(action: Action, body: JSONValue) -> dict[str, Any] | Refusal:
    if not isinstance(body, dict):
        return _bad("invalid-body", "the request body must be a JSON object")
    unknown = sorted(set(body) - set(action.fields))
    if unknown:
        return _bad("invalid-body", f"unknown fields: {', '.join(unknown)}")
    clean: dict[str, Any] = {}
    for name, field in action.fields.items():
        value = body.get(name)
        if value is None:
            if field.required:
                return _bad("invalid-body", f"the field {name!r} is required")
            continue
        if field.kind is float and isinstance(value, int | float) and not isinstance(value, bool):
            clean[name] = float(value)
        elif field.kind is str and isinstance(value, str) and "\x00" in value:
            return _bad("invalid-body", f"the field {name!r} contains a NUL character")
        elif field.kind is bool and isinstance(value, bool) or field.kind is str and isinstance(value, str):
            clean[name] = value
        else:
            return _bad("invalid-body", f"the field {name!r} must be a {field.kind.__name__}")
    return clean


class ManagementAPI:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def _authorize(self, request: Request) -> tuple[str, Caller] | Refusal:
        """The project named in the path and the token's caller, or why not."""
        name = request.path_params["name"]
        if not is_valid_name(name):
            return _bad("not-found", "no project of this name on this index", status=404)
        project = normalize(name)
        who = await to_thread.run_sync(caller, self.ctx, request.headers.get("authorization"),
                                       request.client.host if request.client else None)
        if who is None:
            return _bad("authentication-required", "authenticate with an API token: Authorization: Bearer TOKEN",
                        status=401)
        if who.token.projects and project not in who.token.projects:
            return _bad("token-scope", f"the API token {who.token.token_id} is not scoped to {project!r}", 403)
        return project, who

    @staticmethod
    async def _run(call: Callable[[], Any]) -> Any:
        """Run a service off the event loop; a refusal or a missing target becomes its response."""
        try:
            return await to_thread.run_sync(call)
        except Denied as denied:
            return Refusal(denied.decision, as_json=True)
        except NotFound as missing:
            return _bad("not-found", str(missing), status=404)

    async def act(self, request: Request) -> Response:
        verb = request.path_params["action"]
        action = ACTIONS.get(verb)
        if action is None:
            return _bad("unknown-action", f"unknown action {verb!r}; see /api/openapi.json", status=404)
        authorized = await self._authorize(request)
        if isinstance(authorized, Refusal):
            return authorized
        project, who = authorized
        raw = await request.body()
        if len(raw) > MAX_BODY:
            return _bad("invalid-body", f"the request body is larger than {MAX_BODY} bytes")
        try:
            body = json.loads(raw or b"{}")
        except (ValueError, UnicodeDecodeError) as exc:
            return _bad("invalid-body", f"the request body is not valid JSON: {exc}")
        clean = _validate(action, body)
        if isinstance(clean, Refusal):
            return clean
        result = await self._run(lambda: action.run(self.ctx, project, who.token.user_name, clean))
        if isinstance(result, Response):
            return result
        return JSONResponse({"ok": True, "action": verb, "project": project, **(result or {})})

    async def state(self, request: Request) -> Response:
        authorized = await self._authorize(request)
        if isinstance(authorized, Refusal):
            return authorized
        project, who = authorized
        doc = await self._run(lambda: state.project_state(self.ctx, project, as_user=who.token.user_name))
        return doc if isinstance(doc, Response) else JSONResponse(doc)

    async def check(self, request: Request) -> Response:
        authorized = await self._authorize(request)
        if isinstance(authorized, Refusal):
            return authorized
        project, who = authorized
        params = request.query_params
        decision = await self._run(lambda: checks.check(
            self.ctx, params.get("action", ""), project, params.get("version"), params.get("filename"),
            as_user=who.token.user_name, reason=params.get("reason") or "checking"))
        return decision if isinstance(decision, Response) else JSONResponse(decision.as_dict())

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(openapi_document())

    async def policy(self, request: Request) -> Response:
        return JSONResponse({"rules": policy_rules(self.ctx.settings)})


def openapi_document() -> dict[str, Any]:
    decision = {"type": "object", "properties": {
        "allowed": {"type": "boolean"}, "rule": {"type": "string"}, "reason": {"type": "string"},
        "until": {"type": ["string", "null"], "format": "date-time"}}}
    error = {"description": "refused", "content": {"application/json": {"schema": {
        "type": "object", "properties": {"error": {"$ref": "#/components/schemas/Decision"}}}}}}
    paths: dict[str, Any] = {}
    kinds = {str: "string", bool: "boolean", float: "number"}
    for verb, action in ACTIONS.items():
        schema = {"type": "object", "additionalProperties": False,
                  "properties": {n: {"type": kinds[f.kind], "description": f.doc} for n, f in action.fields.items()},
                  "required": [n for n, f in action.fields.items() if f.required]}
        paths[f"/api/projects/{{project}}/{verb}"] = {"post": {
            "summary": action.summary, "operationId": verb.replace("-", "_"),
            "security": [{"token": []}],
            "parameters": [{"name": "project", "in": "path", "required": True, "schema": {"type": "string"}}],
            "requestBody": {"required": False, "content": {"application/json": {"schema": schema}}},
            "responses": {"200": {"description": "done"}, "400": error, "401": error, "403": error,
                          "404": error}}}
    paths["/api/projects/{project}/check"] = {"get": {
        "summary": "May I? The decision an action would meet, without doing it", "operationId": "check",
        "security": [{"token": []}],
        "parameters": [{"name": "project", "in": "path", "required": True, "schema": {"type": "string"}},
                       {"name": "action", "in": "query", "required": True,
                        "schema": {"type": "string", "enum": list(checks.ACTIONS)}},
                       {"name": "version", "in": "query", "schema": {"type": "string"}},
                       {"name": "filename", "in": "query", "schema": {"type": "string"}}],
        "responses": {"200": {"description": "the decision", "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/Decision"}}}}, "400": error, "401": error, "404": error}}}
    paths["/api/projects/{project}"] = {"get": {
        "summary": "The project's lifecycle state: status, roles, every release's upload window, and for each "
                   "file the caller's delete decision", "operationId": "state", "security": [{"token": []}],
        "parameters": [{"name": "project", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {"200": {"description": "the state"}, "401": error, "403": error, "404": error}}}
    paths["/api/policy"] = {"get": {
        "summary": "The rules in force, with their configuration keys", "operationId": "policy",
        "responses": {"200": {"description": "the rules"}}}}
    paths["/api/projects/{project}/events"] = {"get": {
        "summary": "The project's history (public actions; all for admins)", "operationId": "events",
        "parameters": [{"name": "project", "in": "path", "required": True, "schema": {"type": "string"}},
                       {"name": "after", "in": "query", "schema": {"type": "integer"}}],
        "responses": {"200": {"description": "events in serial order"}, "404": error}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "moorage management API", "version": __version__},
        "paths": paths,
        "components": {"schemas": {"Decision": decision},
                       "securitySchemes": {"token": {"type": "http", "scheme": "bearer",
                                                    "description": "an API token (moorage token create)"}}},
    }
