"""Account rules: the second-factor (2FA) rule, critical projects, token use.

Critical projects are public: a designation is a fact about a project, shown on its page, in
the JSON API and in the events, never a secret list. A project that becomes critical gives its
maintainers a grace period before the 2FA rule applies to them, and a sudden jump in downloads
is held for an admin instead of acted on, so a swarm of downloads cannot lock an author out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from moorage.domain.decisions import Decision
from moorage.domain.durations import describe, span

REQUIRE_2FA = ("none", "critical", "all")


@dataclass(frozen=True, slots=True)
class CriticalRule:
    """Which projects are critical: none, the top N% by 30-day downloads, or a fixed list."""

    kind: str = "top"  # "none" | "top" | "list"
    percent: float = 1.0
    names: frozenset[str] = frozenset()

    def describe(self) -> str:
        if self.kind == "none":
            return "none"
        if self.kind == "list":
            return "listed by the operator"
        return f"top {self.percent:g}% by 30-day downloads"


@dataclass(frozen=True, slots=True)
class AccountPolicy:
    require_2fa: str = "none"  # "none" | "critical" | "all"
    critical: CriticalRule = field(default_factory=CriticalRule)
    # A project that becomes critical: the 2FA rule waits this long for its maintainers.
    critical_grace: timedelta = span(14, "d")
    # Week-over-week growth beyond this factor is flagged for an admin, not acted on.
    download_jump: float = 20.0
    # A token unused this long stops working (None: tokens do not expire by disuse).
    token_unused_expiry: timedelta | None = None
    # Sensitive actions in the web pages want a second-factor check at most this old.
    fresh_factor: timedelta = span(15, "m")


def _when(instant: datetime) -> str:
    return f"{instant:%Y-%m-%d %H:%M} UTC"


@dataclass(frozen=True, slots=True)
class CriticalFacts:
    """A project's designation, if any: since when, and when its grace period ends."""

    since: datetime
    grace_until: datetime
    rule: str = ""  # why it was designated, as the rule described itself then


def two_factor_applies(policy: AccountPolicy, critical: CriticalFacts | None, now: datetime) -> bool:
    if policy.require_2fa == "all":
        return True
    if policy.require_2fa == "critical" and critical is not None:
        return now >= critical.grace_until
    return False


def check_two_factor(policy: AccountPolicy, project: str | None, critical: CriticalFacts | None,
                     account: str, has_factor: bool, now: datetime) -> Decision:
    """May this account manage this project (or, with project None, act at all) without a factor?"""
    if has_factor or not two_factor_applies(policy, critical, now):
        return Decision.allow()
    where = (f"{project} is a critical project (since {_when(critical.since)}; the grace period ended "
             f"{_when(critical.grace_until)}), and its maintainers" if critical is not None and project
             else "every account")
    return Decision.deny("two-factor-required",
                         f"{where} must use two-factor authentication: {account} has no second factor; enrol one "
                         "(TOTP app or security key) on the account page")


def check_upload_token(policy: AccountPolicy, project: str, critical: CriticalFacts | None,
                       token_with_factor: bool, now: datetime) -> Decision:
    """Uploads need a token made by an account that had a second factor when it made it."""
    if token_with_factor or not two_factor_applies(policy, critical, now):
        return Decision.allow()
    where = (f"{project} is a critical project (its grace period ended {_when(critical.grace_until)})"
             if critical is not None else "this index requires two-factor authentication of every account")
    return Decision.deny("two-factor-required",
                         f"{where}: uploads need an API token created by an account with a second factor; "
                         "enrol a factor on the account page, then create a new token")


def check_token_use(policy: AccountPolicy, created_at: datetime, last_used_at: datetime | None,
                    now: datetime) -> Decision:
    """A token unused for longer than the configured time no longer works."""
    if policy.token_unused_expiry is None:
        return Decision.allow()
    since = last_used_at or created_at
    expires = since + policy.token_unused_expiry
    if now < expires:
        return Decision.allow(until=expires)
    return Decision.deny("token-unused", f"this token was not used since {_when(since)} and expired on "
                         f"{_when(expires)} (tokens unused for {describe(policy.token_unused_expiry)} stop working); "
                         "create a new one")


def critical_threshold(policy: AccountPolicy, counts: dict[str, int]) -> set[str]:
    """The projects the rule designates, from 30-day downloads by project (normalized names).

    Top N%: the ceil(N% of projects with any download) most downloaded; ties at the boundary
    are all in. A fixed list is taken as it is."""
    rule = policy.critical
    if rule.kind == "none":
        return set()
    if rule.kind == "list":
        return set(rule.names)
    ranked = sorted(((n, p) for p, n in counts.items() if n > 0), reverse=True)
    if not ranked:
        return set()
    take = max(1, math.ceil(len(ranked) * rule.percent / 100))
    floor = ranked[take - 1][0]
    return {p for n, p in ranked if n >= floor}


def is_jump(policy: AccountPolicy, week: int, previous_week: int) -> bool:
    """Downloads grew more than the factor week over week (from a quiet week: from at least one)."""
    return week > policy.download_jump * max(previous_week, 1)
