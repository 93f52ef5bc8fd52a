"""The comparison of pins with project pages, on hand-made PEP 691 dicts: every kind, the
severity order, --fail-on."""

from __future__ import annotations

from typing import Any

import pytest

from moorage.audit.findings import (
    ORDER,
    SEVERITY,
    Finding,
    Kind,
    Page,
    Served,
    audit,
    audit_project,
    checked_files,
    fails,
    page_key,
    parse_fail_on,
    probe_urls,
    sort_findings,
)
from moorage.audit.lockfiles import LockedFile, LockedPackage

INDEX = "http://127.0.0.1:8080/simple/"
PAGE_URL = INDEX + "demo/"
H1, H2, H3, H4 = ("1" * 64), ("2" * 64), ("3" * 64), ("4" * 64)


def file(filename: str, sha256: str, size: int = 100, yanked: bool | str = False) -> dict[str, Any]:
    return {"filename": filename, "url": f"../../files/{sha256}/{filename}", "hashes": {"sha256": sha256},
            "size": size, "yanked": yanked, "requires-python": None, "upload-time": "2026-01-01T00:00:00.000000Z"}


def page(*files: dict[str, Any], versions: list[str] | None = None, status: str = "active",
         reason: str | None = None, extra: dict[str, str] | None = None) -> Page:
    project_status: dict[str, str] = {"status": status}
    if reason:
        project_status["reason"] = reason
    doc = {"meta": {"api-version": "1.4"}, "name": "demo", "project-status": project_status,
           "versions": versions if versions is not None else ["1.0"], "files": list(files), **(extra or {})}
    return Page(PAGE_URL, doc)


WHEEL = file("demo-1.0-py3-none-any.whl", H1, 100)
SDIST = file("demo-1.0.tar.gz", H2, 200)


def pinned(*files: LockedFile, version: str = "1.0", name: str = "demo") -> LockedPackage:
    return LockedPackage(name, version, INDEX, list(files), 3)


def locked(filename: str | None, sha256: str | None, size: int | None = None, line: int = 5) -> LockedFile:
    return LockedFile(filename, sha256, size, None, line)


REMOVAL = {"_removal-at": "2026-12-22T09:14:00.000000Z"}
LOCK_WHEEL = locked("demo-1.0-py3-none-any.whl", H1, 100)
LOCK_SDIST = locked("demo-1.0.tar.gz", H2, 200, line=6)


def kinds(findings: list[Finding]) -> list[tuple[str | None, Kind]]:
    return [(f.filename, f.kind) for f in findings]


# -- order, severity, threshold ---------------------------------------------------------------
def test_the_kinds_most_severe_first_with_their_severity() -> None:
    assert [(k.value, SEVERITY[k]) for k in ORDER] == [
        ("hash-mismatch", "critical"), ("missing", "high"), ("quarantined", "high"), ("pending-removal", "medium"),
        ("yanked", "medium"), ("archived", "low"), ("deprecated", "low"), ("newer-release", "info")]


def test_findings_sort_most_severe_first_then_by_project() -> None:
    found = [Finding("b", "1", None, k, "") for k in reversed(ORDER)] + [Finding("a", "1", "f", Kind.YANKED, "")]
    ordered = sort_findings(found)
    assert [f.kind for f in ordered] == [Kind.HASH_MISMATCH, Kind.MISSING, Kind.QUARANTINED, Kind.PENDING_REMOVAL,
                                         Kind.YANKED, Kind.YANKED, Kind.ARCHIVED, Kind.DEPRECATED, Kind.NEWER_RELEASE]
    assert [f.project for f in ordered if f.kind is Kind.YANKED] == ["a", "b"]


@pytest.mark.parametrize(("present", "fail_on", "fails_"), [
    (Kind.YANKED, "yanked", True),
    (Kind.HASH_MISMATCH, "yanked", True),  # more severe than the threshold
    (Kind.PENDING_REMOVAL, "yanked", True),  # listed before yanked: more severe
    (Kind.ARCHIVED, "yanked", False),
    (Kind.NEWER_RELEASE, "yanked", False),
    (Kind.YANKED, "hash-mismatch", False),
    (Kind.HASH_MISMATCH, "hash-mismatch", True),
    (Kind.NEWER_RELEASE, "newer-release", True),
    (Kind.HASH_MISMATCH, "none", False),
])
def test_fail_on_is_a_threshold(present: Kind, fail_on: str, fails_: bool) -> None:
    assert fails([Finding("p", "1", None, present, "")], parse_fail_on(fail_on)) is fails_


def test_no_findings_never_fail_and_a_bad_threshold_is_refused() -> None:
    assert not fails([], Kind.NEWER_RELEASE)
    with pytest.raises(ValueError, match="expected one of hash-mismatch, missing, .*, newer-release, none; got 'x'"):
        parse_fail_on("x")


def test_a_finding_as_json() -> None:
    assert Finding("demo", "1.0", None, Kind.ARCHIVED, "archived: done", 4).as_dict() == {
        "project": "demo", "version": "1.0", "filename": None, "kind": "archived", "severity": "low",
        "detail": "archived: done"}


# -- a pin that is fine -----------------------------------------------------------------------
def test_a_pin_that_matches_the_index_has_no_findings() -> None:
    served = {PAGE_URL.replace("simple/demo/", "") + f"files/{H1}/demo-1.0-py3-none-any.whl": Served(200, 100)}
    assert audit_project([pinned(LOCK_WHEEL, LOCK_SDIST)], page(WHEEL, SDIST), served) == []


def test_probe_urls_are_the_pinned_files_resolved_against_the_page() -> None:
    assert probe_urls(pinned(LOCK_WHEEL), page(WHEEL, SDIST)) == [
        f"http://127.0.0.1:8080/files/{H1}/demo-1.0-py3-none-any.whl"]
    # a requirements.txt pins by hash
    assert probe_urls(pinned(locked(None, H2)), page(WHEEL, SDIST)) == [
        f"http://127.0.0.1:8080/files/{H2}/demo-1.0.tar.gz"]
    assert probe_urls(pinned(LOCK_WHEEL), page(status="quarantined", versions=[])) == []


# -- hash-mismatch ----------------------------------------------------------------------------
def test_an_advertised_hash_or_size_other_than_the_locked_one() -> None:
    changed = file("demo-1.0-py3-none-any.whl", H3, 101)
    (found,) = audit_project([pinned(LOCK_WHEEL)], page(changed))
    assert (found.kind, found.severity, found.filename, found.line) == (
        Kind.HASH_MISMATCH, "critical", "demo-1.0-py3-none-any.whl", 5)
    assert found.detail == (f"the index advertises sha256 {H3}, the lock has {H1}; "
                            "the index advertises 101 bytes, the lock has 100")


def test_bytes_replaced_behind_the_index_are_seen_only_in_what_it_serves() -> None:
    url = f"http://127.0.0.1:8080/files/{H1}/demo-1.0-py3-none-any.whl"
    assert audit_project([pinned(LOCK_WHEEL)], page(WHEEL)) == []  # the JSON still says the original
    (by_size,) = audit_project([pinned(LOCK_WHEEL)], page(WHEEL), {url: Served(200, 90)})
    assert (by_size.kind, by_size.detail) == (Kind.HASH_MISMATCH, "the index serves 90 bytes, the lock has 100")
    (by_bytes,) = audit_project([pinned(LOCK_WHEEL)], page(WHEEL), {url: Served(200, 100, H4)})
    assert (by_bytes.kind, by_bytes.detail) == (Kind.HASH_MISMATCH,
                                                f"the served bytes have sha256 {H4}, the lock has {H1}")


def test_a_lock_without_a_size_or_hash_is_compared_with_what_the_index_advertises() -> None:
    url = f"http://127.0.0.1:8080/files/{H1}/demo-1.0-py3-none-any.whl"
    (found,) = audit_project([pinned(locked("demo-1.0-py3-none-any.whl", H1))], page(WHEEL), {url: Served(200, 90)})
    assert found.detail == "the index serves 90 bytes, the index advertises 100"
    # and one without a sha256 (only sha512 in a uv.lock) with the advertised sha256
    (found,) = audit_project([pinned(locked("demo-1.0-py3-none-any.whl", None))], page(WHEEL),
                             {url: Served(200, 100, H4)})
    assert found.detail == f"the served bytes have sha256 {H4}, the index advertises {H1}"


def test_a_listed_file_whose_url_is_gone_is_missing() -> None:
    url = f"http://127.0.0.1:8080/files/{H1}/demo-1.0-py3-none-any.whl"
    (found,) = audit_project([pinned(LOCK_WHEEL)], page(WHEEL), {url: Served(404)})
    assert (found.kind, found.detail) == (Kind.MISSING, "listed on the project page, but its URL answers 404")


# -- missing ----------------------------------------------------------------------------------
def test_a_file_or_a_version_no_longer_offered_is_missing() -> None:
    (gone_file,) = audit_project([pinned(LOCK_WHEEL, LOCK_SDIST)], page(SDIST))
    assert (gone_file.kind, gone_file.severity, gone_file.filename, gone_file.detail) == (
        Kind.MISSING, "high", "demo-1.0-py3-none-any.whl", "demo-1.0-py3-none-any.whl is not offered by the index")
    gone = audit_project([pinned(LOCK_WHEEL)], page(file("demo-2.0.tar.gz", H3), versions=["2.0"]))
    assert kinds(gone) == [(None, Kind.NEWER_RELEASE), ("demo-1.0-py3-none-any.whl", Kind.MISSING)]
    assert gone[1].detail == "version 1.0 is not on the index"


def test_files_gone_after_an_announced_removal_say_so() -> None:
    found = audit_project([pinned(LOCK_WHEEL)], page(status="deprecated", reason="pending removal: ...",
                                                     extra=REMOVAL))
    assert kinds(found) == [(None, Kind.PENDING_REMOVAL), ("demo-1.0-py3-none-any.whl", Kind.MISSING)]
    assert found[1].detail.endswith("the project's removal from the default index was announced for "
                                    "2026-12-22T09:14:00.000000Z")


# -- project status ---------------------------------------------------------------------------
def test_a_quarantined_project_lists_no_files_and_they_are_quarantined_not_missing() -> None:
    found = audit_project([pinned(LOCK_WHEEL, LOCK_SDIST)],
                          page(status="quarantined", reason="reported as malware", versions=[]))
    assert [(f.filename, f.kind, f.severity, f.detail, f.line) for f in found] == [
        (None, Kind.QUARANTINED, "high", "quarantined: reported as malware", 3)]


def test_pending_removal_uses_the_removal_instant_not_the_status() -> None:
    reason = "pending removal: its files leave the default index on 2026-12-22 09:14 UTC; retired"
    (found,) = audit_project([pinned(LOCK_WHEEL)], page(WHEEL, status="deprecated", reason=reason,
                                                        extra=REMOVAL))
    assert (found.kind, found.severity, found.filename, found.detail) == (Kind.PENDING_REMOVAL, "medium", None, reason)
    # Without the key it is only a deprecation (an index that does not announce the instant).
    (plain,) = audit_project([pinned(LOCK_WHEEL)], page(WHEEL, status="deprecated", reason=reason))
    assert plain.kind is Kind.DEPRECATED


def test_a_removal_outlives_a_later_status_change() -> None:
    found = audit_project([pinned(LOCK_WHEEL)], page(WHEEL, status="archived", reason="read-only now",
                                                     extra=REMOVAL))
    assert [(f.kind, f.detail) for f in found] == [
        (Kind.PENDING_REMOVAL, "its files leave the default index at 2026-12-22T09:14:00.000000Z; "
                               "archived: read-only now"),
        (Kind.ARCHIVED, "archived: read-only now")]
    with_successor = {**REMOVAL, "_successor": "demo2"}
    (deprecated,) = audit_project([pinned(LOCK_WHEEL)], page(WHEEL, status="deprecated", extra=with_successor))
    assert (deprecated.kind, deprecated.detail) == (
        Kind.PENDING_REMOVAL, "its files leave the default index at 2026-12-22T09:14:00.000000Z; successor: demo2")


def test_archived_and_deprecated_with_a_successor() -> None:
    (archived,) = audit_project([pinned(LOCK_WHEEL)], page(WHEEL, status="archived", reason="done"))
    assert (archived.kind, archived.severity, archived.filename, archived.detail) == (
        Kind.ARCHIVED, "low", None, "archived: done")
    (deprecated,) = audit_project([pinned(LOCK_WHEEL)], page(WHEEL, status="deprecated", reason="use demo2",
                                                             extra={"_successor": "demo2"}))
    assert (deprecated.kind, deprecated.severity, deprecated.detail) == (
        Kind.DEPRECATED, "low", "deprecated: use demo2; successor: demo2")


def test_project_level_findings_come_once_per_project() -> None:
    two_pins = [pinned(LOCK_WHEEL), pinned(locked("demo-2.0.tar.gz", H3), version="2.0")]
    found = audit_project(two_pins, page(WHEEL, file("demo-2.0.tar.gz", H3), file("demo-3.0.tar.gz", H4),
                                         versions=["1.0", "2.0", "3.0"], status="archived"))
    assert [(f.filename, f.kind, f.version) for f in found] == [
        (None, Kind.ARCHIVED, "1.0, 2.0"), (None, Kind.NEWER_RELEASE, "1.0, 2.0")]
    assert found[1].detail == "3.0 is available (the lock pins 1.0, 2.0)"


# -- yanked -----------------------------------------------------------------------------------
def test_a_yanked_file_with_and_without_a_reason() -> None:
    found = audit_project([pinned(LOCK_WHEEL, LOCK_SDIST)],
                          page(file("demo-1.0-py3-none-any.whl", H1, 100, yanked="corrupts data"),
                               file("demo-1.0.tar.gz", H2, 200, yanked=True)))
    assert [(f.filename, f.kind, f.severity, f.detail, f.line) for f in found] == [
        ("demo-1.0-py3-none-any.whl", Kind.YANKED, "medium", "yanked: corrupts data", 5),
        ("demo-1.0.tar.gz", Kind.YANKED, "medium", "yanked (no reason given)", 6)]


# -- newer-release ----------------------------------------------------------------------------
@pytest.mark.parametrize(("pin", "offered", "newer"), [
    ("1.0", {"1.1": False, "2.0": False}, "2.0"),
    ("1.0", {"2.0rc1": False, "2.0.dev1": False}, None),  # pre-releases are no newer release of a final one
    ("1.0rc1", {"1.0rc2": False}, "1.0rc2"),  # but are of a pre-release
    ("1.0", {"1.0.post1": False}, "1.0.post1"),
    ("1.0", {"2.0": True}, None),  # all its files are yanked
    ("1.0", {"1.5": False, "2.0": True}, "1.5"),
    ("2.0", {"1.5": False}, None),
])
def test_a_newer_release(pin: str, offered: dict[str, bool], newer: str | None) -> None:
    files = [file(f"demo-{pin}.tar.gz", H1)] + [file(f"demo-{v}.tar.gz", str(i) * 64, yanked=y)
                                                 for i, (v, y) in enumerate(offered.items(), start=5)]
    found = audit_project([pinned(locked(f"demo-{pin}.tar.gz", H1), version=pin)],
                          page(*files, versions=[pin, *offered]))
    assert [f.detail for f in found] == ([f"{newer} is available (the lock pins {pin})"] if newer else [])
    assert all(f.kind is Kind.NEWER_RELEASE and f.severity == "info" and f.filename is None for f in found)


def test_a_listed_version_without_files_is_no_newer_release() -> None:
    assert audit_project([pinned(LOCK_WHEEL)], page(WHEEL, versions=["1.0", "2.0"])) == []


# -- requirements.txt: hashes without filenames -----------------------------------------------
def test_requirement_hashes_are_matched_to_files_by_hash() -> None:
    found = audit_project([pinned(locked(None, H1), locked(None, H2))],
                          page(file("demo-1.0-py3-none-any.whl", H1, yanked="broken"), SDIST))
    assert [(f.filename, f.kind) for f in found] == [("demo-1.0-py3-none-any.whl", Kind.YANKED)]


def test_a_locked_hash_no_file_has_is_a_replacement_when_the_release_has_an_unknown_file() -> None:
    found = audit_project([pinned(locked(None, H1), locked(None, H2))], page(file("demo-1.0-py3-none-any.whl", H3),
                                                                             SDIST))
    assert [(f.filename, f.kind, f.severity) for f in found] == [
        ("demo-1.0-py3-none-any.whl", Kind.HASH_MISMATCH, "critical")]
    assert found[0].detail == (f"no file of demo 1.0 has the locked sha256 {H1}; the index offers "
                               f"demo-1.0-py3-none-any.whl (sha256 {H3}), not in the lock: the bytes were replaced")


def test_a_locked_hash_no_file_has_is_missing_when_every_file_is_known() -> None:
    (found,) = audit_project([pinned(locked(None, H1), locked(None, H2))], page(SDIST))
    assert (found.filename, found.kind) == (None, Kind.MISSING)
    assert found.detail == f"the file with sha256 {H1} is not offered by the index"


def test_a_requirement_without_hashes_is_checked_as_a_release() -> None:
    assert audit_project([pinned()], page(WHEEL, SDIST)) == []
    (yanked,) = audit_project([pinned()], page(file("demo-1.0-py3-none-any.whl", H1, yanked="bad"),
                                               file("demo-1.0.tar.gz", H2, yanked=True)))
    assert (yanked.filename, yanked.kind, yanked.detail) == (None, Kind.YANKED, "yanked: bad")
    # one file still offered unyanked: the release is not yanked (PEP 592)
    assert audit_project([pinned()], page(file("demo-1.0-py3-none-any.whl", H1, yanked="bad"), SDIST)) == []
    (missing,) = audit_project([pinned()], page(versions=[]))
    assert (missing.kind, missing.detail) == (Kind.MISSING, "version 1.0 is not on the index")
    (no_files,) = audit_project([pinned()], page(versions=["1.0"]))  # listed (PEP 700), but no file offered
    assert (no_files.kind, no_files.detail) == (Kind.MISSING, "no file of version 1.0 is offered by the index")


# -- several projects -------------------------------------------------------------------------
def test_audit_sorts_across_projects_and_counts_checked_files() -> None:
    other = LockedPackage("Other_Project", "1.0", INDEX, [locked("other_project-1.0.tar.gz", H3)], 9)
    packages = [pinned(LOCK_WHEEL), other]
    pages = {page_key(packages[0]): page(WHEEL, status="archived"),
             page_key(other): Page(INDEX + "other-project/", {"files": [], "versions": []})}
    assert page_key(other) == (INDEX, "other-project")
    found = audit(packages, pages)
    assert [(f.project, f.kind) for f in found] == [("Other_Project", Kind.MISSING), ("demo", Kind.ARCHIVED)]
    assert checked_files(packages + [pinned()]) == 3  # a requirement without hashes counts as one


def test_a_project_the_index_does_not_know_makes_every_pinned_file_missing() -> None:
    gone = Page(PAGE_URL, {}, gone=404)
    found = audit_project([pinned(LOCK_WHEEL, LOCK_SDIST), pinned(locked(None, H3), version="0.9")], gone)
    assert kinds(found) == [("demo-1.0-py3-none-any.whl", Kind.MISSING), ("demo-1.0.tar.gz", Kind.MISSING),
                            (None, Kind.MISSING)]
    assert found[0].detail == ("the index has no project demo (404): it was deleted, or the lock was made "
                               "against another index")
    assert [f.line for f in found] == [5, 6, 5]
    assert probe_urls(pinned(LOCK_WHEEL), gone) == []
