"""Conditional and range requests on immutable files (RFC 9110 sections 13 and 14).

A file's ETag is its sha256 and never changes, so ``If-None-Match`` with it answers 304; a
``Range`` this server does not understand (another unit, bad syntax, a last byte before the
first) is ignored and the whole file sent with 200, as RFC 9110 allows a server to do.
"""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from starlette.datastructures import Headers
from starlette.responses import FileResponse, Response
from starlette.types import Receive, Scope, Send

_SPEC = re.compile(r"^(\d*)-(\d*)$")


def byte_ranges(header: str | None) -> list[tuple[int | None, int | None]] | None:
    """The (first, last) byte-range-specs of a Range header, or None when it is to be ignored:
    absent, another unit, not the RFC 9110 grammar, or a range whose last byte is before its first.
    A suffix range ``-N`` is (None, N)."""
    if not header:
        return None
    unit, sep, specs = header.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    ranges: list[tuple[int | None, int | None]] = []
    for part in specs.split(","):
        match = _SPEC.match(part.strip())
        if match is None:
            return None
        first, last = (int(g) if g else None for g in match.groups())
        if first is None and last is None:
            return None
        if first is not None and last is not None and last < first:
            return None
        ranges.append((first, last))
    return ranges or None


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """If-None-Match uses the weak comparison: ``W/"x"`` matches ``"x"``; ``*`` matches any."""
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == etag:
            return True
    return False


def not_modified(etag: str, cache_control: str) -> Response:
    return Response(status_code=304, headers={"etag": etag, "cache-control": cache_control})


class FileDownload(FileResponse):
    """Starlette's FileResponse (HEAD, one or several ranges, If-Range), except that a Range
    header it would answer with 400 is ignored, and that a file that is not there is answered
    by ``on_missing`` (web/files.py: 503 naming the file) instead of raising."""

    def __init__(self, *args: Any, on_missing: Callable[[], Awaitable[Response]] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_missing = on_missing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        wanted = Headers(scope=scope).get("range")
        if wanted is not None and byte_ranges(wanted) is None:
            scope = dict(scope)
            scope["headers"] = [(k, v) for k, v in scope["headers"] if k.lower() != b"range"]
        if self.stat_result is None and self.on_missing is not None:
            try:  # the stat FileResponse would make, made here (it is not made twice)
                self.stat_result = await anyio.to_thread.run_sync(os.stat, self.path)
            except FileNotFoundError:
                await (await self.on_missing())(scope, receive, send)
                return
            self.set_stat_headers(self.stat_result)
        await super().__call__(scope, receive, send)
