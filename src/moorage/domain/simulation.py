"""Replay an upload history through the lifecycle rules: what a proposed policy would have refused.

The upload window depends only on a project's own releases, so a history is replayed one
project at a time, each project's files in upload-time order; what is kept across projects
is a few numbers per release. Memory therefore grows with the number of releases (and with
the largest single project), not with the number of files.

Every decision comes from the same functions the server calls (`check_upload_window`,
`may_delete_file`), so a simulated refusal carries the rule id and sentence a real one would.
"""

from __future__ import annotations

import heapq
import math
from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from packaging.version import Version

from moorage.domain.filenames import version_of
from moorage.domain.lifecycle import (
    Actor,
    FileFacts,
    LifecyclePolicy,
    ReleaseFacts,
    check_upload_window,
    may_delete_file,
    upload_window_closes,
)


@dataclass(frozen=True, slots=True)
class UploadRecord:
    """One file of a history: its name and when it was uploaded (PEP 700 ``upload-time``)."""

    filename: str
    upload_time: datetime | None


@dataclass(frozen=True, slots=True)
class ProjectHistory:
    name: str
    files: list[UploadRecord]


@dataclass(frozen=True, slots=True)
class Refusal:
    project: str
    version: str
    filename: str
    rule: str
    reason: str
    delay_seconds: float  # after the release's first file
    late_seconds: float  # after the window closed


@dataclass(frozen=True, slots=True)
class Unparsed:
    project: str
    filename: str
    reason: str


@dataclass(frozen=True, slots=True)
class ReleaseGap:
    project: str
    version: str
    files: int
    gap_seconds: float  # last upload - first upload, as it happened


@dataclass
class SimulationResult:
    policy: LifecyclePolicy
    at: datetime
    projects: int = 0
    releases: int = 0
    files: int = 0
    refused_releases: int = 0
    refused_projects: int = 0
    refused_files: int = 0
    unparsed_files: int = 0
    # Every refusal and unreadable file, unless the caller takes them as they come (see Simulation).
    refused: list[Refusal] = field(default_factory=list)
    unparsed: list[Unparsed] = field(default_factory=list)
    gaps: array[float] = field(default_factory=lambda: array("d"))  # one per release: 8 bytes each
    top_gaps: list[ReleaseGap] = field(default_factory=list)
    latest_refused: list[Refusal] = field(default_factory=list)  # the `top` refused latest after their first file
    deletable: dict[str, int] = field(default_factory=dict)  # rule id -> files deletable at `at`

    def gap_summary(self) -> dict[str, float | None]:
        return gap_summary(self.gaps)


def percentile(ordered: list[float], p: float) -> float:
    """Nearest rank: the smallest value with at least p% of the values at or below it."""
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def gap_summary(gaps: Sequence[float]) -> dict[str, float | None]:
    if not gaps:
        return {"median": None, "p90": None, "p99": None, "max": None}
    ordered = sorted(gaps)
    n = len(ordered)
    middle = n // 2
    median = ordered[middle] if n % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    return {"median": median, "p90": percentile(ordered, 90), "p99": percentile(ordered, 99), "max": ordered[-1]}


# The simulated uploader owns the project: deletion is then limited only by the window rules.
_OWNER = Actor("owner", role="owner")


class _Release:
    __slots__ = ("version", "opened_at", "last_at", "files", "newer_release_at", "refused")

    def __init__(self, version: Version, opened_at: datetime) -> None:
        self.version = version
        self.opened_at = opened_at
        self.last_at = opened_at
        self.files = 0  # as uploaded, refused ones included
        self.newer_release_at: datetime | None = None
        self.refused = False


class Simulation:
    """Feed it project histories with `replay`, then read `result`.

    Refusals and unreadable files are kept in the result's lists, or, to keep memory bounded
    by releases on a large history, handed to `on_refused` / `on_unparsed` as they happen."""

    def __init__(self, policy: LifecyclePolicy, at: datetime, top: int = 10,
                 on_refused: Callable[[Refusal], None] | None = None,
                 on_unparsed: Callable[[Unparsed], None] | None = None) -> None:
        self.result = SimulationResult(policy, at)
        self._top = top
        self._heap: list[tuple[float, str, str, int]] = []
        self._latest: list[tuple[float, int, Refusal]] = []
        self._on_refused = on_refused or self.result.refused.append
        self._on_unparsed = on_unparsed or self.result.unparsed.append

    def _refuse(self, refusal: Refusal) -> None:
        self.result.refused_files += 1
        self._on_refused(refusal)
        entry = (refusal.delay_seconds, -self.result.refused_files, refusal)  # ties: the earlier one first
        if len(self._latest) < self._top:
            heapq.heappush(self._latest, entry)
        elif self._top and entry[:2] > self._latest[0][:2]:
            heapq.heapreplace(self._latest, entry)

    def _unreadable(self, unparsed: Unparsed) -> None:
        self.result.unparsed_files += 1
        self._on_unparsed(unparsed)

    def replay_all(self, histories: Iterable[ProjectHistory]) -> SimulationResult:
        for history in histories:
            self.replay(history)
        return self.finish()

    def replay(self, history: ProjectHistory) -> None:
        result, policy, at = self.result, self.result.policy, self.result.at
        project = history.name
        result.projects += 1
        result.files += len(history.files)
        dated: list[tuple[datetime, str, Version]] = []
        versions: dict[str, Version] = {}
        for record in history.files:
            if record.upload_time is None:
                self._unreadable(Unparsed(project, record.filename, "no upload-time"))
                continue
            try:
                version = version_of(record.filename)
            except ValueError as exc:
                self._unreadable(Unparsed(project, record.filename, str(exc)))
                continue
            # One Version object per release, so releases are keyed by identity-equal values.
            version = versions.setdefault(str(version), version)
            dated.append((record.upload_time, record.filename, version))
        dated.sort(key=lambda d: (d[0], d[1]))

        releases: dict[Version, _Release] = {}
        # The server's newer_release_at is the earliest first upload among greater versions. In
        # time order that is the first "record high" (a version above all before it) greater
        # than the release, and only the current highest release has none yet.
        highs: list[Version] = []
        high_times: list[datetime] = []
        refused_here = False
        for upload_time, filename, version in dated:
            release = releases.get(version)
            if release is None:
                release = releases[version] = _Release(version, upload_time)
                above = bisect_right(highs, version)
                if above < len(highs):
                    release.newer_release_at = high_times[above]
                else:
                    if highs:
                        releases[highs[-1]].newer_release_at = upload_time
                    highs.append(version)
                    high_times.append(upload_time)
            else:
                release.last_at = upload_time
                facts = ReleaseFacts(project, version, release.opened_at, None, release.newer_release_at)
                decision = check_upload_window(facts, policy, upload_time)
                if not decision.allowed:
                    closes = upload_window_closes(facts, policy)
                    self._refuse(Refusal(
                        project, str(version), filename, decision.rule or "upload-window", decision.reason,
                        (upload_time - release.opened_at).total_seconds(), (upload_time - closes).total_seconds()))
                    release.files += 1
                    release.refused = refused_here = True
                    continue
            release.files += 1
            if upload_time <= at:
                deletion = may_delete_file(_OWNER, project, None, FileFacts(filename, version, upload_time),
                                           policy, at)
                if deletion.allowed:
                    rule = deletion.rule or "allowed"
                    result.deletable[rule] = result.deletable.get(rule, 0) + 1

        for release in releases.values():
            gap = (release.last_at - release.opened_at).total_seconds()
            result.gaps.append(gap)
            result.refused_releases += release.refused
            entry = (gap, project, str(release.version), release.files)
            if len(self._heap) < self._top:
                heapq.heappush(self._heap, entry)
            elif self._top and entry > self._heap[0]:
                heapq.heapreplace(self._heap, entry)
        result.releases += len(releases)
        result.refused_projects += refused_here

    def finish(self) -> SimulationResult:
        self.result.top_gaps = [ReleaseGap(project, version, files, gap)
                                for gap, project, version, files in sorted(self._heap, reverse=True)]
        self.result.latest_refused = [r for _d, _n, r in sorted(self._latest, key=lambda e: e[:2], reverse=True)]
        return self.result
