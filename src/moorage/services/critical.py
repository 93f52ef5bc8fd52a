"""The daily job: which projects are critical, from 30-day downloads (or the operator's list).

A designation is public (an event anyone can read, the project page, the JSON API) and gives
the project's maintainers `critical_grace` before the 2FA rule applies to them. A project whose
downloads jumped more than `download_jump` times week over week is not designated: it is
flagged for an admin, who confirms (designated on the next run) or dismisses it (the downloads
are not trusted; held out for 30 days). So a swarm of downloads alone cannot lock an author out.

With the top-N% rule a designation stays once made, as a label that flickered at the
boundary would restart grace periods; with a list it follows the list; with "none" there are none.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from moorage.domain.accounts import AccountPolicy, critical_threshold, is_jump
from moorage.domain.decisions import Denied, not_found
from moorage.domain.names import normalize
from moorage.services.context import Context
from moorage.services.events import append_event
from moorage.store.tables import critical_projects, download_counts, download_flags, job_runs, projects

_log = logging.getLogger(__name__)
JOB = "critical-projects"
DAY = timedelta(days=1)
DISMISSAL_HOLD = timedelta(days=30)


@dataclass
class DailyReport:
    ran: bool
    at: datetime
    designated: list[str] = field(default_factory=list)  # newly critical
    released: list[str] = field(default_factory=list)  # no longer critical (list or "none" rules)
    flagged: list[str] = field(default_factory=list)  # jumps held for an admin
    critical: list[str] = field(default_factory=list)  # all critical projects after the run
    next_run: datetime | None = None


def _sums(conn: Connection, first: date, last: date) -> dict[str, int]:
    """Client downloads per project (normalized name) on the UTC days first..last inclusive."""
    rows = conn.execute(
        sa.select(projects.c.normalized_name, sa.func.sum(download_counts.c.count))
        .join(download_counts, download_counts.c.project_id == projects.c.id)
        .where(download_counts.c.kind == "client", download_counts.c.day >= first, download_counts.c.day <= last,
               projects.c.deleted_at.is_(None))
        .group_by(projects.c.normalized_name)
    ).all()
    return {name: int(total or 0) for name, total in rows}


@dataclass
class _Seen:
    """What a run reads: client downloads (30 days, this week, the week before), the projects,
    their designations and their download flags (the latest per project)."""

    now: datetime
    month: dict[str, int]
    week: dict[str, int]
    previous: dict[str, int]
    ids: dict[str, int]
    current: dict[str, sa.Row]
    flags: dict[str, sa.Row]

    def held(self, policy: AccountPolicy, name: str) -> bool:
        """Downloads an admin has not vouched for: an open flag, a recent dismissal, a new jump."""
        flag = self.flags.get(name)
        if flag is not None and flag.reviewed_at is None:
            return True
        if flag is not None and flag.decision == "dismissed" and self.now - flag.reviewed_at < DISMISSAL_HOLD:
            return True
        confirmed = flag is not None and flag.decision == "confirmed"
        return (policy.critical.kind == "top" and not confirmed and name not in self.current
                and is_jump(policy, self.week.get(name, 0), self.previous.get(name, 0)))


def _read(conn: Connection, now: datetime) -> _Seen:
    today = now.date()
    month = _sums(conn, today - timedelta(days=29), today)
    week = _sums(conn, today - timedelta(days=6), today)
    previous = _sums(conn, today - timedelta(days=13), today - timedelta(days=7))
    ids = {r.normalized_name: r.id for r in conn.execute(
        sa.select(projects.c.id, projects.c.normalized_name).where(projects.c.deleted_at.is_(None)))}
    current = {r.normalized_name: r for r in conn.execute(
        sa.select(projects.c.normalized_name, critical_projects.c.project_id)
        .join(critical_projects, critical_projects.c.project_id == projects.c.id))}
    flags = {r.normalized_name: r for r in conn.execute(
        sa.select(projects.c.normalized_name, download_flags.c.id, download_flags.c.flagged_at,
                  download_flags.c.reviewed_at, download_flags.c.decision)
        .join(download_flags, download_flags.c.project_id == projects.c.id)
        .order_by(download_flags.c.flagged_at))}  # the latest flag per project wins
    return _Seen(now, month, week, previous, ids, current, flags)


def run_daily(ctx: Context, *, force: bool = False) -> DailyReport:
    """Recompute the critical projects, at most once a day unless forced. One transaction."""
    policy = ctx.settings.accounts
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        last = conn.execute(sa.select(job_runs.c.last_run_at).where(job_runs.c.name == JOB)
                            .with_for_update()).scalar()
        if last is not None and not force and now - last < DAY:
            return DailyReport(False, now, next_run=last + DAY)
        seen = _read(conn, now)
        report = DailyReport(True, now)
        # The rule runs on trusted counts only, so a swarm on one project neither makes it
        # critical nor pushes a real one out of the top.
        trusted = {name: n for name, n in seen.month.items() if name in seen.ids and not seen.held(policy, name)}
        wanted = critical_threshold(policy, trusted) & set(seen.ids)
        counted = {n: c for n, c in seen.month.items() if n in seen.ids}
        report.flagged = _flag(conn, policy, seen, sorted(critical_threshold(policy, counted) - set(trusted)))
        if policy.critical.kind != "top":  # a list or "none": exactly what the rule says
            report.released = _release(conn, policy, seen, sorted(set(seen.current) - wanted))
        report.designated = _designate(conn, policy, seen, sorted(wanted - set(seen.current)))
        if last is None:
            conn.execute(job_runs.insert().values(name=JOB, last_run_at=now))
        else:
            conn.execute(job_runs.update().where(job_runs.c.name == JOB).values(last_run_at=now))
        report.critical = sorted(conn.execute(
            sa.select(projects.c.normalized_name)
            .join(critical_projects, critical_projects.c.project_id == projects.c.id)).scalars())
        report.next_run = now + DAY
    return report


def _flag(conn: Connection, policy: AccountPolicy, seen: _Seen, untrusted: list[str]) -> list[str]:
    """A flag for an admin on each project the rule would designate on downloads it does not trust."""
    flagged = []
    now, week, previous = seen.now, seen.week, seen.previous
    for name in untrusted:
        flag = seen.flags.get(name)
        if name in seen.current or (flag is not None and flag.reviewed_at is None):
            continue  # already critical, or already waiting for an admin
        if flag is not None and flag.decision == "dismissed":
            continue  # dismissed recently: held out quietly
        conn.execute(download_flags.insert().values(
            project_id=seen.ids[name], flagged_at=now, week=week.get(name, 0), previous_week=previous.get(name, 0)))
        append_event(conn, now=now, actor="system", action="downloads-jump-flagged", subject=f"project:{name}",
                     project=name, payload={"project": name, "week": week.get(name, 0),
                                            "previous_week": previous.get(name, 0),
                                            "factor": policy.download_jump})
        flagged.append(name)
    return flagged


def _release(conn: Connection, policy: AccountPolicy, seen: _Seen, names: list[str]) -> list[str]:
    for name in names:
        conn.execute(critical_projects.delete().where(critical_projects.c.project_id == seen.ids[name]))
        append_event(conn, now=seen.now, actor="system", action="project-no-longer-critical",
                     subject=f"project:{name}", project=name,
                     payload={"project": name, "rule": policy.critical.describe()})
    return names


def _designate(conn: Connection, policy: AccountPolicy, seen: _Seen, names: list[str]) -> list[str]:
    now = seen.now
    for name in names:
        grace_until = now + policy.critical_grace
        conn.execute(critical_projects.insert().values(
            project_id=seen.ids[name], since=now, grace_until=grace_until, rule=policy.critical.describe(),
            downloads_30d=seen.month.get(name)))
        append_event(conn, now=now, actor="system", action="project-became-critical", subject=f"project:{name}",
                     project=name, payload={"project": name, "rule": policy.critical.describe(),
                                            "downloads_30d": seen.month.get(name, 0), "since": now.isoformat(),
                                            "grace_until": grace_until.isoformat()})
    return names


@dataclass(frozen=True)
class Flag:
    project: str
    flagged_at: datetime
    week: int
    previous_week: int
    reviewed_at: datetime | None
    reviewed_by: str | None
    decision: str | None


def list_flags(ctx: Context, *, open_only: bool = True) -> list[Flag]:
    with ctx.db.read() as conn:
        query = (sa.select(projects.c.normalized_name, download_flags)
                 .join(download_flags, download_flags.c.project_id == projects.c.id)
                 .order_by(download_flags.c.flagged_at))
        if open_only:
            query = query.where(download_flags.c.reviewed_at.is_(None))
        return [Flag(r.normalized_name, r.flagged_at, int(r.week), int(r.previous_week), r.reviewed_at,
                     r.reviewed_by, r.decision) for r in conn.execute(query)]


def review_flag(ctx: Context, project: str, decision: str, *, reason: str, actor: str) -> None:
    """An admin's answer to a jump: "confirm" (designate on the next run) or "dismiss"."""
    if decision not in ("confirm", "dismiss"):
        raise Denied.by("invalid-decision", "answer a flag with confirm or dismiss")
    if not reason.strip():
        raise Denied.by("reason-required", "a review of a download flag needs a reason")
    name = normalize(project)
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        row = conn.execute(
            sa.select(download_flags.c.id).join(projects, projects.c.id == download_flags.c.project_id)
            .where(projects.c.normalized_name == name, download_flags.c.reviewed_at.is_(None))
            .order_by(download_flags.c.flagged_at.desc()).limit(1)
        ).first()
        if row is None:
            raise not_found(f"no open download flag for {name}")
        conn.execute(download_flags.update().where(download_flags.c.id == row.id).values(
            reviewed_at=now, reviewed_by=actor, decision=f"{decision}ed"))
        append_event(conn, now=now, actor=actor, action="downloads-jump-reviewed", subject=f"project:{name}",
                     project=name, payload={"project": name, "decision": f"{decision}ed", "reason": reason})


def keep_running_daily(ctx: Context, stop: threading.Event, check_every: float = 3600.0) -> None:
    """For `moorage serve`: run the job when a day has passed since its last run (the database
    says when, so several servers run it once between them). Failures are logged and retried."""
    while not stop.is_set():
        try:
            report = run_daily(ctx)
            if report.ran:
                _log.info("critical projects: %d (new: %s; flagged: %s)", len(report.critical),
                          ", ".join(report.designated) or "none", ", ".join(report.flagged) or "none")
        except Exception:  # noqa: BLE001 - a failed run is retried at the next check
            _log.warning("the daily critical-project job failed; it is retried in %.0f s", check_every,
                         exc_info=True)
        stop.wait(check_every)
