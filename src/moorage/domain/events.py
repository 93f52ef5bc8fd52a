"""Which recorded events anyone may read; the rest (accounts, tokens) is for admins."""

from __future__ import annotations

PUBLIC_ACTIONS: frozenset[str] = frozenset({
    "project-created", "release-created", "file-added",
    "role-added", "role-changed", "role-removed",
    "file-yanked", "release-yanked", "file-unyanked", "release-unyanked",
    "release-reopened", "status-changed", "release-quarantined", "release-unquarantined",
    "file-deleted", "release-deleted", "project-deleted", "deletions-disabled", "project-reregistered",
    "file-restored", "release-restored", "project-restored",
    "invitation-accepted", "project-orphaned", "project-adopted",
    "removal-announced", "removal-cancelled", "bytes-purged",
    # `moorage admin fsck --repair` brought a file's lost bytes back (sha256 checked).
    "blob-restored",
    # Critical projects are named in public, never a secret list.
    "project-became-critical", "project-no-longer-critical",
})
# Not public: accounts and tokens, and invitations until they are accepted.
