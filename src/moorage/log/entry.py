"""The log entry: a canonical, versioned serialization of one event (see docs/log.md).

Canonical JSON: UTF-8, keys sorted, no insignificant whitespace, so the same event always
gives the same bytes and therefore the same leaf hash.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

ENTRY_VERSION = 1


def _z(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def encode_entry(index: int, serial: int, time: datetime, actor: str, action: str, subject: str,
                 project: str | None, payload: dict[str, Any]) -> bytes:
    """The entry bytes of an event. The fields a verifier checks most often (version,
    filename, sha256, size, upload-time, reason) are lifted to the top level when present."""
    doc: dict[str, Any] = {
        "v": ENTRY_VERSION,
        "index": index,
        "serial": serial,
        "time": _z(time),
        "action": action,
        "actor": actor,
        "subject": subject,
        "project": project,
        "payload": payload,
    }
    for key in ("version", "filename", "sha256", "size", "upload-time", "reason"):
        if key in payload:
            doc[key] = payload[key]
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def decode_entry(data: bytes) -> dict[str, Any]:
    doc = json.loads(data.decode("utf-8"))
    if not isinstance(doc, dict) or doc.get("v") != ENTRY_VERSION:
        raise ValueError("not a version 1 log entry")
    return doc
