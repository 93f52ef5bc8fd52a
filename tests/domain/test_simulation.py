"""The replay behind `moorage policy simulate`, on small histories whose answers are worked out
by hand in each test."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from moorage.domain.filenames import version_of
from moorage.domain.lifecycle import LifecyclePolicy
from moorage.domain.simulation import (
    ProjectHistory,
    Simulation,
    SimulationResult,
    UploadRecord,
    gap_summary,
)

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
DAY, HOUR = 86400.0, 3600.0


def at(days: float = 0, hours: float = 0) -> datetime:
    return T0 + timedelta(days=days, hours=hours)


def rec(filename: str, when: datetime | None) -> UploadRecord:
    return UploadRecord(filename, when)


def run(*histories: ProjectHistory, policy: LifecyclePolicy | None = None, now: datetime | None = None,
        top: int = 10) -> SimulationResult:
    return Simulation(policy or LifecyclePolicy(), now or at(days=100), top=top).replay_all(histories)


def test_a_file_13_days_23_hours_after_the_first_is_accepted_and_one_at_14_days_1_hour_refused() -> None:
    history = ProjectHistory("demo", [
        rec("demo-1.0.tar.gz", at()),
        rec("demo-1.0-py3-none-any.whl", at(days=13, hours=23)),
        rec("demo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", at(days=14, hours=1)),
    ])
    result = run(history, policy=LifecyclePolicy(upload_window=timedelta(days=14)))
    assert (result.projects, result.releases, result.files) == (1, 1, 3)
    assert (result.refused_projects, result.refused_releases, result.refused_files) == (1, 1, 1)
    [refusal] = result.refused
    assert (refusal.project, refusal.version, refusal.filename, refusal.rule) == (
        "demo", "1.0", "demo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", "upload-window")
    assert refusal.delay_seconds == 14 * DAY + HOUR  # after the release's first file
    assert refusal.late_seconds == HOUR  # after the window closed at T0 + 14 d
    # The sentence the server would answer with.
    assert refusal.reason == ("release 1.0 of demo stopped accepting new files on 2026-01-19 12:00 UTC "
                              "(a release accepts new files for 14 days after its first file); an owner may reopen it")
    # The spread is what happened, refused file included: 14 d 1 h.
    assert list(result.gaps) == [14 * DAY + HOUR]


def test_the_window_boundary_itself_is_closed() -> None:
    # check_upload_window accepts while now < opened + window: exactly 14 d is too late.
    history = ProjectHistory("edge", [rec("edge-1.0.tar.gz", at()), rec("edge-1.0-py3-none-any.whl", at(days=14))])
    result = run(history)
    assert [(r.filename, r.late_seconds) for r in result.refused] == [("edge-1.0-py3-none-any.whl", 0.0)]


def test_a_newer_release_between_two_uploads_closes_the_older_one_only_with_close_on_newer_release() -> None:
    history = ProjectHistory("pkg", [
        rec("pkg-1.0.tar.gz", at()),
        rec("pkg-1.0-py3-none-any.whl", at(hours=12)),  # before 1.1: accepted either way
        rec("pkg-1.1.tar.gz", at(days=1)),
        rec("pkg-1.0-py2-none-any.whl", at(days=2)),  # after 1.1 had a file
        rec("pkg-1.1-py3-none-any.whl", at(days=3)),
    ])
    plain = run(history, policy=LifecyclePolicy(close_on_newer_release=False))
    assert plain.refused == [] and plain.releases == 2
    closing = run(history, policy=LifecyclePolicy(close_on_newer_release=True))
    assert [(r.version, r.filename, r.delay_seconds, r.late_seconds) for r in closing.refused] == [
        ("1.0", "pkg-1.0-py2-none-any.whl", 2 * DAY, DAY)]
    assert "a newer release has files" in closing.refused[0].reason
    assert (closing.refused_releases, closing.refused_projects) == (1, 1)


def test_pre_releases_are_newer_by_version_order_and_a_backport_opened_after_a_newer_release_takes_one_file() -> None:
    history = ProjectHistory("app", [
        rec("app-1.1.tar.gz", at()),
        rec("app-2.0rc1.tar.gz", at(days=1)),  # a pre-release is newer than 1.1 by version order
        rec("app-1.1-py3-none-any.whl", at(days=2)),  # refused: 2.0rc1 had a file
        rec("app-2.0rc1-py3-none-any.whl", at(days=2, hours=1)),  # accepted: nothing newer
        rec("app-1.0.1.tar.gz", at(days=3)),  # a backport opens its own release ...
        rec("app-1.0.1-py3-none-any.whl", at(days=3, hours=1)),  # ... which 1.1 (newer, earlier) closed at once
        rec("app-2.0.tar.gz", at(days=5)),
        rec("app-2.0rc1-py2-none-any.whl", at(days=6)),  # refused: 2.0 is newer than 2.0rc1
    ])
    result = run(history, policy=LifecyclePolicy(close_on_newer_release=True))
    assert [(r.version, r.filename, r.late_seconds) for r in result.refused] == [
        ("1.1", "app-1.1-py3-none-any.whl", DAY),
        ("1.0.1", "app-1.0.1-py3-none-any.whl", 3 * DAY + HOUR),  # 1.1 opened at T0: closed since then
        ("2.0rc1", "app-2.0rc1-py2-none-any.whl", DAY),
    ]
    assert (result.releases, result.refused_releases) == (4, 3)
    assert run(history).refused == []  # the 14-day window alone refuses nothing here


def test_files_whose_version_or_time_cannot_be_read_are_counted_and_listed_not_dropped() -> None:
    history = ProjectHistory("old", [
        rec("old-1.0.tar.gz", at()),
        rec("old-1.0-py2.7.egg", at(hours=1)),
        rec("old-1.0.win32.exe", at(hours=2)),
        rec("old-not.a.version.tar.gz", at(hours=3)),
        rec("old-1.0.zip", at(hours=4)),  # a .zip sdist is read
        rec("old-1.0-py3-none-any.whl", None),  # no upload-time
    ])
    result = run(history)
    assert result.files == 6 and result.unparsed_files == 4
    assert {u.filename: u.reason.split(":")[0] for u in result.unparsed} == {
        "old-1.0-py2.7.egg": "not a wheel, .tar.gz or .zip source distribution",
        "old-1.0.win32.exe": "not a wheel, .tar.gz or .zip source distribution",
        "old-not.a.version.tar.gz": "no version can be read from the filename",
        "old-1.0-py3-none-any.whl": "no upload-time",
    }
    assert result.releases == 1 and list(result.gaps) == [4 * HOUR]


def test_input_order_does_not_matter_files_are_replayed_in_upload_time_order() -> None:
    files = [rec("z-1.0.tar.gz", at()), rec("z-1.1.tar.gz", at(days=1)), rec("z-1.0-py3-none-any.whl", at(days=2))]
    policy = LifecyclePolicy(close_on_newer_release=True)
    forward = run(ProjectHistory("z", files), policy=policy)
    backward = run(ProjectHistory("z", list(reversed(files))), policy=policy)
    assert [r.filename for r in forward.refused] == [r.filename for r in backward.refused] == [
        "z-1.0-py3-none-any.whl"]


def test_files_deletable_at_an_instant_by_rule() -> None:
    history = ProjectHistory("d", [
        rec("d-1.0.tar.gz", at()),  # 5 days before `now`: outside 72 h
        rec("d-1.1.tar.gz", at(days=3)),  # 47 h before: inside
        rec("d-1.1-py3-none-any.whl", at(days=4, hours=23)),  # 1 h before: inside
        rec("d-2.0a1.tar.gz", at(days=1)),  # a pre-release: any time
        rec("d-1.2.tar.gz", at(days=6)),  # after `now`: did not exist yet
    ])
    now = at(days=5)
    result = run(history, policy=LifecyclePolicy(deletion_window=timedelta(hours=72)), now=now)
    assert result.deletable == {"deletion-window": 2, "pre-release": 1}
    strict = run(history, policy=LifecyclePolicy(deletion_window=timedelta(hours=72), prereleases_deletable=False),
                 now=now)
    assert strict.deletable == {"deletion-window": 2}


def test_refused_files_are_not_deletable_they_never_existed() -> None:
    history = ProjectHistory("r", [rec("r-1.0.tar.gz", at()), rec("r-1.0-py3-none-any.whl", at(days=20))])
    result = run(history, now=at(days=20, hours=1))
    assert result.refused_files == 1 and result.deletable == {}


def test_gap_distribution_and_the_longest_open_releases() -> None:
    # Five releases open for 0 s, 1 h, 2 h, 1 d and 30 d (30 d: the last file is refused but happened).
    spans = {"1.0": 0.0, "1.1": HOUR, "1.2": 2 * HOUR, "1.3": DAY, "1.4": 30 * DAY}
    files = []
    for n, (version, span) in enumerate(spans.items()):
        start = at(days=40 * n)
        files.append(rec(f"g-{version}.tar.gz", start))
        if span:
            files.append(rec(f"g-{version}-py3-none-any.whl", start + timedelta(seconds=span)))
    result = run(ProjectHistory("g", files), top=2)
    # Sorted: 0, 1h, 2h, 1d, 30d. Median: the middle one; nearest rank p90 = ceil(4.5) = 5th, p99 = 5th.
    assert result.gap_summary() == {"median": 2 * HOUR, "p90": 30 * DAY, "p99": 30 * DAY, "max": 30 * DAY}
    assert [(g.version, g.files, g.gap_seconds) for g in result.top_gaps] == [("1.4", 2, 30 * DAY), ("1.3", 2, DAY)]


def test_gap_summary_of_an_even_count_and_of_nothing() -> None:
    assert gap_summary([4.0, 1.0, 3.0, 2.0]) == {"median": 2.5, "p90": 4.0, "p99": 4.0, "max": 4.0}
    assert gap_summary(list(map(float, range(1, 101))))["p90"] == 90.0
    assert gap_summary([]) == {"median": None, "p90": None, "p99": None, "max": None}


def test_counts_add_up_across_projects() -> None:
    a = ProjectHistory("a", [rec("a-1.0.tar.gz", at()), rec("a-1.0-py3-none-any.whl", at(days=15))])
    b = ProjectHistory("b", [rec("b-1.0.tar.gz", at()), rec("b-2.0.tar.gz", at(days=1))])
    c = ProjectHistory("c", [rec("c-1.0.tar.gz", at()), rec("c-1.0-py3-none-any.whl", at(days=16)),
                             rec("c-1.0-py2-none-any.whl", at(days=17))])
    result = run(a, b, c)
    assert (result.projects, result.releases, result.files) == (3, 4, 7)
    assert (result.refused_projects, result.refused_releases, result.refused_files) == (2, 2, 3)


@pytest.mark.parametrize(("filename", "version"), [
    ("Foo_Bar-1.0.post1-py3-none-any.whl", "1.0.post1"),
    ("foo-bar-2.0b3.tar.gz", "2.0b3"),
    ("foo-1!2.0-1-cp311-cp311-linux_x86_64.whl", "1!2.0"),
])
def test_versions_come_from_the_filename_as_packaging_reads_it(filename: str, version: str) -> None:
    assert str(version_of(filename)) == version


def test_refusals_can_be_taken_as_they_happen_and_the_latest_are_kept_for_the_report() -> None:
    history = ProjectHistory("s", [rec("s-1.0.tar.gz", at())] + [
        rec(f"s-1.0-{n}-py3-none-any.whl", at(days=14 + n)) for n in (3, 1, 2, 5, 4)])
    taken: list[str] = []
    skipped: list[str] = []
    simulation = Simulation(LifecyclePolicy(), at(days=100), top=2, on_refused=lambda r: taken.append(r.filename),
                            on_unparsed=lambda u: skipped.append(u.filename))
    result = simulation.replay_all([history, ProjectHistory("t", [rec("t-1.0-py2.7.egg", at())])])
    assert taken == [f"s-1.0-{n}-py3-none-any.whl" for n in (1, 2, 3, 4, 5)]  # in upload-time order
    assert skipped == ["t-1.0-py2.7.egg"]
    assert result.refused == [] and result.unparsed == []  # handed over, not kept
    assert (result.refused_files, result.unparsed_files) == (5, 1)
    assert [r.filename for r in result.latest_refused] == ["s-1.0-5-py3-none-any.whl", "s-1.0-4-py3-none-any.whl"]
