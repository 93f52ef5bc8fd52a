"""When a part the index depends on fails: a clear 503 or 507, never a 500.

A full disk or an unreachable database is not the client's fault and not a bug: the answer
says which part failed and that nothing was changed (every write is one transaction, and a
failed upload's bytes are dropped or kept only where something may use them).
"""

from __future__ import annotations

import errno
import logging

from sqlalchemy.exc import DataError, DBAPIError, InterfaceError, OperationalError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from moorage.domain.decisions import Decision
from moorage.web.responses import Refusal

_log = logging.getLogger(__name__)
_FULL = {errno.ENOSPC, errno.EDQUOT}


def _is_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in _FULL:
        return True
    # SQLite reports a full disk as an OperationalError: "database or disk is full".
    return isinstance(exc, DBAPIError) and "disk is full" in str(exc.orig)


def failure_decision(exc: BaseException) -> Decision | None:
    """The refusal for an infrastructure failure, or None for anything else (a bug: 500)."""
    if _is_full(exc):
        return Decision.deny("storage-full", "the index's storage is full; nothing was stored or changed, "
                             "try again later")
    if isinstance(exc, DataError):  # e.g. a NUL character, which PostgreSQL text cannot hold
        return Decision.deny("invalid-input", "a value in the request cannot be stored (NUL characters are not "
                             "allowed); nothing was changed")
    if isinstance(exc, OperationalError | InterfaceError) or (isinstance(exc, DBAPIError)
                                                              and exc.connection_invalidated):
        return Decision.deny("database-unavailable", "the index's database is unavailable; nothing was changed, "
                             "try again later")
    if isinstance(exc, OSError):
        return Decision.deny("storage-unavailable", f"the index's file storage failed ({exc.strerror}); "
                             "nothing was changed, try again later")
    return None


async def handle(request: Request, exc: Exception) -> Response:
    """Starlette exception handler for DBAPIError and OSError."""
    decision = failure_decision(exc)
    if decision is None:
        raise exc
    _log.warning("%s %s: %s", request.method, request.url.path, decision.rule, exc_info=exc)
    return Refusal(decision, as_json=request.url.path.startswith(("/api/", "/pypi/")))


class FailureGuard:
    """Outermost ASGI layer: the fast paths (/simple/) bypass the router's handlers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except (DBAPIError, OSError) as exc:
            decision = failure_decision(exc)
            if started or decision is None:
                raise
            _log.warning("%s %s: %s", scope.get("method"), scope.get("path"), decision.rule, exc_info=exc)
            await Refusal(decision)(scope, receive, send)
