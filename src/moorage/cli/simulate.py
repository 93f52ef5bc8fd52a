"""`moorage policy simulate`: replay an upload history through a policy (the one in force, or
a proposed one) and say what it would have refused. Reads only; changes nothing."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from moorage.audit.histories import HistoryError, read_index, read_path
from moorage.config import ConfigError, load_settings, parse_duration
from moorage.domain.lifecycle import LifecyclePolicy
from moorage.domain.simulation import ProjectHistory, Refusal, Simulation, SimulationResult, Unparsed
from moorage.services.clocks import SystemClock
from moorage.store.admin import DatabaseUnreadable, local_upload_histories

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


def _local_histories(settings: Any, progress: Progress) -> Iterator[ProjectHistory]:
    if settings.is_embedded and not (settings.data_dir / "moorage.db").exists():
        raise HistoryError(f"no local index in {settings.data_dir}: give --history or --index, or --data-dir")
    tasks: list[TaskID] = []
    try:
        for history in local_upload_histories(
                settings.db_url, lambda total: tasks.append(progress.add_task("projects", total=total))):
            yield history
            progress.advance(tasks[0])
    except DatabaseUnreadable as exc:
        raise HistoryError(f"the local index's database cannot be read: {exc}") from None


def cmd_simulate(args: argparse.Namespace) -> int:
    if args.top < 0:
        raise ConfigError("--top: expected a number of at least 0")
    if args.project and not args.index:
        raise ConfigError("--project needs --index (a history file names its projects itself)")
    if args.index and not args.project:
        raise ConfigError("--index needs the projects to read: --project P [P ...]")
    policy, settings = _policy(args)
    at = _instant(args.at)
    # Refusals and unreadable files go to spool files as they happen, so memory stays bounded by
    # releases however many files a history refuses; the report reads them back.
    with tempfile.TemporaryFile("w+", encoding="utf-8") as refused, \
            tempfile.TemporaryFile("w+", encoding="utf-8") as unparsed:
        simulation = Simulation(policy, at, top=args.top,
                                on_refused=lambda r: _spool(refused, refusal_json(r)),
                                on_unparsed=lambda u: _spool(unparsed, unparsed_json(u)))
        try:
            result = simulation.replay_all(_histories(args, settings))
        except HistoryError as exc:
            err.print(f"moorage: history: {exc}")
            return 2
        refused.seek(0)
        unparsed.seek(0)
        if args.json:
            write_json(result, refused, unparsed, sys.stdout)
        else:
            first = [json.loads(line) for line, _ in zip(unparsed, range(max(args.top, 1)), strict=False)]
            print_report(result, first)
    return 0


def _spool(spool: IO[str], item: dict[str, Any]) -> None:
    spool.write(json.dumps(item) + "\n")


def _histories(args: argparse.Namespace, settings: Any) -> Iterator[ProjectHistory]:
    """The histories asked for, with a progress bar on stderr when that is a terminal."""
    console = Console(stderr=True)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        console=console, disable=not console.is_terminal, transient=True)
    with progress:
        if args.history:
            path = Path(args.history)
            total = (len([p for p in path.iterdir() if p.name.endswith((".json", ".json.gz"))]) if path.is_dir()
                     else path.stat().st_size if path.is_file() else None)
            task = progress.add_task("replaying", total=total)
            yield from read_path(path, lambda n: progress.advance(task, n))
        elif args.index:
            task = progress.add_task("pages", total=len(args.project))
            yield from read_index(args.index, args.project, lambda n: progress.advance(task, n))
        else:
            yield from _local_histories(settings, progress)


def _policy_dict(policy: LifecyclePolicy) -> dict[str, Any]:
    return {"upload_window_seconds": policy.upload_window.total_seconds(),
            "close_on_newer_release": policy.close_on_newer_release,
            "deletion_window_seconds": policy.deletion_window.total_seconds(),
            "prereleases_deletable": policy.prereleases_deletable}


def refusal_json(r: Refusal) -> dict[str, Any]:
    return {"project": r.project, "version": r.version, "filename": r.filename, "rule": r.rule,
            "delay_seconds": r.delay_seconds, "late_seconds": r.late_seconds, "reason": r.reason}


def unparsed_json(u: Unparsed) -> dict[str, Any]:
    return {"project": u.project, "filename": u.filename, "reason": u.reason}


def summary_json(result: SimulationResult) -> dict[str, Any]:
    """Everything but the full lists of refused and unreadable files."""
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
        "deletable": {"at": result.at.isoformat().replace("+00:00", "Z"),
                      "files": sum(result.deletable.values()), "by_rule": dict(sorted(result.deletable.items()))},
    }


def write_json(result: SimulationResult, refused: IO[str], unparsed: IO[str], out: IO[str]) -> None:
    """One JSON document; the two long lists are copied from their spools a line at a time."""
    head = json.dumps(summary_json(result), indent=2)
    out.write(head[:-2])  # without the closing "\n}"
    for key, lines in (("refused", refused), ("unparsed", unparsed)):
        out.write(f',\n  "{key}": [')
        for n, line in enumerate(lines):
            out.write(("," if n else "") + "\n    " + line.rstrip("\n"))
        out.write("\n  ]")
    out.write("\n}\n")


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


def print_report(result: SimulationResult, unparsed_head: list[dict[str, Any]]) -> None:
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
    if result.latest_refused:
        shown = result.latest_refused
        refused = Table(title=f"Refused files ({len(shown)} of {result.refused_files}, the latest first; "
                              "--json lists all)")
        for column in ("project", "version", "filename", "rule", "after the first file", "after closing"):
            refused.add_column(column)
        for r in shown:
            refused.add_row(Text(r.project), Text(r.version), Text(r.filename), r.rule, duration(r.delay_seconds),
                            duration(r.late_seconds))
        out.print(refused)
    if unparsed_head:
        unparsed = Table(title=f"Files not replayed ({len(unparsed_head)} of {result.unparsed_files}; "
                               "--json lists all)")
        for column in ("project", "filename", "why"):
            unparsed.add_column(column)
        for u in unparsed_head:
            unparsed.add_row(Text(u["project"]), Text(u["filename"]), Text(u["reason"]))
        out.print(unparsed)
