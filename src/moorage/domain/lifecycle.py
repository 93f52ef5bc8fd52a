"""Lifecycle rules: who may yank and reopen, and how long a release accepts new files.

Each rule answers for an actor, a subject and an instant (passed in) with a Decision that
says when the answer changes, so the same object explains a refusal everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from packaging.version import Version

from moorage.domain.decisions import Decision
from moorage.domain.durations import describe, span
from moorage.domain.removal import removal_in_effect


@dataclass(frozen=True, slots=True)
class LifecyclePolicy:
    # A release accepts new files for this long after its first file ...
    upload_window: timedelta = span(14, "d")
    # ... and, if set, no longer once a newer version has a file.
    close_on_newer_release: bool = False
    # An owner may reopen a closed release for at most this long.
    reopen_period: timedelta = span(7, "d")
    # An owner may delete a file this long after its upload (PEP 763) ...
    deletion_window: timedelta = span(72, "h")  # "72 hours", as PEP 763 says
    # ... or any time if its version is a pre-release.
    prereleases_deletable: bool = True
    # Deleted bytes are kept this long so an admin can restore them.
    retention: timedelta = span(90, "d")
    # An announced removal takes effect this long after the announcement (at the earliest,
    # for owners); until then everything works.
    removal_grace: timedelta = span(30, "d")


@dataclass(frozen=True, slots=True)
class Actor:
    name: str
    is_admin: bool = False
    role: str | None = None  # "owner" or "maintainer" on the project concerned

    @property
    def is_owner(self) -> bool:
        return self.role == "owner"


@dataclass(frozen=True, slots=True)
class ReleaseFacts:
    project: str
    version: Version
    opened_at: datetime  # when its first file was uploaded
    reopened_until: datetime | None = None
    # When the earliest newer version got its first file, if any has.
    newer_release_at: datetime | None = None


def when(instant: datetime) -> str:
    return f"{instant:%Y-%m-%d %H:%M} UTC"


def upload_window_closes(release: ReleaseFacts, policy: LifecyclePolicy) -> datetime:
    closes = release.opened_at + policy.upload_window
    if policy.close_on_newer_release and release.newer_release_at is not None:
        closes = min(closes, release.newer_release_at)
    return closes


def check_upload_window(release: ReleaseFacts, policy: LifecyclePolicy, now: datetime) -> Decision:
    """May a new file be added to this release now?"""
    closes = upload_window_closes(release, policy)
    if now < closes:
        return Decision.allow("upload-window", f"release {release.version} accepts new files until {when(closes)}",
                              until=closes)
    if release.reopened_until is not None and now < release.reopened_until:
        return Decision.allow("reopened", f"release {release.version} was reopened until "
                              f"{when(release.reopened_until)}", until=release.reopened_until)
    newer = (policy.close_on_newer_release and release.newer_release_at is not None
             and release.newer_release_at <= release.opened_at + policy.upload_window)
    why = ("a newer release has files" if newer
           else f"a release accepts new files for {describe(policy.upload_window)} after its first file")
    return Decision.deny(
        "upload-window",
        f"release {release.version} of {release.project} stopped accepting new files on {when(closes)} "
        f"({why}); an owner may reopen it",
    )


def may_yank(actor: Actor, project: str) -> Decision:
    if actor.is_admin or actor.is_owner:
        return Decision.allow()
    return Decision.deny("not-an-owner", f"only an owner of {project} or an admin may yank or unyank")


def may_reopen(actor: Actor, release: ReleaseFacts, days: timedelta, policy: LifecyclePolicy,
               now: datetime) -> Decision:
    if not (actor.is_admin or actor.is_owner):
        return Decision.deny("not-an-owner", f"only an owner of {release.project} or an admin may reopen a release")
    if days <= timedelta(0):  # a policy's reopen_period of none at all (services check given days first)
        return Decision.deny("invalid-days", "a release is reopened for a positive number of days")
    if days > policy.reopen_period and not actor.is_admin:
        return Decision.deny(
            "reopen-period",
            f"an owner may reopen a release for at most {describe(policy.reopen_period)}; an admin may allow longer",
        )
    return Decision.allow("reopen", until=now + days)


def release_facts(project: str, releases: list[tuple[Version, datetime, datetime | None]]
                  ) -> dict[Version, ReleaseFacts]:
    """Facts for every release of a project from (version, first upload, reopened until)."""
    ordered = sorted(releases, key=lambda r: r[0], reverse=True)
    out: dict[Version, ReleaseFacts] = {}
    earliest_newer: datetime | None = None
    for version, opened_at, reopened_until in ordered:
        out[version] = ReleaseFacts(project, version, opened_at, reopened_until, earliest_newer)
        if earliest_newer is None or opened_at < earliest_newer:
            earliest_newer = opened_at
    return out


# -- project status (PEP 792) ------------------------------------------------------------------
STATUSES = ("active", "archived", "deprecated", "quarantined")


@dataclass(frozen=True, slots=True)
class ProjectFacts:
    name: str
    status: str = "active"
    status_reason: str | None = None


def may_change_status(actor: Actor, project: ProjectFacts, new_status: str, reason: str | None) -> Decision:
    """Owners archive and deprecate; only an admin quarantines or lifts a quarantine, with a reason."""
    if new_status not in STATUSES:
        return Decision.deny("invalid-status", f"unknown status {new_status!r}: use one of {', '.join(STATUSES)}")
    if "quarantined" in (new_status, project.status):
        if not actor.is_admin:
            return Decision.deny("admin-only", "only an admin may quarantine a project or lift a quarantine")
        if not (reason and reason.strip()):
            # Quarantining needs a reason as every admin action does; lifting needs one because of
            # the project's state (the quarantine), which its own rule id says.
            return Decision.deny("reason-required" if new_status == "quarantined" else "lift-reason-required",
                                 "a quarantine and its lifting need a reason")
        return Decision.allow()
    if not (actor.is_admin or actor.is_owner):
        return Decision.deny("not-an-owner", f"only an owner of {project.name} or an admin may change its status")
    return Decision.allow()


def may_quarantine_release(actor: Actor, reason: str | None) -> Decision:
    if not actor.is_admin:
        return Decision.deny("admin-only", "only an admin may quarantine a release or lift a quarantine")
    if not (reason and reason.strip()):
        return Decision.deny("reason-required", "a quarantine and its lifting need a reason")
    return Decision.allow()


def check_upload_status(project: ProjectFacts, version: Version, release_quarantined: bool) -> Decision:
    """May anything be uploaded to this project (and release) given its status?"""
    because = f": {project.status_reason}" if project.status_reason else ""
    if project.status == "archived":
        return Decision.deny(
            "project-archived",
            f"{project.name} is archived and accepts no new uploads{because}; an owner may unarchive it",
        )
    if project.status == "quarantined":
        return Decision.deny("project-quarantined", f"{project.name} is quarantined{because}")
    if release_quarantined:
        return Decision.deny("release-quarantined", f"release {version} of {project.name} is quarantined")
    return Decision.allow()


# -- deletion (PEP 763) -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class FileFacts:
    filename: str
    version: Version
    uploaded_at: datetime


def may_delete_file(actor: Actor, project: str, deletions_disabled_at: datetime | None, file: FileFacts,
                    policy: LifecyclePolicy, now: datetime) -> Decision:
    if actor.is_admin:
        return Decision.allow("admin", "an admin may always delete, with a reason")
    if not actor.is_owner:
        return Decision.deny("not-an-owner", f"only an owner of {project} or an admin may delete")
    if deletions_disabled_at is not None:
        return _deletions_disabled(project, deletions_disabled_at)
    if policy.prereleases_deletable and file.version.is_prerelease:
        return Decision.allow("pre-release", f"{file.filename} is a pre-release and may be deleted at any time")
    closes = file.uploaded_at + policy.deletion_window
    if now < closes:
        return Decision.allow("deletion-window", f"{file.filename} may be deleted until {when(closes)}", until=closes)
    return Decision.deny(
        "deletion-window",
        f"files may be deleted within {describe(policy.deletion_window)} of upload; {file.filename} was uploaded "
        f"{when(file.uploaded_at)}; yank it, or deprecate or archive the project instead",
    )


def _deletions_disabled(project: str, since: datetime) -> Decision:
    return Decision.deny("deletions-disabled",
                         f"the owners of {project} turned deletions off on {when(since)}; "
                         "yank, deprecate or archive instead")


def may_delete_files(actor: Actor, project: str, deletions_disabled_at: datetime | None,
                     files: list[FileFacts], policy: LifecyclePolicy, now: datetime) -> Decision:
    """A release (or project) may be deleted when every file in it may: the first refusal
    explains why not; when allowed, the answer holds until the earliest file's window ends."""
    if actor.is_admin:
        return Decision.allow("admin", "an admin may always delete, with a reason")
    if not actor.is_owner:
        return Decision.deny("not-an-owner", f"only an owner of {project} or an admin may delete")
    if deletions_disabled_at is not None:  # even when nothing is left to delete
        return _deletions_disabled(project, deletions_disabled_at)
    until: datetime | None = None
    for file in files:
        decision = may_delete_file(actor, project, deletions_disabled_at, file, policy, now)
        if not decision.allowed:
            return decision
        if decision.until is not None and (until is None or decision.until < until):
            until = decision.until
    return Decision.allow("deletion-window", "every file concerned may be deleted", until=until)


def may_disable_deletions(actor: Actor, project: str) -> Decision:
    if actor.is_admin or actor.is_owner:
        return Decision.allow()
    return Decision.deny("not-an-owner", f"only an owner of {project} or an admin may turn deletions off")


def may_register_deleted_name(actor: Actor, project: str, was_owner: bool) -> Decision:
    """A deleted project's name is a tombstone: only a previous owner or an admin may take it."""
    if actor.is_admin or was_owner:
        return Decision.allow()
    return Decision.deny("name-tombstoned",
                         f"the name {project} belonged to a deleted project; only one of its previous owners "
                         "or an admin may register it again")


def may_restore(actor: Actor, reason: str | None) -> Decision:
    if not actor.is_admin:
        return Decision.deny("admin-only", "only an admin may restore what was deleted")
    if not (reason and reason.strip()):
        return Decision.deny("reason-required", "a restore needs a reason")
    return Decision.allow()


# -- hand-over: invitations, leaving, orphaning, adoption --------------------------------------
ORPHANED = "orphaned"


def may_invite(actor: Actor, project: str) -> Decision:
    if actor.is_admin or actor.is_owner:
        return Decision.allow()
    return Decision.deny("not-an-owner", f"only an owner of {project} or an admin may invite or transfer")


def may_leave(actor: Actor, project: str) -> Decision:
    if actor.role is None:
        return Decision.deny("no-role", f"{actor.name} has no role on {project} to leave")
    return Decision.allow()


def may_adopt(actor: Actor, project: ProjectFacts, owners: int, reason: str | None) -> Decision:
    if not actor.is_admin:
        return Decision.deny("admin-only", "only an admin may hand an orphaned project to an adopter")
    if not (reason and reason.strip()):
        return Decision.deny("reason-required", "an adoption needs a reason")
    if owners:
        return Decision.deny("not-orphaned", f"{project.name} has owners; they can invite or transfer")
    return Decision.allow()


# -- pending removal ----------------------------------------------------------------------------
def may_announce_removal(actor: Actor, project: str, grace: timedelta, policy: LifecyclePolicy) -> Decision:
    if not (actor.is_admin or actor.is_owner):
        return Decision.deny("not-an-owner", f"only an owner of {project} or an admin may announce its removal")
    if grace < policy.removal_grace and not actor.is_admin:
        return Decision.deny("removal-grace",
                             f"a removal is announced at least {describe(policy.removal_grace)} ahead, so the people "
                             "who depend on the project have time to move")
    if grace <= timedelta(0):  # a policy's removal_grace of none at all (services check given days first)
        return Decision.deny("invalid-days", "a removal is announced ahead of time")
    return Decision.allow()


def may_cancel_removal(actor: Actor, project: str, removal_at: datetime | None, now: datetime) -> Decision:
    if not (actor.is_admin or actor.is_owner):
        return Decision.deny("not-an-owner", f"only an owner of {project} or an admin may cancel its removal")
    if removal_at is None:
        return Decision.deny("no-removal", f"no removal of {project} was announced")
    if removal_in_effect(removal_at, now) and not actor.is_admin:
        return Decision.deny("removal-done", f"the removal of {project} took effect on {when(removal_at)}; "
                             "an admin can still undo it")
    return Decision.allow()


def removal_reason(removal_at: datetime, reason: str | None) -> str:
    text = f"pending removal: its files leave the default index on {when(removal_at)}"
    return f"{text}; {reason}" if reason else text


MAX_DAYS = 36500.0


def check_days(days: float | None) -> Decision:
    """A number of days given by a person: finite, positive, at most a hundred years."""
    if days is None:
        return Decision.allow()
    if math.isnan(days) or days <= 0 or days > MAX_DAYS:
        return Decision.deny("invalid-days", f"a number of days must be above 0 and at most {MAX_DAYS:g}")
    return Decision.allow()


def may_prohibit_name(actor: Actor, reason: str | None) -> Decision:
    """Admins keep names from being registered (squatting, confusion, trademarks), with a reason."""
    if not actor.is_admin:
        return Decision.deny("admin-only", "only an admin may prohibit a name or lift a prohibition")
    if not (reason and reason.strip()):
        return Decision.deny("reason-required", "prohibiting a name needs a reason")
    return Decision.allow()
