"""`moorage audit LOCKFILE`: what became of the pinned files on the index (yanked, deprecated,
archived, quarantined, pending removal, missing, replaced bytes, a newer release).

A client of any PEP 691 index, like `verify`: no configuration, no data directory. Exit
status 0 (nothing at or above --fail-on), 1 (something is), 2 (the lock file, the options
or the index could not be used: a one-line message on stderr, never a traceback).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

from rich.console import Console

from moorage.audit import fetch
from moorage.audit.fetch import FetchError
from moorage.audit.findings import ORDER, Kind, audit, checked_files, fails, page_key, parse_fail_on, probe_urls
from moorage.audit.lockfiles import LockedPackage, LockFileError, detect_format, parse_lockfile
from moorage.audit.report import FORMATS, Report, print_table, render_github, render_json

EXIT_FINDINGS = 1
EXIT_USAGE = 2


class UsageError(Exception):
    pass


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `audit` to the CLI's subcommands."""
    kinds = ", ".join(k.value for k in ORDER)
    p = sub.add_parser(
        "audit", help="check a lock file against an index: yanked, deprecated, removed or replaced pins",
        description="Check every file a lock file pins against the index's PEP 691 pages. The lock file's "
                    "format comes from its name: pylock.toml or pylock.NAME.toml (PEP 751), uv.lock, "
                    "poetry.lock, anything else is a requirements.txt with == pins and --hash options.")
    p.add_argument("lockfile", metavar="LOCKFILE", help="pylock.toml, uv.lock, poetry.lock or requirements.txt")
    p.add_argument("--index", metavar="URL",
                   help="the index's simple root (e.g. http://127.0.0.1:8080/simple/); default: the index the "
                        "lock file records")
    p.add_argument("--fail-on", metavar="KIND", default="yanked",
                   help=f"exit 1 if a finding of this kind or a more severe one is present (most severe first: "
                        f"{kinds}); `none`: never (default: yanked)")
    p.add_argument("--format", metavar="FORMAT", default=None, help="table (default), json or github")
    p.add_argument("--json", action="store_true", help="the same as --format json")
    p.add_argument("--download", action="store_true",
                   help="download every pinned file and compare its sha256 with the lock (default: a HEAD "
                        "request compares the size)")
    p.set_defaults(func=cmd_audit)


def _output_format(args: argparse.Namespace) -> str:
    chosen = args.format or ("json" if args.json else "table")
    if chosen not in FORMATS:
        raise UsageError(f"--format: expected one of {', '.join(FORMATS)}; got {chosen!r}")
    if args.json and chosen != "json":
        raise UsageError(f"--json and --format {chosen} contradict each other")
    return chosen


def _with_index(packages: list[LockedPackage], given: str | None, lockfile: str) -> list[LockedPackage]:
    """Each package with the index to ask: --index for all, else the one the lock records."""
    if given is not None:
        root = fetch.index_root(given)
        return [dataclasses.replace(p, index=root) for p in packages]
    unrecorded = [p.name for p in packages if not p.index]
    if unrecorded or not packages:
        which = f" (for {', '.join(unrecorded[:3])}{', ...' if len(unrecorded) > 3 else ''})" if unrecorded else ""
        raise UsageError(f"{lockfile} records no index{which}: give --index URL, the index's simple root "
                         "(moorage has no default index)")
    return [dataclasses.replace(p, index=fetch.index_root(p.index or "")) for p in packages]


def run_audit(lockfile: str, *, index: str | None, download: bool) -> Report:
    """Read the lock file, ask the index, compare."""
    path = Path(lockfile)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{lockfile}: not UTF-8 text") from None
    except OSError as exc:
        raise UsageError(f"cannot read {lockfile}: {exc.strerror or exc}") from None
    try:
        packages = parse_lockfile(text, detect_format(path))
    except LockFileError as exc:
        raise UsageError(f"{lockfile}: {exc}") from None
    packages = _with_index(packages, index, lockfile)
    page_urls = {page_key(p): fetch.project_url(p.index or "", p.name) for p in packages}
    fetched = fetch.fetch_pages(page_urls.values())
    pages = {key: fetched[url] for key, url in page_urls.items()}
    urls = [url for p in packages for url in probe_urls(p, pages[page_key(p)])]
    served = fetch.probe(urls, download_files=download)
    # An empty lock has no packages to carry the index: then it is --index (_with_index needs one).
    indexes = sorted({p.index or "" for p in packages}) or [fetch.index_root(index or "")]
    return Report(lockfile, indexes[0] if len(indexes) == 1 else indexes, checked_files(packages),
                  audit(packages, pages, served))


def cmd_audit(args: argparse.Namespace) -> int:
    try:
        output = _output_format(args)
        try:
            threshold: Kind | None = parse_fail_on(args.fail_on)
        except ValueError as exc:
            raise UsageError(f"--fail-on: {exc}") from None
        report = run_audit(args.lockfile, index=args.index, download=args.download)
    except (UsageError, FetchError) as exc:
        message = " ".join(str(exc).split())  # one line, whatever the index or the file said
        print(f"moorage: audit: {message}", file=sys.stderr)
        return EXIT_USAGE
    status = EXIT_FINDINGS if fails(report.findings, threshold) else 0
    try:
        if output == "json":
            print(render_json(report))
        elif output == "github":
            for line in render_github(report, threshold):
                print(line)
        else:
            # In a CI log (no terminal) a narrow default width would fold every hash in two.
            wide = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 200
            print_table(report, Console(highlight=False, width=wide))
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`| head`): the status still tells; no traceback at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return status
