"""Responses shared by the views: refusals carry their reason in the status line and body."""

from __future__ import annotations

import json
import re

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from moorage import oplog
from moorage.domain.decisions import NOT_FOUND, Decision
from moorage.domain.names import normalize
from moorage.web import reason
from moorage.web.statuses import status_of

# Who a refusal was for, as far as the view knows (the operator's log line): set on the scope.
_WHO = "moorage.who"
_PROJECT_IN_PATH = re.compile(r"/(?:pending/)?(?:simple|project|manage/project|api/projects|pypi)/([^/]+)")


def attribute(scope: Scope, *, project: str | None = None, actor: str | None = None) -> None:
    """Name the project and the actor of this request, for the log line of a refusal."""
    who = scope.setdefault(_WHO, {})
    if project:
        who["project"] = project
    if actor:
        who["actor"] = actor


def log_refusal(scope: Scope, decision: Decision) -> None:
    """The operator's line for a refusal (docs/operations.md). A 404 is no refusal of a rule
    (installers ask for projects an index does not have), and a 5xx is logged where it failed."""
    status = status_of(decision)
    if decision.rule == NOT_FOUND or status >= 500:
        return
    who = scope.get(_WHO, {})
    path = str(scope.get("path", ""))
    project = who.get("project")
    if project is None:
        match = _PROJECT_IN_PATH.match(path)
        project = normalize(match.group(1)) if match else None
    oplog.refused(decision.rule, status, decision.reason, project=project, actor=who.get("actor"),
                  method=scope.get("method"), path=path)


class Refusal(Response):
    """A denied decision as HTTP: the status of its rule (web/statuses.py), the one-line reason,
    the rule id in a header."""

    def __init__(self, decision: Decision, *, as_json: bool = False) -> None:
        self.decision = decision
        status = status_of(decision)
        headers = {"X-Moorage-Rule": decision.rule}
        if as_json:
            body = json.dumps({"error": decision.as_dict()}).encode()
            super().__init__(body, status, headers, media_type="application/json")
        else:
            super().__init__(decision.reason + "\n", status, headers, media_type="text/plain")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        log_refusal(scope, self.decision)
        token = reason.status_reason(self.decision.reason)
        try:
            await super().__call__(scope, receive, send)
        finally:
            reason.reset(token)


def not_found(what: str, *, as_json: bool = False) -> Refusal:
    return Refusal(Decision.deny(NOT_FOUND, what), as_json=as_json)
