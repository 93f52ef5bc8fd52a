"""A decision: allowed, or denied with a rule id, a sentence and when it may change.

The same object feeds the HTTP error, the CLI message and (later) the web page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    rule: str
    reason: str
    until: datetime | None = None
    # HTTP status a web caller should use when this denial is rendered.
    status: int = 403

    @classmethod
    def allow(cls, rule: str = "allowed", reason: str = "", until: datetime | None = None) -> Decision:
        return cls(True, rule, reason, until)

    @classmethod
    def deny(cls, rule: str, reason: str, *, status: int = 403, until: datetime | None = None) -> Decision:
        return cls(False, rule, reason, until, status)

    def as_dict(self) -> dict[str, object]:
        return {
            "allowed": self.allowed,
            "rule": self.rule,
            "reason": self.reason,
            "until": self.until.isoformat() if self.until else None,
        }


class Denied(Exception):
    """Raised by services to carry a denial out of a transaction (which it rolls back)."""

    def __init__(self, decision: Decision) -> None:
        super().__init__(decision.reason)
        self.decision = decision


def require(decision: Decision) -> None:
    """Carry on if the decision allows; otherwise raise it as a refusal."""
    if not decision.allowed:
        raise Denied(decision)


def bad_request(rule: str, reason: str) -> Denied:
    return Denied(Decision.deny(rule, reason, status=400))


def forbidden(rule: str, reason: str) -> Denied:
    return Denied(Decision.deny(rule, reason, status=403))
