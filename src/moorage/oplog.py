"""The operator's log: one structured line per refusal and per state change (an event), through
Python logging, on by default in `moorage serve` (docs/operations.md, "Logs").

Lines are ``key=value`` pairs (logfmt): values with spaces, quotes or ``=`` are quoted. They
name the rule, the project and the actor, never a secret: no token, no password, no payload
but an event's reason.

    refused rule=upload-window status=400 project=demo actor=alice method=POST path=/legacy/ reason="..."
    event serial=42 action=file-added project=demo subject=file:demo-1.0-py3-none-any.whl actor=alice
"""

from __future__ import annotations

import logging
import re
from typing import Any

EVENTS = logging.getLogger("moorage.events")
REFUSALS = logging.getLogger("moorage.refusals")

_BARE = re.compile(r"[^\s\"=\\]+\Z")
_MAX_VALUE = 500  # a reason can be long; a log line stays readable


def fields(**values: object) -> str:
    """``key=value ...`` in the given order; None values are left out."""
    out = []
    for key, value in values.items():
        if value is None:
            continue
        text = str(value)
        if len(text) > _MAX_VALUE:
            text = text[:_MAX_VALUE] + "..."
        if not _BARE.match(text):
            text = '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r") \
                + '"'
        out.append(f"{key}={text}")
    return " ".join(out)


def refused(rule: str, status: int, reason: str, *, project: str | None = None, actor: str | None = None,
            method: str | None = None, path: str | None = None, **more: object) -> None:
    """One refusal: what a client was told, and by which rule."""
    if REFUSALS.isEnabledFor(logging.INFO):
        REFUSALS.info("refused %s", fields(rule=rule, status=status, project=project, actor=actor, method=method,
                                           path=path, **more, reason=reason))


def event(serial: int, action: str, subject: str, project: str | None, actor: str,
          payload: dict[str, Any]) -> None:
    """One committed event (the payload stays in the events table; only its reason is shown)."""
    reason = payload.get("reason")
    EVENTS.info("event %s", fields(serial=serial, action=action, project=project, subject=subject, actor=actor,
                                   reason=reason if isinstance(reason, str) and reason else None))


def serve_logging(access_log: bool) -> dict[str, Any]:
    """The logging configuration of `moorage serve` (uvicorn applies it in every worker): the
    operator's lines on standard error, uvicorn's own warnings, and the access log only when
    asked for (``--access-log`` or ``[server] access_log = true``)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "moorage": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s",
                        "datefmt": "%Y-%m-%dT%H:%M:%S%z"},
            "access": {"()": "uvicorn.logging.AccessFormatter", "use_colors": False,
                       "fmt": '%(asctime)s INFO access %(client_addr)s "%(request_line)s" %(status_code)s',
                       "datefmt": "%Y-%m-%dT%H:%M:%S%z"},
        },
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "moorage", "stream": "ext://sys.stderr"},
            "access": {"class": "logging.StreamHandler", "formatter": "access", "stream": "ext://sys.stderr"},
        },
        "loggers": {
            "moorage": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
            "uvicorn": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
            "uvicorn.error": {"level": "WARNING"},
            "uvicorn.access": {"handlers": ["access"] if access_log else [],
                               "level": "INFO" if access_log else "WARNING", "propagate": False},
        },
    }
