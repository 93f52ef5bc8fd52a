"""A decision: allowed, or denied with a rule id, a sentence and when it may change.

The same object feeds the HTTP answer, the CLI message and the web page. It says nothing of
HTTP: how each rule is answered there is the web's table (web/statuses.py), by rule id; the
command line's exit status is by rule id too (cli/main.py).

There is one way to say no: raise ``Denied`` with the decision (``require(decision)``, or
``Denied.by(rule, reason)`` for a denial made on the spot). What was named and is not there (a
project, a release, a user, ...) is a denial too, by the rule ``not-found``: ``not_found(reason)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

# The rule of a refusal because what was named does not exist (web: 404; CLI: exit status 4).
NOT_FOUND = "not-found"


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    rule: str
    reason: str
    until: datetime | None = None

    @classmethod
    def allow(cls, rule: str = "allowed", reason: str = "", until: datetime | None = None) -> Decision:
        return cls(True, rule, reason, until)

    @classmethod
    def deny(cls, rule: str, reason: str, *, until: datetime | None = None) -> Decision:
        return cls(False, rule, reason, until)

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

    @classmethod
    def by(cls, rule: str, reason: str, *, until: datetime | None = None) -> Denied:
        """The refusal of a rule decided on the spot: ``raise Denied.by("rule-id", "why not")``."""
        return cls(Decision.deny(rule, reason, until=until))


def require(decision: Decision) -> None:
    """Carry on if the decision allows; otherwise raise it as a refusal."""
    if not decision.allowed:
        raise Denied(decision)


def not_found(reason: str) -> Denied:
    """What was named is not there: ``raise not_found(f"no project named {name!r}")``."""
    return Denied.by(NOT_FOUND, reason)
