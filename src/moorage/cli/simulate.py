"""`moorage policy simulate`: replay an upload history through a policy (the one in force, or
a proposed one) and say what it would have refused. Reads only; changes nothing."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from moorage.config import ConfigError, load_settings, parse_duration
from moorage.domain.clock import SystemClock
from moorage.domain.lifecycle import LifecyclePolicy
from moorage.domain.simulation import ProjectHistory, Simulation, SimulationResult
from moorage.histories import Advance, HistoryError, read_index, read_path

err = Console(stderr=True, highlight=False, markup=False, soft_wrap=True)


def register(policy: Any) -> None:
    """Add `simulate` to the `moorage policy` sub-commands."""
    sim = policy.add_parser(
        "simulate", help="replay an upload history through a policy: what it would have refused",
        description="Replay every file upload of a history, in time order per project, through the upload-window "
                    "and deletion-window rules. With neither --history nor --index, the local index's own "
                    "history is replayed.")
    sim.add_argument("--config", help="TOML configuration whose [policy] is simulated (or MOORAGE_CONFIG); "
                                      "also locates the local index")
    sim.add_argument("--data-dir", help="the local index's data directory (or MOORAGE_DATA_DIR)")
    source = sim.add_mutually_exclusive_group()
    source.add_argument("--history", metavar="FILE_OR_DIR",
                        help="JSON lines, one PEP 691 project page per line (gzip accepted), or a directory of "
                             "saved pages (*.json, *.json.gz)")
    source.add_argument("--index", metavar="URL", help="read the pages live from this PEP 691 index (its simple root)")
    sim.add_argument("--project", nargs="+", metavar="P", action="extend", help="with --index: the projects to read")
    sim.add_argument("--upload-window", metavar="DURATION", help="e.g. 7d, 72h (overrides [policy] upload_window)")
    sim.add_argument("--close-on-newer-release", action=argparse.BooleanOptionalAction, default=None,
                     help="a release also closes once a newer version has a file")
    sim.add_argument("--deletion-window", metavar="DURATION", help="e.g. 72h (overrides [policy] deletion_window)")
    sim.add_argument("--at", metavar="INSTANT",
                     help="count the files deletable at this instant (ISO 8601, UTC if no offset; default: now)")
    sim.add_argument("--top", type=int, default=10, metavar="N", help="list the N longest-open releases (default 10)")
    sim.add_argument("--json", action="store_true", help="one JSON document on stdout")
    sim.set_defaults(func=cmd_simulate)


def _policy(args: argparse.Namespace) -> tuple[LifecyclePolicy, Any]:
    settings = load_settings(args.config, data_dir=args.data_dir)
    policy = settings.lifecycle
    if args.upload_window is not None:
        policy = replace(policy, upload_window=parse_duration(args.upload_window, "--upload-window"))
    if args.deletion_window is not None:
        policy = replace(policy, deletion_window=parse_duration(args.deletion_window, "--deletion-window"))
    if args.close_on_newer_release is not None:
        policy = replace(policy, close_on_newer_release=args.close_on_newer_release)
    return policy, settings


def _instant(text: str | None) -> datetime:
    if text is None:
        return SystemClock().now()
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--at: expected an ISO 8601 instant such as 2026-11-22T12:00:00Z, got {text!r}") from None
    return instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant.astimezone(UTC)


def _local_histories(settings: Any, stack: ExitStack, progress: Progress) -> Iterator[ProjectHistory]:
    from moorage.store.database import Database
    from moorage.store.history import count_projects, upload_histories

    if settings.is_embedded and not (settings.data_dir / "moorage.db").exists():
        raise HistoryError(f"no local index in {settings.data_dir}: give --history or --index, or --data-dir")
    db = Database(settings.db_url)
    stack.callback(db.dispose)
    conn = stack.enter_context(db.read())
    task = progress.add_task("projects", total=count_projects(conn))
    for history in upload_histories(conn):
        yield history
        progress.advance(task)


def cmd_simulate(args: argparse.Namespace) -> int:
    if args.top < 0:
        raise ConfigError("--top: expected a number of at least 0")
    if args.project and not args.index:
        raise ConfigError("--project needs --index (a history file names its projects itself)")
    if args.index and not args.project:
        raise ConfigError("--index needs the projects to read: --project P [P ...]")
    policy, settings = _policy(args)
    at = _instant(args.at)
    simulation = Simulation(policy, at, top=args.top)
    console = Console(stderr=True)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        console=console, disable=not console.is_terminal, transient=True)
    try:
        with progress, ExitStack() as stack:
            histories: Iterator[ProjectHistory]
            if args.history:
                path = Path(args.history)
                total = len(list(path.glob("*.json*"))) if path.is_dir() else (path.stat().st_size
                                                                               if path.is_file() else None)
                task = progress.add_task("replaying", total=total)
                advance: Advance = lambda n: progress.advance(task, n)  # noqa: E731
                histories = read_path(path, advance)
            elif args.index:
                task = progress.add_task("pages", total=len(args.project))
                histories = read_index(args.index, args.project, lambda n: progress.advance(task, n))
            else:
                histories = _local_histories(settings, stack, progress)
            result = simulation.replay_all(histories)
    except HistoryError as exc:
        err.print(f"moorage: history: {exc}")
        return 2
    if args.json:
        json.dump(as_json(result), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print_report(result, args.top)
    return 0


def _policy_dict(policy: LifecyclePolicy) -> dict[str, Any]:
    return {"upload_window_seconds": policy.upload_window.total_seconds(),
            "close_on_newer_release": policy.close_on_newer_release,
            "deletion_window_seconds": policy.deletion_window.total_seconds(),
            "prereleases_deletable": policy.prereleases_deletable}


def as_json(result: SimulationResult) -> dict[str, Any]:
    return {
        "policy": _policy_dict(result.policy),
        "projects": result.projects,
        "releases": result.releases,
        "files": result.files,
        "refused_releases": result.refused_releases,
        "refused_projects": result.refused_projects,
        "refused_files": result.refused_files,
        "unparsed_files": result.unparsed_files,
        "gap_seconds": result.gap_summary(),
        "top_gaps": [{"project": g.project, "version": g.version, "files": g.files, "gap_seconds": g.gap_seconds}
                     for g in result.top_gaps],
        "refused": [{"project": r.project, "version": r.version, "filename": r.filename, "rule": r.rule,
                     "delay_seconds": r.delay_seconds, "late_seconds": r.late_seconds, "reason": r.reason}
                    for r in result.refused],
        "unparsed": [{"project": u.project, "filename": u.filename, "reason": u.reason} for u in result.unparsed],
        "deletable": {"at": result.at.isoformat().replace("+00:00", "Z"),
                      "files": sum(result.deletable.values()), "by_rule": dict(sorted(result.deletable.items()))},
    }


def duration(seconds: float | None) -> str:
    """13d 23h, 2h 05m, 45s: short enough for a table cell."""
    if seconds is None:
        return "-"
    delta = timedelta(seconds=round(seconds))
    days, rest = delta.days, delta.seconds
    hours, minutes, secs = rest // 3600, rest % 3600 // 60, rest % 60
    if days:
        return f"{days}d {hours:02d}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def print_report(result: SimulationResult, top: int) -> None:
    out = Console(highlight=False, soft_wrap=False, width=max(Console().width, 120))
    policy = result.policy
    rule = (f"upload window {duration(policy.upload_window.total_seconds())}"
            f"{', closes on a newer release' if policy.close_on_newer_release else ''}; "
            f"deletion window {duration(policy.deletion_window.total_seconds())}")
    out.print(Text(f"Simulated policy: {rule}"))
    summary = Table(show_header=False)
    summary.add_column("what")
    summary.add_column("count", justify="right")
    for label, value in (("projects", result.projects), ("releases", result.releases), ("files", result.files),
                         ("files whose version or upload time cannot be read", result.unparsed_files),
                         ("projects with a refused upload", result.refused_projects),
                         ("releases with a refused upload", result.refused_releases),
                         ("files refused", result.refused_files),
                         (f"files deletable at {result.at:%Y-%m-%d %H:%M} UTC", sum(result.deletable.values()))):
        summary.add_row(Text(label), Text(f"{value:,}"))
    out.print(summary)
    gaps = result.gap_summary()
    spread = Table(title="Time from a release's first file to its last")
    for column in ("median", "p90", "p99", "max"):
        spread.add_column(column, justify="right")
    spread.add_row(*(duration(gaps[k]) for k in ("median", "p90", "p99", "max")))
    out.print(spread)
    if result.top_gaps:
        longest = Table(title=f"The {len(result.top_gaps)} longest-open releases")
        for column in ("project", "version", "files", "first to last"):
            longest.add_column(column, justify="right" if column in ("files", "first to last") else "left")
        for g in result.top_gaps:
            longest.add_row(Text(g.project), Text(g.version), str(g.files), duration(g.gap_seconds))
        out.print(longest)
    if result.refused:
        shown = sorted(result.refused, key=lambda r: r.delay_seconds, reverse=True)[:max(top, 1)]
        refused = Table(title=f"Refused files ({len(shown)} of {result.refused_files}, the latest first; "
                              "--json lists all)")
        for column in ("project", "version", "filename", "rule", "after the first file", "after closing"):
            refused.add_column(column)
        for r in shown:
            refused.add_row(Text(r.project), Text(r.version), Text(r.filename), r.rule, duration(r.delay_seconds),
                            duration(r.late_seconds))
        out.print(refused)
    if result.unparsed:
        unparsed = Table(title=f"Files not replayed ({result.unparsed_files}; --json lists all)")
        for column in ("project", "filename", "why"):
            unparsed.add_column(column)
        for u in result.unparsed[:max(top, 1)]:
            unparsed.add_row(Text(u.project), Text(u.filename), Text(u.reason))
        out.print(unparsed)
