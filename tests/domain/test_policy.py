"""Upload rules: sizes, tokens (with the instant passed in), scope and standing, digests, known filenames."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from packaging.version import Version

from moorage.domain.policy import (
    GiB,
    KnownFile,
    MiB,
    Standing,
    TokenView,
    UploadPolicy,
    check_digests,
    check_file_size,
    check_known_file,
    check_one_sdist,
    check_project_size,
    check_token,
    check_upload_scope,
    check_uploader,
    file_over_limit,
    missing_file,
)
from moorage.web.statuses import status_of

KiB = 1024
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
UNITS = {"bytes": 1, "KiB": KiB, "MiB": MiB, "GiB": GiB}


def shown(text: str) -> float:
    """The byte count a human reads from '64 KiB', '1.5 MiB' or '12 bytes'."""
    number, unit = text.split()
    return float(number) * UNITS[unit]


# -- file size ------------------------------------------------------------------------------
def test_a_file_at_the_limit_is_allowed() -> None:
    policy = UploadPolicy(max_file_size=64 * KiB)
    assert check_file_size(64 * KiB, policy).allowed
    assert check_file_size(1, policy).allowed


def test_a_file_over_the_limit_is_refused() -> None:
    decision = check_file_size(100 * KiB, UploadPolicy(max_file_size=64 * KiB))
    assert not decision.allowed
    assert (decision.rule, status_of(decision)) == ("file-size-limit", 400)
    assert decision.reason == "the file is 100 KiB; the limit is 64 KiB per file"


def test_an_empty_file_is_refused() -> None:
    decision = check_file_size(0, UploadPolicy())
    assert (decision.allowed, decision.rule, status_of(decision)) == (False, "empty-file", 400)


def test_the_default_limits() -> None:
    policy = UploadPolicy()
    assert check_file_size(100 * MiB, policy).allowed
    assert check_file_size(101 * MiB, policy).reason == "the file is 101 MiB; the limit is 100 MiB per file"
    # One byte over would round to "100 MiB" too, so the bytes are spelled out.
    assert check_file_size(100 * MiB + 1, policy).reason == (
        "the file is 104857601 bytes; the limit is 104857600 bytes per file")
    assert check_project_size(10 * GiB - 1, 1, policy).allowed
    assert not check_project_size(10 * GiB, 1, policy).allowed


FILE_REASON = re.compile(r"^the file is (.+); the limit is (.+) per file$")


# Sizes near a limit are where rounding bites: draw the distance from the limit, mostly small.
distances = st.integers(-50, 50) | st.integers(-8 * GiB, 8 * GiB)


@given(st.integers(1, 8 * GiB), distances)
def test_a_refused_size_always_reads_larger_than_its_limit(limit: int, distance: int) -> None:
    """Rounding must never produce 'the file is 64 KiB; the limit is 64 KiB'."""
    size = max(1, limit + distance)
    decision = check_file_size(size, UploadPolicy(max_file_size=limit))
    assert decision.allowed == (size <= limit)
    if size > limit:
        match = FILE_REASON.match(decision.reason)
        assert match, decision.reason
        assert shown(match.group(1)) > shown(match.group(2)), decision.reason


@pytest.mark.parametrize("limit", [1, 1000, 64 * KiB, 100 * MiB, 3 * GiB])
def test_just_over_the_limit_reads_as_over(limit: int) -> None:
    match = FILE_REASON.match(check_file_size(limit + 1, UploadPolicy(max_file_size=limit)).reason)
    assert match and shown(match.group(1)) > shown(match.group(2))


def test_a_file_that_passed_the_limit_while_received() -> None:
    decision = file_over_limit(UploadPolicy(max_file_size=64 * KiB))
    assert (decision.allowed, decision.rule, status_of(decision)) == (False, "file-size-limit", 400)
    assert decision.reason.startswith("the file is larger than 64 KiB")
    assert "64 KiB per file" in decision.reason


# -- project size ---------------------------------------------------------------------------
def test_project_size_boundary() -> None:
    policy = UploadPolicy(max_project_size=200 * KiB)
    assert check_project_size(150 * KiB, 50 * KiB, policy).allowed
    decision = check_project_size(150 * KiB, 60 * KiB, policy)
    assert (decision.allowed, decision.rule, status_of(decision)) == (False, "project-size-limit", 400)
    assert decision.reason == "the project would grow to 210 KiB; the limit is 200 KiB per project"
    decision = check_project_size(150 * KiB, 50 * KiB + 1, policy)
    assert decision.reason == "the project would grow to 204801 bytes; the limit is 204800 bytes per project"


PROJECT_REASON = re.compile(r"^the project would grow to (.+); the limit is (.+) per project$")


@given(st.integers(0, 20 * GiB), st.integers(1, 4 * GiB), distances)
def test_project_size_refusals_read_right(total: int, size: int, distance: int) -> None:
    limit = max(1, total + size + distance)
    decision = check_project_size(total, size, UploadPolicy(max_project_size=limit))
    assert decision.allowed == (total + size <= limit)
    if not decision.allowed:
        match = PROJECT_REASON.match(decision.reason)
        assert match, decision.reason
        assert shown(match.group(1)) > shown(match.group(2)), decision.reason


# -- decompression budget -------------------------------------------------------------------
def test_uncompressed_budget() -> None:
    policy = UploadPolicy(max_compression_ratio=100, ratio_free_size=16 * MiB, max_uncompressed_size=4 * GiB)
    assert policy.uncompressed_budget(1) == 16 * MiB  # small files may expand freely up to 16 MiB
    assert policy.uncompressed_budget(1 * MiB) == 100 * MiB
    assert policy.uncompressed_budget(100 * MiB) == 4 * GiB  # capped


@given(st.integers(0, 10 * GiB), st.integers(0, 10 * GiB), st.floats(1, 1000), st.integers(0, 64 * MiB),
       st.integers(1, 8 * GiB))
def test_uncompressed_budget_is_monotonic_and_capped(a: int, b: int, ratio: float, free: int, cap: int) -> None:
    policy = UploadPolicy(max_compression_ratio=ratio, ratio_free_size=free, max_uncompressed_size=cap)
    low, high = sorted((a, b))
    assert policy.uncompressed_budget(low) <= policy.uncompressed_budget(high) <= cap
    assert policy.uncompressed_budget(low) >= min(cap, free)


# -- tokens ---------------------------------------------------------------------------------
def token(*, projects: frozenset[str] = frozenset(), expires_at: datetime | None = None,
          revoked_at: datetime | None = None) -> TokenView:
    return TokenView("abc123", "alice", projects, expires_at, revoked_at)


def test_no_token_is_refused() -> None:
    decision = check_token(None, NOW)
    assert (decision.allowed, decision.rule, status_of(decision)) == (False, "invalid-token", 403)
    assert decision.reason == "invalid or non-existent authentication information"


def test_a_live_token_is_allowed() -> None:
    assert check_token(token(), NOW).allowed
    assert check_token(token(expires_at=NOW + timedelta(microseconds=1)), NOW).allowed


@pytest.mark.parametrize("expired_by", [timedelta(0), timedelta(microseconds=1), timedelta(days=400)])
def test_an_expired_token_is_refused(expired_by: timedelta) -> None:
    expires = datetime(2026, 2, 27, 9, 30, tzinfo=UTC)
    decision = check_token(token(expires_at=expires), expires + expired_by)
    assert (decision.allowed, decision.rule, status_of(decision)) == (False, "token-expired", 403)
    assert decision.reason == "the API token abc123 expired on 2026-02-27 09:30 UTC"


def test_a_revoked_token_is_refused_and_says_so() -> None:
    revoked = datetime(2026, 2, 28, 8, 15, tzinfo=UTC)
    decision = check_token(token(revoked_at=revoked, expires_at=NOW + timedelta(days=1)), NOW)
    assert (decision.allowed, decision.rule, status_of(decision)) == (False, "invalid-token", 403)
    assert decision.reason == "the API token abc123 was revoked on 2026-02-28 08:15 UTC"


instants = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))


@given(instants, st.none() | instants, st.none() | instants)
def test_token_validity_depends_only_on_the_instant_passed_in(now: datetime, expires: datetime | None,
                                                              revoked: datetime | None) -> None:
    decision = check_token(token(expires_at=expires, revoked_at=revoked), now)
    assert decision.allowed == (revoked is None and (expires is None or now < expires))
    if not decision.allowed:
        assert status_of(decision) == 403 and "abc123" in decision.reason


# -- scope ----------------------------------------------------------------------------------
def test_a_user_wide_token_may_create_a_project() -> None:
    assert check_upload_scope(token(), "new", project_exists=False, is_owner_or_maintainer=False).allowed


def test_a_token_scoped_to_a_new_name_may_create_it() -> None:
    scoped = token(projects=frozenset({"new"}))
    assert check_upload_scope(scoped, "new", project_exists=False, is_owner_or_maintainer=False).allowed


@pytest.mark.parametrize("exists", [False, True])
def test_a_token_scoped_elsewhere_is_refused(exists: bool) -> None:
    scoped = token(projects=frozenset({"zeta", "alpha"}))
    decision = check_upload_scope(scoped, "target", project_exists=exists, is_owner_or_maintainer=True)
    assert (decision.allowed, decision.rule, status_of(decision)) == (False, "token-scope", 403)
    assert decision.reason == "the API token abc123 is scoped to alpha, zeta, not 'target'"


@pytest.mark.parametrize("projects", [frozenset(), frozenset({"target"})])
def test_an_existing_project_needs_an_owner_or_maintainer(projects: frozenset[str]) -> None:
    view = token(projects=projects)
    decision = check_upload_scope(view, "target", project_exists=True, is_owner_or_maintainer=False)
    assert (decision.allowed, decision.rule, status_of(decision)) == (False, "not-a-maintainer", 403)
    assert decision.reason == "the user 'alice' is not an owner or maintainer of 'target'"
    assert check_upload_scope(view, "target", project_exists=True, is_owner_or_maintainer=True).allowed


@given(st.frozensets(st.sampled_from(["a", "b", "c"])), st.sampled_from(["a", "b", "c"]), st.booleans(),
       st.booleans())
def test_scope_rule(projects: frozenset[str], project: str, exists: bool, maintainer: bool) -> None:
    assume(exists or not maintainer)  # nobody maintains a project that does not exist
    decision = check_upload_scope(token(projects=projects), project, project_exists=exists,
                                  is_owner_or_maintainer=maintainer)
    in_scope = not projects or project in projects
    assert decision.allowed == (in_scope and (not exists or maintainer))


# -- the uploader's standing ----------------------------------------------------------------
def test_a_new_project_is_anyones_within_the_tokens_scope() -> None:
    assert check_uploader(token(), "new", Standing()).allowed
    decision = check_uploader(token(projects=frozenset({"other"})), "new", Standing())
    assert decision.rule == "token-scope"


@pytest.mark.parametrize("role", ["owner", "maintainer"])
def test_an_existing_project_is_its_owners_and_maintainers(role: str) -> None:
    assert check_uploader(token(), "target", Standing(exists=True, role=role)).allowed
    decision = check_uploader(token(), "target", Standing(exists=True, is_admin=True))
    assert (decision.allowed, decision.rule) == (False, "not-a-maintainer")


def test_a_deleted_projects_name_is_its_previous_owners_or_an_admins() -> None:
    assert check_uploader(token(), "gone", Standing(exists=True, deleted=True, role="owner")).allowed
    assert check_uploader(token(), "gone", Standing(exists=True, deleted=True, is_admin=True)).allowed
    for role in ("maintainer", None):
        decision = check_uploader(token(), "gone", Standing(exists=True, deleted=True, role=role))
        assert (decision.allowed, decision.rule, status_of(decision)) == (False, "name-tombstoned", 403)


def test_the_tombstone_is_checked_before_the_tokens_scope() -> None:
    scoped = token(projects=frozenset({"other"}))
    assert check_uploader(scoped, "gone", Standing(exists=True, deleted=True)).rule == "name-tombstoned"
    assert check_uploader(scoped, "gone", Standing(exists=True, deleted=True, role="owner")).rule == "token-scope"


# -- the bytes ------------------------------------------------------------------------------
def test_digests_given_must_match() -> None:
    actual = {"md5": "a" * 32, "sha256": "b" * 64, "blake2_256": "c" * 64}
    assert check_digests({"md5": None, "sha256": " " + "B" * 64 + "\n", "blake2_256": ""}, actual).allowed
    decision = check_digests({"md5": "a" * 32, "sha256": "d" * 64, "blake2_256": None}, actual)
    assert (decision.allowed, decision.rule, status_of(decision)) == (False, "digest-mismatch", 400)
    assert decision.reason == "the sha256 digest supplied does not match the uploaded file"


def test_a_form_without_the_file() -> None:
    decision = missing_file()
    assert (decision.allowed, decision.rule, status_of(decision)) == (False, "missing-file", 400)


# -- a filename accepted before ---------------------------------------------------------------
KNOWN = KnownFile("demo-1.0-py3-none-any.whl", "e" * 64, "demo")


def test_the_same_file_again_is_allowed_and_changes_nothing() -> None:
    decision = check_known_file(KNOWN, "demo", Version("1.0"), "e" * 64)
    assert (decision.allowed, decision.rule) == (True, "identical-file")


def test_other_bytes_under_a_known_filename_are_refused() -> None:
    decision = check_known_file(KNOWN, "demo", Version("1.0"), "f" * 64)
    assert (decision.allowed, decision.rule, status_of(decision)) == (False, "file-exists", 400)
    assert decision.reason.startswith("File already exists")


def test_a_known_file_named_by_another_project_or_version_is_refused() -> None:
    decision = check_known_file(KNOWN, "other", Version("1.0"), "e" * 64)
    assert (decision.rule, decision.reason) == (
        "filename-mismatch", "the file demo-1.0-py3-none-any.whl belongs to the project 'demo', not 'other'")
    decision = check_known_file(KNOWN, "demo", Version("2.0"), "e" * 64)
    assert (decision.rule, decision.reason) == (
        "metadata-mismatch", "the form says version 2.0 but demo-1.0-py3-none-any.whl is of version 1.0")


def test_a_deleted_files_name_is_never_uploaded_again() -> None:
    deleted = dataclasses.replace(KNOWN, deleted_at=datetime(2026, 2, 27, 9, 30, tzinfo=UTC))
    decision = check_known_file(deleted, "demo", Version("1.0"), "e" * 64)  # even the same bytes
    assert (decision.allowed, decision.rule, status_of(decision)) == (False, "file-deleted", 400)
    assert decision.reason == ("demo-1.0-py3-none-any.whl was deleted on 2026-02-27 09:30 UTC and a deleted "
                               "filename is never uploaded again; an admin can restore it")


def test_one_sdist_per_release() -> None:
    assert check_one_sdist("sdist", False, "demo", Version("1.0")).allowed
    assert check_one_sdist("bdist_wheel", True, "demo", Version("1.0")).allowed
    decision = check_one_sdist("sdist", True, "demo", Version("1.0"))
    assert (decision.allowed, decision.rule, status_of(decision)) == (False, "one-sdist-per-release", 400)
    assert decision.reason == "release 1.0 of 'demo' already has a source distribution"
