"""Upload rules: who may upload where, how big a file or project may be, what the bytes must
match, and what an upload under a filename accepted before gets.

Each rule returns a Decision; services turn a denial into a refusal.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from packaging.version import Version

from moorage.domain.decisions import Decision
from moorage.domain.filenames import version_of
from moorage.domain.lifecycle import Actor, may_register_deleted_name

MiB = 1024 * 1024
GiB = 1024 * MiB


@dataclass(frozen=True, slots=True)
class UploadPolicy:
    max_file_size: int = 100 * MiB
    max_project_size: int = 10 * GiB
    # Archive safety: a file may expand to at most this many times its size once its
    # uncompressed total passes `ratio_free_size` (small text files compress very well),
    # and never beyond `max_uncompressed_size`.
    max_compression_ratio: float = 100.0
    ratio_free_size: int = 16 * MiB
    max_uncompressed_size: int = 4 * GiB
    # Largest METADATA / PKG-INFO read from an archive.
    max_metadata_size: int = 4 * MiB
    prohibited_names: frozenset[str] = field(default_factory=frozenset)
    # PEP 440 local versions (1.0+cpu) are for builds that stay off shared indexes; the public
    # index refuses them. An index of an organisation's own builds may take them.
    allow_local_versions: bool = False

    def uncompressed_budget(self, compressed_size: int) -> int:
        by_ratio = int(compressed_size * self.max_compression_ratio)
        return min(self.max_uncompressed_size, max(self.ratio_free_size, by_ratio))


def _size(n: int) -> str:
    for unit, div in (("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if n >= div:
            return f"{n / div:.1f} {unit}".replace(".0 ", " ")
    return f"{n} bytes"


def _over(size: int, limit: int) -> tuple[str, str]:
    """``size`` and ``limit`` for an "over the limit" message, in bytes when rounding would
    make the size look no larger than the limit (64.0001 KiB and 64 KiB both read "64 KiB")."""
    shown, limit_shown = _size(size), _size(limit)
    if _shown_bytes(shown) <= _shown_bytes(limit_shown):
        return f"{size} bytes", f"{limit} bytes"
    return shown, limit_shown


def _shown_bytes(text: str) -> float:
    number, unit = text.split()
    return float(number) * {"bytes": 1, "KiB": 1024, "MiB": MiB, "GiB": GiB}[unit]


def check_file_size(size: int, policy: UploadPolicy) -> Decision:
    if size > policy.max_file_size:
        shown, limit = _over(size, policy.max_file_size)
        return Decision.deny(
            "file-size-limit", f"the file is {shown}; the limit is {limit} per file"
        )
    if size == 0:
        return Decision.deny("empty-file", "the file is empty")
    return Decision.allow()


def file_over_limit(policy: UploadPolicy) -> Decision:
    """The refusal for a file that passed the limit while it was received (its size is unknown)."""
    return Decision.deny(
        "file-size-limit",
        f"the file is larger than {_size(policy.max_file_size)}; "
        f"the limit is {_size(policy.max_file_size)} per file",
    )


def check_project_size(current_total: int, size: int, policy: UploadPolicy) -> Decision:
    if current_total + size > policy.max_project_size:
        shown, limit = _over(current_total + size, policy.max_project_size)
        return Decision.deny(
            "project-size-limit",
            f"the project would grow to {shown}; the limit is {limit} per project",
        )
    return Decision.allow()


@dataclass(frozen=True, slots=True)
class TokenView:
    """What the rules need to know about an API token."""

    token_id: str
    user_name: str
    projects: frozenset[str]  # normalized names; empty means every project of the user
    expires_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime | None = None
    last_used_at: datetime | None = None
    with_second_factor: bool = False  # its account had a second factor when it made it


def check_token(token: TokenView | None, now: datetime) -> Decision:
    if token is None:
        return Decision.deny("invalid-token", "invalid or non-existent authentication information")
    if token.revoked_at is not None:
        # Only the holder of the token's secret gets here, so naming it tells nobody else anything.
        # The rule stays "invalid-token"; the reason says why.
        return Decision.deny(
            "invalid-token",
            f"the API token {token.token_id} was revoked on {token.revoked_at:%Y-%m-%d %H:%M} UTC",
        )
    if token.expires_at is not None and now >= token.expires_at:
        return Decision.deny(
            "token-expired",
            f"the API token {token.token_id} expired on {token.expires_at:%Y-%m-%d %H:%M} UTC",
        )
    return Decision.allow()


def check_upload_scope(
    token: TokenView, project: str, *, project_exists: bool, is_owner_or_maintainer: bool
) -> Decision:
    """A token may upload to projects its user owns or maintains, within its scope.

    A new project may be created by a user-wide token, or by a token scoped to that name.
    """
    if token.projects and project not in token.projects:
        return Decision.deny(
            "token-scope",
            f"the API token {token.token_id} is scoped to {', '.join(sorted(token.projects))}, not {project!r}",
        )
    if project_exists and not is_owner_or_maintainer:
        return Decision.deny(
            "not-a-maintainer",
            f"the user {token.user_name!r} is not an owner or maintainer of {project!r}",
        )
    return Decision.allow()


@dataclass(frozen=True, slots=True)
class Standing:
    """The uploader and the project the form names, as the index holds them."""

    exists: bool = False  # the project has a row (a deleted project keeps its row)
    deleted: bool = False
    role: str | None = None  # the uploader's role on it: "owner", "maintainer" or None
    is_admin: bool = False


def check_uploader(token: TokenView, project: str, standing: Standing) -> Decision:
    """Who may upload into ``project``: a deleted project's name is taken again only by one of
    its previous owners or an admin; then the token's scope, and an existing project's owners
    and maintainers only (a deleted one's name, once allowed, is the uploader's to take)."""
    if standing.deleted:
        actor = Actor(token.user_name, is_admin=standing.is_admin, role=standing.role)
        decision = may_register_deleted_name(actor, project, was_owner=standing.role == "owner")
        if not decision.allowed:
            return decision
    return check_upload_scope(token, project, project_exists=standing.exists,
                              is_owner_or_maintainer=standing.role is not None or standing.deleted)


def missing_file() -> Decision:
    return Decision.deny("missing-file", "the form must carry the file in its 'content' field")


def check_digests(given: Mapping[str, str | None], actual: Mapping[str, str]) -> Decision:
    """Each digest the form gave (md5, sha256, blake2_256) must be the received bytes' own."""
    for kind, value in given.items():
        if value and not hmac.compare_digest(value.strip().lower(), actual[kind]):
            return Decision.deny("digest-mismatch", f"the {kind} digest supplied does not match the uploaded file")
    return Decision.allow()


@dataclass(frozen=True, slots=True)
class KnownFile:
    """A filename the index accepted before (registered forever) and what became of its file."""

    filename: str
    sha256: str
    project: str  # normalized
    deleted_at: datetime | None = None


def check_known_file(known: KnownFile, project: str, version: Version, sha256: str) -> Decision:
    """An upload under a filename accepted before. Allowed (nothing to do: the same file is
    there) only for the same bytes, named by the form as the file's own project and version;
    a deleted file's name is never uploaded again (an admin can restore the file)."""
    filename = known.filename
    if known.deleted_at is not None:
        return Decision.deny("file-deleted", f"{filename} was deleted on {known.deleted_at:%Y-%m-%d %H:%M} UTC and "
                             "a deleted filename is never uploaded again; an admin can restore it")
    if known.project != project:
        return Decision.deny("filename-mismatch", f"the file {filename} belongs to the project {known.project!r}, "
                             f"not {project!r}")
    if version_of(filename) != version:
        return Decision.deny("metadata-mismatch", f"the form says version {version} but {filename} is of version "
                             f"{version_of(filename)}")
    if known.sha256 == sha256:
        return Decision.allow("identical-file", f"{filename} is already there with the same bytes")
    return Decision.deny("file-exists", "File already exists: a file of this name was uploaded before "
                         "with different contents, and filenames are never reused")


def check_one_sdist(packagetype: str, release_has_sdist: bool, project: str, version: Version) -> Decision:
    if packagetype == "sdist" and release_has_sdist:
        return Decision.deny("one-sdist-per-release",
                             f"release {version} of {project!r} already has a source distribution")
    return Decision.allow()
