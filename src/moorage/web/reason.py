"""Put a refusal's reason in the HTTP status line, as twine shows it to the user.

ASGI has no field for the reason phrase, and uvicorn writes the standard phrase from a
module-level table. We wrap that table so a response can name its own phrase through a
context variable set only while that response is being sent. If uvicorn's layout ever
changes, the standard phrase is used; the reason is always in the body as well.
"""

from __future__ import annotations

import contextvars
import http
import importlib
import re
from typing import Any

_reason: contextvars.ContextVar[str | None] = contextvars.ContextVar("moorage_reason", default=None)
_UNSAFE = re.compile(r"[^\x20-\x7e]")


def status_reason(reason: str) -> contextvars.Token[str | None]:
    return _reason.set(_UNSAFE.sub(" ", reason)[:300])


def reset(token: contextvars.Token[str | None]) -> None:
    _reason.reset(token)


class _StatusLines(dict[int, bytes]):
    def __missing__(self, status: int) -> bytes:
        return _line(status, _phrase(status))

    def __getitem__(self, status: int) -> bytes:
        reason = _reason.get()
        if reason:
            return _line(status, reason)
        return super().__getitem__(status)


class _Phrases(dict[int, bytes]):
    def __getitem__(self, status: int) -> bytes:
        reason = _reason.get()
        if reason:
            return reason.encode("latin-1")
        return super().__getitem__(status)


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def _line(status: int, phrase: str) -> bytes:
    return b"HTTP/1.1 %d %s\r\n" % (status, phrase.encode("latin-1"))


# uvicorn's module-level tables, by HTTP implementation: httptools' whole status lines, h11's phrases.
_TABLES: tuple[tuple[str, str, type[dict[int, bytes]]], ...] = (
    ("httptools_impl", "STATUS_LINE", _StatusLines),
    ("h11_impl", "STATUS_PHRASES", _Phrases),
)


def install() -> None:
    for module_name, attribute, wrapper in _TABLES:
        try:
            module = importlib.import_module(f"uvicorn.protocols.http.{module_name}")
        except ImportError:
            continue
        table: Any = getattr(module, attribute)
        if isinstance(table, dict) and not isinstance(table, wrapper):
            setattr(module, attribute, wrapper(table))
