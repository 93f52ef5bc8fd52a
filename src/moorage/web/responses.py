"""Responses shared by the views: refusals carry their reason in the status line and body."""

from __future__ import annotations

import json

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from moorage.domain.decisions import Decision
from moorage.web import reason


class Refusal(Response):
    """A denied decision as HTTP: status, one-line reason, rule id in a header."""

    def __init__(self, decision: Decision, *, as_json: bool = False) -> None:
        self.decision = decision
        headers = {"X-Moorage-Rule": decision.rule}
        if as_json:
            body = json.dumps({"error": decision.as_dict()}).encode()
            super().__init__(body, decision.status, headers, media_type="application/json")
        else:
            super().__init__(decision.reason + "\n", decision.status, headers, media_type="text/plain")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = reason.status_reason(self.decision.reason)
        try:
            await super().__call__(scope, receive, send)
        finally:
            reason.reset(token)


def not_found(what: str, *, as_json: bool = False) -> Refusal:
    return Refusal(Decision.deny("not-found", what, status=404), as_json=as_json)
