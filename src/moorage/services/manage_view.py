"""What a user may do to a project, action by action, with the policy's own sentences.

Read-only. The management page shows every action; those the policy would refuse are shown
disabled with the rule's reason and the instant the answer changes (PEP 763: shown inactive
rather than failing after a click). The same domain rules decide when the action is taken.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

import sqlalchemy as sa
from packaging.version import Version

from moorage.domain.decisions import Decision, not_found
from moorage.domain.lifecycle import (
    Actor,
    FileFacts,
    LifecyclePolicy,
    ProjectFacts,
    check_upload_window,
    may_announce_removal,
    may_cancel_removal,
    may_change_status,
    may_delete_file,
    may_delete_files,
    may_disable_deletions,
    may_invite,
    may_leave,
    may_reopen,
    may_yank,
    release_facts,
    upload_window_closes,
)
from moorage.services.context import Context
from moorage.services.loading import resolve_actor, two_factor_decision
from moorage.store.queries import FileView, ProjectView, ReleaseView, load_project
from moorage.store.tables import invitations, projects, roles, users


@dataclass(frozen=True)
class FileActions:
    file: FileView
    delete: Decision
    deletion_closes: datetime  # upload time + deletion window (moot for admins and pre-releases)


@dataclass(frozen=True)
class ReleaseActions:
    release: ReleaseView
    files: list[FileActions]
    upload_window: Decision
    window_closes: datetime
    yanked: bool
    reopen: Decision
    delete: Decision


@dataclass(frozen=True)
class ManageView:
    project: ProjectView
    actor: Actor
    now: datetime
    people: list[tuple[str, str]]  # (user, role)
    pending: list[tuple[str, str, bool]]  # open invitations: (user, role, transfer)
    releases: list[ReleaseActions]  # newest first
    yank: Decision
    status: dict[str, Decision]  # archive, unarchive, deprecate, undeprecate
    disable_deletions: Decision
    delete_project: Decision
    announce_removal: Decision
    cancel_removal: Decision
    invite: Decision
    transfer: Decision
    leave: Decision
    notes: list[str] = field(default_factory=list)

    @property
    def may_manage(self) -> bool:
        return self.actor.is_admin or self.actor.role is not None


def manage_view(ctx: Context, project: str, *, as_user: str) -> ManageView:
    now = ctx.clock.now()
    policy = ctx.settings.lifecycle
    with ctx.db.read() as conn:
        view = load_project(conn, project, offered_only=False, now=now)
        if view is None or view.deleted_at is not None:
            raise not_found(f"no project named {project!r}")
        project_id = conn.execute(sa.select(projects.c.id)
                                  .where(projects.c.normalized_name == view.normalized_name)).scalar_one()
        actor = resolve_actor(conn, as_user, project_id)
        two_factor = two_factor_decision(conn, ctx, actor, project_id, view.normalized_name)
        people = [(r.name, r.role) for r in conn.execute(
            sa.select(users.c.name, roles.c.role).join(users, users.c.id == roles.c.user_id)
            .where(roles.c.project_id == project_id).order_by(roles.c.role.desc(), users.c.name))]
        pending = [(r.name, r.role, bool(r.transfer)) for r in conn.execute(
            sa.select(users.c.name, invitations.c.role, invitations.c.transfer)
            .join(users, users.c.id == invitations.c.user_id)
            .where(invitations.c.project_id == project_id, invitations.c.answered_at.is_(None)))]
    name = view.normalized_name
    rows, all_files = _release_actions(view, actor, policy, now)
    facts_p = ProjectFacts(name, view.status, view.status_reason)
    status = {verb: may_change_status(actor, facts_p, target, "checking")
              for verb, target in (("archive", "archived"), ("unarchive", "active"),
                                   ("deprecate", "deprecated"), ("undeprecate", "active"))}
    if view.deletions_disabled_at is not None:
        disable = Decision.deny("deletions-disabled", f"deletions were turned off on "
                                f"{view.deletions_disabled_at:%d %b %Y %H:%M} UTC, for good")
    else:
        disable = may_disable_deletions(actor, name)
    transfer = may_invite(actor, name)
    if transfer.allowed and actor.role != "owner":
        transfer = Decision.deny("no-role", "a transfer hands over your own place as owner; you have none here")
    manage = ManageView(
        project=view, actor=actor, now=now, people=people, pending=pending, releases=rows,
        yank=may_yank(actor, name), status=status, disable_deletions=disable,
        delete_project=may_delete_files(actor, name, view.deletions_disabled_at, all_files, policy, now),
        announce_removal=(Decision.deny("removal-announced", "a removal is already announced")
                          if view.removal_at is not None
                          else may_announce_removal(actor, name, policy.removal_grace, policy)),
        cancel_removal=may_cancel_removal(actor, name, view.removal_at, now),
        invite=may_invite(actor, name), transfer=transfer, leave=may_leave(actor, name),
    )
    return _behind_two_factor(manage, two_factor) if not two_factor.allowed else manage


def _release_actions(view: ProjectView, actor: Actor, policy: LifecyclePolicy,
                     now: datetime) -> tuple[list[ReleaseActions], list[FileFacts]]:
    """Each live release, newest first, with its files and the user's decisions on them; and
    every live file's facts (for deleting the whole project)."""
    name = view.normalized_name
    live = [r for r in view.releases if not r.deleted]
    facts = release_facts(name, [(Version(r.version), r.created_at, r.reopened_until) for r in live])
    rows: list[ReleaseActions] = []
    all_files: list[FileFacts] = []
    for r in reversed(live):
        fact = facts[Version(r.version)]
        entries = []
        for f in view.files:
            if f.version != r.version or f.deleted_at is not None:
                continue
            ff = FileFacts(f.filename, Version(f.version), f.upload_time)
            all_files.append(ff)
            entries.append(FileActions(f, may_delete_file(actor, name, view.deletions_disabled_at, ff, policy, now),
                                       f.upload_time + policy.deletion_window))
        window = check_upload_window(fact, policy, now)
        if window.allowed:
            reopen = Decision.deny("upload-window", f"release {r.version} still accepts new files",
                                   until=window.until)
        else:
            reopen = may_reopen(actor, fact, policy.reopen_period, policy, now)
        delete = may_delete_files(actor, name, view.deletions_disabled_at, [
            FileFacts(e.file.filename, Version(e.file.version), e.file.upload_time) for e in entries], policy, now)
        rows.append(ReleaseActions(r, entries, window, upload_window_closes(fact, policy),
                                   bool(entries) and all(e.file.yanked for e in entries), reopen, delete))
    return rows, all_files


def _behind_two_factor(view: ManageView, refusal: Decision) -> ManageView:
    """Every action the 2FA rule stops shows its refusal; leaving stays open (a way out)."""
    def gate(decision: Decision) -> Decision:
        return refusal if decision.allowed else decision

    releases = [replace(r, files=[replace(f, delete=gate(f.delete)) for f in r.files], reopen=gate(r.reopen),
                        delete=gate(r.delete)) for r in view.releases]
    return replace(view, releases=releases, yank=gate(view.yank),
                   status={k: gate(v) for k, v in view.status.items()},
                   disable_deletions=gate(view.disable_deletions), delete_project=gate(view.delete_project),
                   announce_removal=gate(view.announce_removal), cancel_removal=gate(view.cancel_removal),
                   invite=gate(view.invite), transfer=gate(view.transfer),
                   notes=[*view.notes, refusal.reason or ""])
