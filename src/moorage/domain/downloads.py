"""Download counting rules: what counts as a download, who is a mirror, the dedupe window,
and the sums shown on pages and in the JSON API. Pure: time is passed in."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

Kind = Literal["client", "mirror"]
KINDS: tuple[Kind, Kind] = ("client", "mirror")

# The last day counts today only; the week and the month end today too (UTC days).
DAY_SPANS = {"last_day": 1, "last_week": 7, "last_month": 30}
LONGEST_SPAN = max(DAY_SPANS.values())

_REDIRECTS = frozenset({301, 302, 303, 307, 308})


def classify(user_agent: str | None, mirror_agents: Sequence[str]) -> Kind:
    """'mirror' when the user agent contains one of the (lower-case) substrings, else 'client'."""
    if not user_agent:
        return "client"
    agent = user_agent.lower()
    for marker in mirror_agents:
        if marker in agent:
            return "mirror"
    return "client"


def range_starts_at_zero(header: str | None) -> bool:
    """True when a Range header is absent or its first range starts at byte 0.

    A client resuming a download asks for a later start: that is not a new download."""
    if header is None:
        return True
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes":
        return True  # a unit the server ignores: the whole file is sent
    first = spec.split(",", 1)[0].strip()
    start, dash, _end = first.partition("-")
    if not dash:
        return True  # malformed: ignored by the server, the whole file is sent
    start = start.strip()
    if not start:
        return False  # "-N": the last N bytes
    return start.isdigit() and int(start) == 0


def counts_as_download(method: str, status: int, request_range: str | None, content_range: str | None) -> bool:
    """Whether a response to a file request is a download.

    GET only (HEAD never); 200 always; 206 when the bytes sent start at 0 (the response's
    Content-Range, or for a multipart answer the first range asked for); a redirect to the
    bytes (an S3 presigned URL) when the range the client will ask the bucket for starts at 0.
    304, 404, 416 and every other status do not count."""
    if method != "GET":
        return False
    if status == 200:
        return True
    if status == 206:
        if content_range is not None:
            return content_range.strip().lower().startswith("bytes 0-")
        return range_starts_at_zero(request_range)
    if status in _REDIRECTS:
        return range_starts_at_zero(request_range)
    return False


class DedupeWindow:
    """One count per key (project, kind, client address) within ``window``.

    The first download counts and opens the window; the same key counts again only once
    ``window`` has passed since that counted download. Entries are kept in the order they
    were counted (an OrderedDict: taking the oldest is O(1), where a plain dict rescans the
    slots its earlier deletions left), so dropping the expired ones costs only what is
    dropped. ``max_entries``
    bounds the memory whatever the traffic: past it the oldest entries go first (their
    next download counts again, erring towards counting). Not thread-safe: callers lock.
    """

    __slots__ = ("window", "max_entries", "_seen")

    def __init__(self, window: timedelta, max_entries: int = 200_000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.window = window
        self.max_entries = max_entries
        self._seen: OrderedDict[Hashable, datetime] = OrderedDict()

    def admit(self, key: Hashable, now: datetime) -> bool:
        """True if a download under ``key`` at ``now`` counts (and remember it)."""
        if not self.window:
            return True
        seen = self._seen
        last = seen.get(key)
        if last is not None:
            if now - last < self.window and now >= last:
                return False
            seen.move_to_end(key)  # counted again: it becomes the newest
        seen[key] = now
        if len(seen) > self.max_entries:
            seen.popitem(last=False)
        return True

    def prune(self, now: datetime) -> int:
        """Drop the entries whose window has passed; returns how many were dropped."""
        seen = self._seen
        dropped = 0
        while seen:
            oldest = next(iter(seen))
            if now - seen[oldest] < self.window:
                break  # the rest were counted later
            seen.popitem(last=False)
            dropped += 1
        return dropped

    def __len__(self) -> int:
        return len(self._seen)


@dataclass(frozen=True, slots=True)
class DownloadSums:
    last_day: int = 0
    last_week: int = 0
    last_month: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"last_day": self.last_day, "last_week": self.last_week, "last_month": self.last_month}


def earliest_day(today: date) -> date:
    """The first day the longest span (the month) covers."""
    return today - timedelta(days=LONGEST_SPAN - 1)


def sums(rows: Iterable[tuple[date, str, int]], today: date) -> dict[Kind, DownloadSums]:
    """Per kind, the downloads of the last day (today), 7 days and 30 days, each ending today.

    Rows are (day, kind, count); days after today (a clock moved back) and unknown kinds are
    left out."""
    totals: dict[str, list[int]] = {kind: [0, 0, 0] for kind in KINDS}
    spans = (DAY_SPANS["last_day"], DAY_SPANS["last_week"], DAY_SPANS["last_month"])
    for day, kind, count in rows:
        if kind not in totals:
            continue
        age = (today - day).days
        if age < 0:
            continue
        for i, span in enumerate(spans):
            if age < span:
                totals[kind][i] += count
    return {kind: DownloadSums(*totals[kind]) for kind in KINDS}


def grace_wording(grace_until: datetime, now: datetime) -> Literal["from", "since"]:
    """How the critical notice introduces the 2FA date: "from" while it is ahead, then "since"."""
    return "from" if grace_until > now else "since"
