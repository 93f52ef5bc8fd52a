"""The management JSON API: every lifecycle action, authenticated with an API token.

One table describes each action: its fields (what each accepts), the rules between them, the
service it calls and what it answers. The same table validates request bodies and query
parameters, routes the requests and produces the OpenAPI document, so the two cannot drift.
`tests/e2e/test_openapi.py` runs Schemathesis against the real server to prove it.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from moorage import __version__
from moorage.config import policy_rules
from moorage.domain.decisions import NOT_FOUND, Decision, Denied
from moorage.domain.lifecycle import MAX_DAYS, STATUSES
from moorage.domain.names import MAX_NAME_LENGTH, is_valid_name, normalize
from moorage.services import checks, deletion, handover, lifecycle, removal, state
from moorage.services.auth import Caller, caller
from moorage.services.context import Context
from moorage.web.responses import Refusal, attribute

MAX_BODY = 64 * 1024
JSONValue = Any

# -- what a value may be ------------------------------------------------------------------------
# Patterns are matched against the whole value and written so that ECMA-262 (the dialect of the
# OpenAPI document) and Python's re read them alike: explicit classes, no \s, \d or '.', no flags.


def _escaped(chars: str) -> str:
    return "".join(f"\\u{ord(c):04x}" for c in chars)


# What str.strip() removes: the services treat a reason of only these characters as no reason.
_BLANK = _escaped("".join(chr(c) for c in range(0x110000) if chr(c).isspace()))
TEXT = "[^\\u0000]*"
NON_BLANK = f"[^\\u0000]*[^\\u0000{_BLANK}][^\\u0000]*"


def _any_case(word: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" for c in word)


def _words(*words: str) -> str:
    return "|".join(_any_case(w) for w in words)


_SEP = "[._-]?"
# PEP 440 as packaging reads it (case-insensitive), without the surrounding white space it forgives.
VERSION = (f"{_any_case('v')}?(?:[0-9]+!)?[0-9]+(?:\\.[0-9]+)*"
           f"(?:{_SEP}(?:{_words('alpha', 'a', 'beta', 'b', 'preview', 'pre', 'c', 'rc')}){_SEP}[0-9]*)?"
           f"(?:-[0-9]+|{_SEP}(?:{_words('post', 'rev', 'r')}){_SEP}[0-9]*)?"
           f"(?:{_SEP}{_any_case('dev')}{_SEP}[0-9]*)?"
           "(?:\\+[a-zA-Z0-9]+(?:[._-][a-zA-Z0-9]+)*)?")
PROJECT_NAME = "[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"  # domain/names.py: PEP 508
USER_NAME = "[A-Za-z0-9][A-Za-z0-9._-]*"  # services/accounts.py
# Every field together stays under MAX_BODY even with each character written as a \u escape pair.
MAX_REASON = 2000
# A period of days: at least a second (timedelta keeps microseconds: a smaller positive number
# would become no time at all), at most what the services accept.
MIN_DAYS = 1 / 86400
MAX_EVENT_SERIAL = 2**31 - 1  # events.serial is an INTEGER column: 32 bits on PostgreSQL

_KINDS = {str: "string", bool: "boolean", float: "number", int: "integer"}


@dataclass(frozen=True)
class Field:
    """What one body field or query parameter accepts: the document says it, `problem` checks it."""

    kind: type  # str, bool, float (any JSON number) or int
    required: bool = False
    doc: str = ""
    pattern: str | None = None  # the whole value matches
    meaning: str = ""  # what the pattern (or the bounds) ask for, in words, for the refusal
    min_length: int | None = None
    max_length: int | None = None
    enum: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    nullable: bool = False  # null is accepted (and means "not given"); otherwise it is refused

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": [_KINDS[self.kind], "null"] if self.nullable else _KINDS[self.kind]}
        if self.doc:
            out["description"] = self.doc
        if self.enum:
            out["enum"] = list(self.enum)
        if self.min_length is not None:
            out["minLength"] = self.min_length
        if self.max_length is not None:
            out["maxLength"] = self.max_length
        if self.pattern is not None:
            out["pattern"] = f"^(?:{self.pattern})$"
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        return out

    def problem(self, value: JSONValue) -> str | None:
        """Why the value is refused (to follow "the field 'x' "), or None."""
        if value is None:
            return None if self.nullable else f"must be a {_KINDS[self.kind]}, not null"
        if self.kind is str:
            return self._text_problem(value)
        if self.kind is bool:
            return None if isinstance(value, bool) else "must be a boolean"
        if isinstance(value, bool) or not isinstance(value, int | float) or (self.kind is int
                                                                                and not isinstance(value, int)):
            return f"must be a {_KINDS[self.kind]}"
        if isinstance(value, float) and not math.isfinite(value):
            return "must be a finite number"
        # Compared before any conversion: an integer too large for a float is simply too large.
        if self.minimum is not None and value < self.minimum:
            return f"must be {self.meaning}" if self.meaning else f"must be at least {_number(self.minimum)}"
        if self.maximum is not None and value > self.maximum:
            return f"must be {self.meaning}" if self.meaning else f"must be at most {_number(self.maximum)}"
        return None

    def _text_problem(self, value: JSONValue) -> str | None:
        if not isinstance(value, str):
            return "must be a string"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "must be Unicode text (it holds a lone surrogate)"
        if self.enum and value not in self.enum:
            return f"must be one of {', '.join(self.enum)}"
        if self.min_length is not None and len(value) < self.min_length:
            return f"must be at least {self.min_length} characters long"
        if self.max_length is not None and len(value) > self.max_length:
            return f"must be at most {self.max_length} characters long"
        if "\x00" in value:
            return "contains a NUL character"
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            return f"must be {self.meaning}"
        return None

    def convert(self, value: JSONValue) -> JSONValue:
        return float(value) if self.kind is float and value is not None else value

    def parse(self, text: str) -> JSONValue:
        """A query parameter's text as the value it stands for (left as text when it is not one)."""
        if self.kind is int and re.fullmatch("-?[0-9]+", text):
            try:
                return int(text)
            except ValueError:  # more digits than Python converts
                return text
        return text


def _number(x: float) -> str:
    return str(int(x)) if x == int(x) else repr(x)


class Rule(Protocol):
    """A constraint between fields, in the document and in the validation."""

    def schema(self) -> dict[str, Any]: ...

    def problem(self, values: Mapping[str, JSONValue], noun: str) -> str | None: ...


@dataclass(frozen=True)
class Needs:
    """``name`` is given only together with ``other``."""

    name: str
    other: str

    def schema(self) -> dict[str, Any]:
        return {"dependentRequired": {self.name: [self.other]}}

    def problem(self, values: Mapping[str, JSONValue], noun: str) -> str | None:
        if self.name in values and self.other not in values:
            return f"the {noun} {self.name!r} needs the {noun} {self.other!r} too"
        return None


@dataclass(frozen=True)
class When:
    """When ``name`` is ``value``, ``other`` is required and accepts only what ``then`` says."""

    name: str
    value: str
    other: str
    then: Field

    def schema(self) -> dict[str, Any]:
        return {"if": {"properties": {self.name: {"const": self.value}}, "required": [self.name]},
                "then": {"properties": {self.other: self.then.schema()}, "required": [self.other]}}

    def problem(self, values: Mapping[str, JSONValue], noun: str) -> str | None:
        if values.get(self.name) != self.value:
            return None
        if self.other not in values:
            return f"the {noun} {self.other!r} is required when {self.name!r} is {self.value!r}"
        why = self.then.problem(values[self.other])
        return f"the {noun} {self.other!r} {why} when {self.name!r} is {self.value!r}" if why else None


@dataclass(frozen=True)
class OnlyWhen:
    """``name`` is given only when ``other`` is ``value``."""

    name: str
    other: str
    value: str

    def schema(self) -> dict[str, Any]:
        return {"dependentSchemas": {self.name: {"properties": {self.other: {"const": self.value}},
                                                 "required": [self.other]}}}

    def problem(self, values: Mapping[str, JSONValue], noun: str) -> str | None:
        if self.name in values and values.get(self.other) != self.value:
            return f"the {noun} {self.name!r} is given only when {self.other!r} is {self.value!r}"
        return None


def object_schema(fields: Mapping[str, Field], rules: tuple[Rule, ...] = (), *, closed: bool = True
                  ) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": {n: f.schema() for n, f in fields.items()}}
    if closed:
        schema["additionalProperties"] = False
    required = [n for n, f in fields.items() if f.required]
    if required:
        schema["required"] = required
    if rules:
        schema["allOf"] = [r.schema() for r in rules]
    return schema


def check_values(fields: Mapping[str, Field], rules: tuple[Rule, ...], values: Mapping[str, JSONValue],
                 noun: str) -> dict[str, Any] | str:
    """The values as the services take them, or the sentence that refuses them."""
    clean: dict[str, Any] = {}
    for name, f in fields.items():
        if name not in values:
            if f.required:
                return f"the {noun} {name!r} is required"
            continue
        why = f.problem(values[name])
        if why:
            return f"the {noun} {name!r} {why}"
        if values[name] is not None:
            clean[name] = f.convert(values[name])
    for rule in rules:
        why = rule.problem(clean, noun)
        if why:
            return why
    return clean


V = Field(str, doc="version of the release (PEP 440)", pattern=VERSION, meaning="a version (PEP 440), such as 1.0",
          max_length=100)
RV = replace(V, required=True)
F = Field(str, doc="filename of one file of the release", pattern=TEXT, min_length=1, max_length=255)
R = Field(str, doc="why; recorded with the event. Optional: empty or only white space means no reason",
          pattern=TEXT, max_length=MAX_REASON)
RR = Field(str, True, doc="why; recorded with the event. Required: something other than white space",
           pattern=NON_BLANK, meaning="more than white space", max_length=MAX_REASON)
USER = Field(str, True, doc="a user name", pattern=USER_NAME, meaning="a user name (letters, digits, . _ -)",
             max_length=100)
DAYS = Field(float, doc="how long, in days (at least a second's worth, 1/86400)", minimum=MIN_DAYS,
             maximum=MAX_DAYS, meaning=f"a number of days from 1/86400 (a second) to {_number(MAX_DAYS)}")

# -- the actions --------------------------------------------------------------------------------
DECISION_REF = {"$ref": "#/components/schemas/Decision"}
FILES = {"files": {"type": "array", "items": {"type": "string"}, "description": "the filenames it changed"}}
CHANGED = {"changed": {"type": "boolean", "description": "false when it was so already"}}


@dataclass(frozen=True)
class Action:
    summary: str
    fields: dict[str, Field]
    run: Callable[[Context, str, str, dict[str, Any]], JSONValue]
    returns: dict[str, Any] = field(default_factory=dict)  # the keys the answer adds to ok, action, project
    rules: tuple[Rule, ...] = ()
    conflict: str = ""  # when it answers 409: the state of the project refuses it
    also_400: str = ""  # a request the service refuses that the schema cannot describe


def _files(result: list[str]) -> JSONValue:
    return {"files": result}


def _decision(result: Decision) -> JSONValue:
    return {"decision": result.as_dict()}


ACTIONS: dict[str, Action] = {
    "yank": Action("Yank a release or one file (PEP 592)", {"version": RV, "filename": F, "reason": R},
                   lambda c, p, u, b: _files(lifecycle.yank(c, p, b["version"], b.get("filename"),
                                                            reason=b.get("reason"), as_user=u)), FILES),
    "unyank": Action("Take a yank back", {"version": RV, "filename": F},
                     lambda c, p, u, b: _files(lifecycle.unyank(c, p, b["version"], b.get("filename"), as_user=u)),
                     FILES),
    "delete": Action("Delete a file, a release or the project (deletion window; admins with a reason)",
                     {"version": V, "filename": F, "reason": R},
                     lambda c, p, u, b: _files(deletion.delete(c, p, b.get("version"), b.get("filename"),
                                                               reason=b.get("reason"), as_user=u)),
                     FILES, (Needs("filename", "version"),)),
    "restore": Action("Restore what was deleted, as it was (admin)", {"version": V, "filename": F, "reason": RR},
                      lambda c, p, u, b: _files(deletion.restore(c, p, b.get("version"), b.get("filename"),
                                                                 reason=b["reason"], as_user=u)),
                      FILES, (Needs("filename", "version"),), "the bytes are no longer kept (retention-expired)"),
    "disable-deletions": Action("Turn deletions off for good", {},
                                lambda c, p, u, b: {"changed": deletion.disable_deletions(c, p, as_user=u)},
                                CHANGED),
    "reopen": Action("Let a closed release accept new files for a while",
                     {"version": RV, "days": DAYS, "reason": RR},
                     lambda c, p, u, b: _decision(lifecycle.reopen(c, p, b["version"], reason=b["reason"],
                                                                   days=b.get("days"), as_user=u)),
                     {"decision": DECISION_REF}),
    "status": Action("Set the project's status (PEP 792): active, archived, deprecated, quarantined",
                     {"status": Field(str, True, enum=STATUSES, doc="quarantined: admins only, with a reason"),
                      "reason": R,
                      "successor": Field(str, doc="the project that replaces it (deprecated only)",
                                         pattern=PROJECT_NAME, meaning="a project name",
                                         max_length=MAX_NAME_LENGTH)},
                     lambda c, p, u, b: (lifecycle.set_status(c, p, b["status"], reason=b.get("reason"),
                                                              successor=b.get("successor"), as_user=u), {})[1],
                     {}, (When("status", "quarantined", "reason", replace(RR, required=False)),
                          OnlyWhen("successor", "status", "deprecated")),
                     "lifting a quarantine needs a reason (lift-reason-required)",
                     "the project named as its own successor (successor)"),
    "quarantine-release": Action("Quarantine one release, or lift it (admin)",
                                 {"version": RV, "reason": RR, "lift": Field(bool, doc="lift the quarantine")},
                                 lambda c, p, u, b: {"changed": lifecycle.quarantine_release(
                                     c, p, b["version"], reason=b["reason"], lift=bool(b.get("lift")), as_user=u)},
                                 CHANGED),
    "announce-removal": Action("Announce the project's removal after a grace period",
                               {"days": replace(DAYS, doc="the grace period in days (owners: at least the policy's "
                                                          "removal_grace, the default)"), "reason": R},
                               lambda c, p, u, b: _decision(removal.announce_removal(
                                   c, p, days=b.get("days"), reason=b.get("reason"), as_user=u)),
                               {"decision": DECISION_REF}),
    "cancel-removal": Action("Take an announced removal back", {},
                             lambda c, p, u, b: (removal.cancel_removal(c, p, as_user=u), {})[1],
                             conflict="no removal was announced (no-removal)"),
    "invite": Action("Invite a user as owner or maintainer",
                     {"user": USER, "role": Field(str, enum=("owner", "maintainer"), doc="maintainer by default")},
                     lambda c, p, u, b: {"invitation": handover.invite(c, p, b["user"], role=b.get("role") or
                                                                       "maintainer", as_user=u)},
                     {"invitation": {"type": "integer"}}, conflict="the user has that role already "
                                                                  "(already-has-role)"),
    "transfer": Action("Hand your place as owner to another user (they accept)", {"user": USER},
                       lambda c, p, u, b: {"invitation": handover.invite(c, p, b["user"], transfer=True,
                                                                         as_user=u)},
                       {"invitation": {"type": "integer"}}, conflict="you have no role to hand over (no-role), or "
                                                                    "the user is an owner already (already-has-role)"),
    "accept": Action("Accept your invitation", {},
                     lambda c, p, u, b: {"role": handover.answer(c, p, as_user=u)},
                     {"role": {"enum": ["owner", "maintainer"]}}),
    "decline": Action("Decline your invitation", {},
                      lambda c, p, u, b: {"role": handover.answer(c, p, as_user=u, accept=False)},
                      {"role": {"const": "declined"}}),
    "leave": Action("Give up your role (the last owner orphans the project)", {},
                    lambda c, p, u, b: {"orphaned": handover.leave(c, p, as_user=u)},
                    {"orphaned": {"type": "boolean"}}, conflict="you have no role here (no-role)"),
    "adopt": Action("Hand an orphaned project to a user (admin)", {"user": USER, "reason": RR},
                    lambda c, p, u, b: (handover.adopt(c, p, b["user"], reason=b["reason"], as_user=u), {})[1],
                    conflict="the project has owners (not-orphaned)"),
}

# The query of GET /api/projects/{project}/check: one object, so the rules between its
# parameters can be said (OpenAPI: style form, explode: each property is one parameter).
CHECK_QUERY: dict[str, Field] = {
    "action": Field(str, True, enum=checks.ACTIONS, doc="the action to decide"),
    "version": V, "filename": F,
    "reason": Field(str, doc="the reason it would be given (restore and quarantine need one); "
                             "a placeholder when left out", pattern=TEXT, max_length=MAX_REASON),
}
CHECK_RULES: tuple[Rule, ...] = (Needs("filename", "version"), When("action", "reopen", "version", V))
EVENTS_QUERY: dict[str, Field] = {
    "after": Field(int, doc="only events with a larger serial", minimum=0, maximum=MAX_EVENT_SERIAL),
}


def _bad(rule: str, reason: str) -> Refusal:
    """A refusal made here, as JSON; its status is its rule's (web/statuses.py)."""
    return Refusal(Decision.deny(rule, reason), as_json=True)


def _validate(action: Action, body: JSONValue) -> dict[str, Any] | Refusal:
    if not isinstance(body, dict):
        return _bad("invalid-body", "the request body must be a JSON object")
    unknown = sorted(set(body) - set(action.fields))
    if unknown:
        return _bad("invalid-body", f"unknown fields: {', '.join(unknown)}")
    clean = check_values(action.fields, action.rules, body, "field")
    return _bad("invalid-body", clean) if isinstance(clean, str) else clean


def query_values(request: Request, fields: Mapping[str, Field], rules: tuple[Rule, ...] = ()
                 ) -> dict[str, Any] | Refusal:
    """The query parameters this operation reads, checked against its table (others are ignored)."""
    values: dict[str, JSONValue] = {}
    for name, f in fields.items():
        given = request.query_params.getlist(name)
        if len(given) > 1:
            return _bad("invalid-query", f"the parameter {name!r} is given more than once")
        if given:
            values[name] = f.parse(given[0])
    clean = check_values(fields, rules, values, "parameter")
    return _bad("invalid-query", clean) if isinstance(clean, str) else clean


class ManagementAPI:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def routes(self) -> list[Route]:
        """Its routes: one per action of the table, so a wrong method is answered 405 with Allow."""
        return [
            Route("/api/projects/{name:str}", self.state, methods=["GET"]),
            Route("/api/projects/{name:str}/check", self.check, methods=["GET"]),
            *(Route(f"/api/projects/{{name:str}}/{verb}", functools.partial(self.act, verb), methods=["POST"])
              for verb in ACTIONS),
            Route("/api/openapi.json", self.openapi, methods=["GET"]),
            Route("/api/policy", self.policy, methods=["GET"]),
        ]

    async def _authorize(self, request: Request) -> tuple[str, Caller] | Refusal:
        """The project named in the path and the token's caller, or why not."""
        name = request.path_params["name"]
        if not is_valid_name(name):
            return _bad(NOT_FOUND, "no project of this name on this index")
        project = normalize(name)
        who = await to_thread.run_sync(caller, self.ctx, request.headers.get("authorization"),
                                       request.client.host if request.client else None)
        if who is None:
            return _bad("authentication-required", "authenticate with an API token: Authorization: Bearer TOKEN")
        attribute(request.scope, project=project, actor=who.token.user_name)
        if who.token.projects and project not in who.token.projects:
            return _bad("token-scope", f"the API token {who.token.token_id} is not scoped to {project!r}")
        return project, who

    @staticmethod
    async def _run(call: Callable[[], Any]) -> Any:
        """Run a service off the event loop; a refusal (a missing target included) becomes its response."""
        try:
            return await to_thread.run_sync(call)
        except Denied as denied:
            return Refusal(denied.decision, as_json=True)

    async def act(self, verb: str, request: Request) -> Response:
        action = ACTIONS[verb]
        authorized = await self._authorize(request)
        if isinstance(authorized, Refusal):
            return authorized
        project, who = authorized
        raw = await request.body()
        if len(raw) > MAX_BODY:
            return _bad("invalid-body", f"the request body is larger than {MAX_BODY} bytes")
        try:
            body = json.loads(raw or b"{}", parse_constant=_not_json)
        except (ValueError, UnicodeDecodeError) as exc:
            return _bad("invalid-body", f"the request body is not valid JSON: {exc}")
        except RecursionError:
            return _bad("invalid-body", "the request body is nested too deeply")
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
        query = query_values(request, CHECK_QUERY, CHECK_RULES)
        if isinstance(query, Refusal):
            return query
        decision = await self._run(lambda: checks.check(
            self.ctx, query["action"], project, query.get("version"), query.get("filename"),
            as_user=who.token.user_name, reason=query.get("reason") or "checking"))
        return decision if isinstance(decision, Response) else JSONResponse(decision.as_dict())

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(openapi_document())

    async def policy(self, request: Request) -> Response:
        return JSONResponse({"rules": policy_rules(self.ctx.settings)})


def _not_json(constant: str) -> None:
    """NaN and Infinity are not JSON (RFC 8259), though Python's reader takes them."""
    raise ValueError(f"{constant} is not a JSON value")


async def not_found(request: Request, exc: Exception) -> Response:
    """No such address under /api/: the refusal as JSON, like every answer of the API."""
    return _bad(NOT_FOUND, "no such address in the management API; see /api/openapi.json")


async def method_not_allowed(request: Request, exc: Exception) -> Response:
    return _bad("method-not-allowed", f"{request.method} is not an operation of this address; see "
                "/api/openapi.json")


# -- the OpenAPI document -----------------------------------------------------------------------
def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _closed(properties: dict[str, Any]) -> dict[str, Any]:
    """An object with exactly these properties."""
    return {"type": "object", "additionalProperties": False, "required": list(properties), "properties": properties}


INSTANT = {"type": "string", "format": "date-time"}
ROLE = {"enum": ["owner", "maintainer"]}
SCHEMAS: dict[str, Any] = {
    "Decision": _closed({"allowed": {"type": "boolean"}, "rule": {"type": "string"}, "reason": {"type": "string"},
                         "until": _nullable(INSTANT)}),
    "Refusal": _closed({"error": {"allOf": [DECISION_REF, {"properties": {"allowed": {"const": False}}}]}}),
    "State": _closed({
        "project": {"type": "string"}, "name": {"type": "string"}, "status": {"enum": list(STATUSES)},
        "status_reason": _nullable({"type": "string"}), "successor": _nullable({"type": "string"}),
        "deleted": {"type": "boolean"}, "deletions_disabled_at": _nullable(INSTANT), "removal_at": _nullable(INSTANT),
        "roles": {"type": "array", "items": _closed({"user": {"type": "string"}, "role": ROLE})},
        "you": _closed({"user": {"type": "string"}, "admin": {"type": "boolean"}, "role": _nullable(ROLE)}),
        "releases": {"type": "array", "items": _closed({
            "version": {"type": "string"}, "upload_window_closes": INSTANT, "reopened_until": _nullable(INSTANT),
            "accepts_uploads": {"type": "boolean"}, "upload_window": DECISION_REF, "quarantined": {"type": "boolean"},
            "deleted": {"type": "boolean"},
            "files": {"type": "array", "items": _closed({
                "filename": {"type": "string"}, "size": {"type": "integer", "minimum": 0},
                "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"}, "upload_time": INSTANT,
                "yanked": {"type": "boolean"}, "yanked_reason": _nullable({"type": "string"}),
                "deleted": {"type": "boolean"}, "may_delete": _nullable(DECISION_REF)})}})}}),
    "Events": _closed({"project": {"type": "string"}, "all": {"type": "boolean", "description": "every action "
                                                                "(an admin's token), else the public ones"},
                       "events": {"type": "array", "items": _closed({
                           "serial": {"type": "integer", "minimum": 1}, "time": INSTANT, "actor": {"type": "string"},
                           "action": {"type": "string"}, "project": _nullable({"type": "string"}),
                           "subject": {"type": "string"}, "payload": {"type": "object"}})}}),
    "Policy": _closed({"rules": {"type": "array", "items": _closed({
        "rule": {"type": "string"}, "key": _nullable({"type": "string"}), "value": {},
        "meaning": {"type": "string"}})}}),
}

PROJECT_PARAMETER = {"name": "project", "in": "path", "required": True,
                     "description": "the project's name, as registered or normalized (PEP 503); any other name "
                                    "is answered 404",
                     "schema": Field(str, pattern=PROJECT_NAME, max_length=MAX_NAME_LENGTH).schema()}
TOKEN: list[dict[str, list[str]]] = [{"token": []}]
RULE_HEADER = {"X-Moorage-Rule": {"description": "the rule behind the refusal", "required": True,
                                  "schema": {"type": "string"}}}
REFUSED = {"headers": RULE_HEADER,
           "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Refusal"}}}}


def _refused(description: str) -> dict[str, Any]:
    return {"description": description, **REFUSED}


def _ok(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


FAILURES = {"503": _refused("the database or the file storage is unavailable; nothing was changed "
                            "(database-unavailable, storage-unavailable)"),
            "507": _refused("the storage is full; nothing was changed (storage-full)")}
AUTHENTICATED = {"401": _refused("no valid API token (authentication-required)"),
                 "403": _refused("the token is scoped to other projects (token-scope), or the policy refuses "
                                 "this user (not-an-owner, admin-only, two-factor-required, reopen-period, "
                                 "removal-grace, reason-required for an admin's deletion, ...)"),
                 "404": _refused("no project of this name (an invalid name included), or no such release, file, "
                                 "user or invitation (not-found)")}


def _action_operation(verb: str, action: Action) -> dict[str, Any]:
    body = object_schema(action.fields, action.rules)
    responses: dict[str, Any] = {
        "200": _ok("done", _closed({"ok": {"const": True}, "action": {"const": verb},
                                    "project": {"type": "string", "description": "the normalized name"},
                                    **action.returns})),
        "400": _refused(f"the body is not a JSON object of the fields above, of at most {MAX_BODY} bytes "
                        "(invalid-body), or it cannot be stored (invalid-input)"
                        + (f"; or {action.also_400}" if action.also_400 else "")),
        **AUTHENTICATED,
    }
    if action.conflict:
        responses["409"] = _refused(f"the project's state refuses it: {action.conflict}")
    return {"post": {
        "summary": action.summary, "operationId": verb.replace("-", "_"), "security": TOKEN,
        "parameters": [PROJECT_PARAMETER],
        "requestBody": {"required": any(f.required for f in action.fields.values()),
                        "description": "a JSON object; an empty body stands for {}",
                        "content": {"application/json": {"schema": body}}},
        "responses": {**responses, **FAILURES}}}


def openapi_document() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for verb, action in ACTIONS.items():
        paths[f"/api/projects/{{project}}/{verb}"] = _action_operation(verb, action)
    paths["/api/projects/{project}/check"] = {"get": {
        "summary": "May I? The decision an action would meet, without doing it", "operationId": "check",
        "security": TOKEN,
        "parameters": [PROJECT_PARAMETER,
                       {"name": "query", "in": "query", "required": True, "style": "form", "explode": True,
                        "description": "action, version, filename, reason: each its own query parameter, each at "
                                       "most once (other parameters are ignored)",
                        "schema": object_schema(CHECK_QUERY, CHECK_RULES, closed=False)}],
        "responses": {"200": _ok("the decision", DECISION_REF),
                      "400": _refused("a query parameter is missing, repeated or invalid (invalid-query)"),
                      **AUTHENTICATED, **FAILURES}}}
    paths["/api/projects/{project}"] = {"get": {
        "summary": "The project's lifecycle state: status, roles, every release's upload window, and for each "
                   "file the caller's delete decision", "operationId": "state", "security": TOKEN,
        "parameters": [PROJECT_PARAMETER],
        "responses": {"200": _ok("the state", {"$ref": "#/components/schemas/State"}), **AUTHENTICATED,
                      **FAILURES}}}
    paths["/api/projects/{project}/events"] = {"get": {
        "summary": "The project's history (public actions; all for admins)", "operationId": "events",
        "security": [{}, *TOKEN],
        "parameters": [PROJECT_PARAMETER,
                       *({"name": n, "in": "query", "schema": f.schema()} for n, f in EVENTS_QUERY.items())],
        "responses": {"200": _ok("events in serial order, at most 1000", {"$ref": "#/components/schemas/Events"}),
                      "301": {"description": "the normalized name's address",
                              "headers": {"Location": {"required": True, "schema": {"type": "string"}}}},
                      "400": _refused("`after` is not an integer from 0 to 2^31-1, or is repeated (invalid-query)"),
                      "404": _refused("no project of this name (not-found)"), **FAILURES}}}
    paths["/api/policy"] = {"get": {
        "summary": "The rules in force, with their configuration keys", "operationId": "policy",
        "responses": {"200": _ok("the rules", {"$ref": "#/components/schemas/Policy"})}}}
    paths["/api/openapi.json"] = {"get": {
        "summary": "This document", "operationId": "openapi",
        "responses": {"200": _ok("the OpenAPI document", {"type": "object", "required": ["openapi", "paths"]})}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "moorage management API", "version": __version__,
                 "description": "Every answer but a redirect is JSON; a refusal is its decision with the rule id "
                                "(also in the X-Moorage-Rule header) and the reason (also in the status line). "
                                "A wrong method is answered 405 with Allow; HEAD is answered wherever GET is."},
        "paths": paths,
        "components": {"schemas": SCHEMAS,
                       "securitySchemes": {"token": {"type": "http", "scheme": "bearer",
                                                    "description": "an API token (moorage token create); basic "
                                                                   "auth as __token__ works too"}}},
    }
