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
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from packaging.utils import InvalidSdistFilename, InvalidWheelFilename, parse_sdist_filename, parse_wheel_filename
from packaging.version import InvalidVersion, Version

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
    refused: list[Refusal] = field(default_factory=list)
    unparsed: list[Unparsed] = field(default_factory=list)
    gaps: list[float] = field(default_factory=list)  # one per release, for the distribution
    top_gaps: list[ReleaseGap] = field(default_factory=list)
    deletable: dict[str, int] = field(default_factory=dict)  # rule id -> files deletable at `at`

    @property
    def refused_files(self) -> int:
        return len(self.refused)

    @property
    def unparsed_files(self) -> int:
        return len(self.unparsed)

    def gap_summary(self) -> dict[str, float | None]:
        return gap_summary(self.gaps)


def percentile(ordered: list[float], p: float) -> float:
    """Nearest rank: the smallest value with at least p% of the values at or below it."""
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def gap_summary(gaps: list[float]) -> dict[str, float | None]:
    if not gaps:
        return {"median": None, "p90": None, "p99": None, "max": None}
    ordered = sorted(gaps)
    n = len(ordered)
    middle = n // 2
    median = ordered[middle] if n % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    return {"median": median, "p90": percentile(ordered, 90), "p99": percentile(ordered, 99), "max": ordered[-1]}


def version_of(filename: str) -> Version:
    """The version a distribution filename names; ValueError with the reason when it names none."""
    try:
        if filename.endswith(".whl"):
            return parse_wheel_filename(filename)[1]
        if filename.endswith((".tar.gz", ".zip")):
            return parse_sdist_filename(filename)[1]
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion) as exc:
        raise ValueError(f"no version can be read from the filename: {exc}") from None
    raise ValueError("not a wheel, .tar.gz or .zip source distribution")


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
    """Feed it project histories with `replay`, then read `result`."""

    def __init__(self, policy: LifecyclePolicy, at: datetime, top: int = 10) -> None:
        self.result = SimulationResult(policy, at)
        self._top = top
        self._heap: list[tuple[float, str, str, int]] = []

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
                result.unparsed.append(Unparsed(project, record.filename, "no upload-time"))
                continue
            try:
                version = version_of(record.filename)
            except ValueError as exc:
                result.unparsed.append(Unparsed(project, record.filename, str(exc)))
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
                    result.refused.append(Refusal(
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
        return self.result
