"""`moorage`: serve the index and administer it."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sqlite3
import sys
from collections.abc import Callable, Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy.exc import DBAPIError

from moorage import __version__
from moorage.cli import audit, simulate
from moorage.cli import critical as critical_cli
from moorage.cli import factors as factors_cli
from moorage.cli import fsck as fsck_cli
from moorage.config import ConfigError, Settings, load_settings, policy_rules
from moorage.domain.decisions import Decision, Denied
from moorage.log.note import NoteError
from moorage.services import accounts, bootstrap, checks, deletion, handover, lifecycle, removal, roles
from moorage.services.context import Context, open_context
from moorage.store import preflight

EXIT_DENIED = 3
EXIT_NOT_FOUND = 4
EXIT_CLOSED_PIPE = 141  # as a shell's writer killed by SIGPIPE: `moorage events | head` ends quietly
# Who a command run at the CLI acts as, in every event it records: the operator (an admin),
# unless --as USER (docs/lifecycle.md, "Acting as someone"). What the index does on its own
# (the first start's account, the daily job) is "system".
OPERATOR = lifecycle.OPERATOR.name
# Messages carry user text (names, config keys such as [upload], file paths): no markup, and
# no line breaks inserted at the terminal width, so each message stays one greppable line.
err = Console(stderr=True, highlight=False, markup=False, soft_wrap=True)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="TOML configuration file (or MOORAGE_CONFIG)")
    p.add_argument("--data-dir", help="data directory (or MOORAGE_DATA_DIR; default ./moorage-data)")


# The settings this command runs with: main() names their database when it cannot be used.
_loaded: Settings | None = None


def _settings(args: argparse.Namespace, **overrides: object) -> Settings:
    global _loaded
    _loaded = load_settings(args.config, data_dir=args.data_dir, **overrides)  # type: ignore[arg-type]
    return _loaded


def _context(args: argparse.Namespace) -> Context:
    """The index of an existing data directory, its database opened and checked."""
    return bootstrap.open_index(_settings(args))


# -- serve ----------------------------------------------------------------------------------
def _first_start(ctx: Context, host: str, port: int) -> None:
    """On a first start: an admin account and a one-time upload token, with usage lines."""
    made = bootstrap.first_start(ctx)
    if made is None:
        return
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    base = f"http://{shown}:{port}"
    print(f"""
moorage: first start, created the admin account.
  user:     {made.user}
  password: {made.password}
  upload token (shown once, keep it safe):
    {made.token}

Install:
  pip install --index-url {base}/simple/ PROJECT
  uv pip install --index-url {base}/simple/ PROJECT
Upload:
  twine upload --repository-url {base}/legacy/ -u __token__ -p {made.token} dist/*
  uv publish --publish-url {base}/legacy/ --token {made.token} dist/*
""", flush=True)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = _settings(args, host=args.host, port=args.port, workers=args.workers)
    import logging.config

    from moorage import oplog

    log_config = oplog.serve_logging(args.access_log)
    logging.config.dictConfig(log_config)
    # The first start makes the data directory; every start checks it can write what it must.
    try:
        ctx = bootstrap.open_for_serving(settings)
    except bootstrap.SchemaNotCurrent:
        err.print("moorage: the database schema is not current; run `moorage db upgrade` first")
        return 2
    swept = bootstrap.sweep_temporary(ctx)  # left by a crash, older than an hour
    if swept:
        print(f"moorage: removed {swept} temporary file(s) older than an hour from {ctx.blobs.tmp}", flush=True)
    bootstrap.ensure_log_key(settings)  # before the workers: one key
    _first_start(ctx, settings.host, settings.port)
    import threading

    from moorage.services.critical import keep_running_daily

    # One thread in this (the supervising) process, however many workers serve requests.
    threading.Thread(target=keep_running_daily, args=(open_context(settings), threading.Event()),
                     name="daily-jobs", daemon=True).start()
    print(f"moorage {__version__} serving {settings.data_dir.resolve()} on http://{settings.host}:{settings.port}/",
          flush=True)
    # The operator's log (refusals, events) on standard error; uvicorn's access log only when asked for.
    common = dict(host=settings.host, port=settings.port, log_config=log_config, log_level=None,
                  access_log=args.access_log, http="httptools", loop="uvloop", server_header=False)
    if settings.workers > 1:
        ctx.close()
        os.environ["MOORAGE_DATA_DIR"] = str(settings.data_dir.resolve())
        if settings.config_file:
            os.environ["MOORAGE_CONFIG"] = str(settings.config_file.resolve())
        from moorage.web.metrics import multiprocess_directory

        # Metrics of all workers add up through files in a fresh directory (docs/api.md).
        with multiprocess_directory(settings.data_dir.resolve()):
            uvicorn.run("moorage.web.app:from_environment", factory=True, workers=settings.workers,
                        **common)  # type: ignore[arg-type]
        return 0
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)  # one process: the in-memory registry
    from moorage.web.app import create_app

    uvicorn.run(create_app(ctx), **common)  # type: ignore[arg-type]
    return 0


# -- users and tokens -----------------------------------------------------------------------
def cmd_user_add(args: argparse.Namespace) -> int:
    if args.password_stdin:
        password: str | None = sys.stdin.readline().rstrip("\r\n")
        if not password:
            err.print("moorage: no password on standard input")
            return 2
    elif sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.name}: ") or None
    else:
        password = None
    ctx = _context(args)
    accounts.add_user(ctx, args.name, password=password, is_admin=args.admin, actor=OPERATOR)
    err.print(f"created user {args.name}{' (admin)' if args.admin else ''}")
    return 0


def cmd_token_create(args: argparse.Namespace) -> int:
    ctx = _context(args)
    _id, token = accounts.create_token(ctx, args.name, projects=args.project or [],
                                       expires_days=args.expires_days, description=args.description or "",
                                       actor=OPERATOR)
    print(token)
    return 0


def cmd_token_list(args: argparse.Namespace) -> int:
    ctx = _context(args)
    infos = accounts.list_tokens(ctx, args.name)
    if args.json:
        import json

        print(json.dumps([{
            "id": t.id, "user": t.user, "description": t.description, "projects": t.projects,
            "created_at": t.created_at.isoformat(),
            "expires_at": t.expires_at.isoformat() if t.expires_at else None,
            "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None,
            "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
            "last_used_address": t.last_used_address, "with_second_factor": t.with_second_factor,
        } for t in infos], indent=2))
        return 0
    table = Table("id", "scope", "created", "expires", "state", "last used", "description")
    # The id is what `token revoke` takes: never cut it short. Project names fold, not truncate.
    table.columns[0].no_wrap = True
    table.columns[0].min_width = max((len(t.id) for t in infos), default=2)
    table.columns[1].overflow = "fold"
    table.columns[6].overflow = "fold"
    now = ctx.clock.now()
    for t in infos:
        state = "revoked" if t.revoked_at else ("expired" if t.expires_at and t.expires_at <= now else "active")
        # Text, not str: descriptions are user text and must not be read as rich markup.
        table.add_row(Text(t.id), Text(", ".join(t.projects) or "all projects"), f"{t.created_at:%Y-%m-%d %H:%M}",
                      f"{t.expires_at:%Y-%m-%d %H:%M}" if t.expires_at else "never", state,
                      Text(f"{t.last_used_at:%Y-%m-%d %H:%M} from {t.last_used_address or '?'}" if t.last_used_at
                           else "never"), Text(t.description))
    Console().print(table)
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    ctx = _context(args)
    if args.all_for:
        revoked = accounts.revoke_all_tokens(ctx, args.all_for, actor=OPERATOR, reason=args.reason)
        err.print(f"revoked {len(revoked)} token(s) of {args.all_for}" + (": " + ", ".join(revoked) if revoked else ""))
        return 0
    accounts.revoke_token(ctx, args.id, actor=OPERATOR)
    err.print(f"revoked token {args.id}")
    return 0


def cmd_role_set(args: argparse.Namespace) -> int:
    ctx = _context(args)
    roles.set_role(ctx, args.project, args.user, args.role, actor=OPERATOR)
    err.print(f"{args.user} is now {args.role} of {args.project}")
    return 0


def cmd_role_remove(args: argparse.Namespace) -> int:
    ctx = _context(args)
    roles.remove_role(ctx, args.project, args.user, actor=OPERATOR)
    err.print(f"removed {args.user} from {args.project}")
    return 0


def cmd_role_list(args: argparse.Namespace) -> int:
    ctx = _context(args)
    for info in roles.list_roles(ctx, args.project):
        print(f"{info.role}\t{info.user}")
    return 0


def _print_decision(decision: Decision, as_json: bool) -> None:
    if as_json:
        print(json.dumps(decision.as_dict()))
    elif decision.reason:
        err.print(decision.reason)


def cmd_yank(args: argparse.Namespace) -> int:
    ctx = _context(args)
    done = lifecycle.yank(ctx, args.project, args.version, args.filename, reason=args.reason, as_user=args.as_user)
    err.print(f"yanked {', '.join(done)}" if done else "nothing to yank: already yanked")
    return 0


def cmd_unyank(args: argparse.Namespace) -> int:
    ctx = _context(args)
    done = lifecycle.unyank(ctx, args.project, args.version, args.filename, as_user=args.as_user)
    err.print(f"unyanked {', '.join(done)}" if done else "nothing to unyank: not yanked")
    return 0


def cmd_reopen(args: argparse.Namespace) -> int:
    ctx = _context(args)
    decision = lifecycle.reopen(ctx, args.project, args.version, reason=args.reason, days=args.days,
                                as_user=args.as_user)
    _print_decision(decision, args.json)
    return 0


def _status_command(status: str, done: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        ctx = _context(args)
        lifecycle.set_status(ctx, args.project, status, reason=args.reason,
                             successor=getattr(args, "successor", None), as_user=getattr(args, "as_user", None))
        err.print(f"{args.project} {done}")
        return 0
    return run


def cmd_quarantine(args: argparse.Namespace) -> int:
    """quarantine / unquarantine, of a project or of one release."""
    ctx = _context(args)
    lift = args.command == "unquarantine"
    if args.version:
        changed = lifecycle.quarantine_release(ctx, args.project, args.version, reason=args.reason, lift=lift)
        what = f"release {args.version} of {args.project}"
    else:
        lifecycle.set_status(ctx, args.project, "active" if lift else "quarantined", reason=args.reason)
        changed, what = True, args.project
    done = ("lifted the quarantine of " if lift else "quarantined ") + what
    err.print(done if changed else f"nothing to do: {what} is {'not ' if lift else 'already '}quarantined")
    return 0


def cmd_events(args: argparse.Namespace) -> int:
    from moorage.domain.names import normalize
    from moorage.store.queries import list_events

    ctx = _context(args)
    with ctx.db.read() as conn:
        found = list_events(conn, project=normalize(args.project) if args.project else None,
                            after=args.after, limit=args.limit)
    if args.json:
        print(json.dumps([e.as_dict() for e in found], indent=2))
        return 0
    table = Table("serial", "time (UTC)", "actor", "action", "subject", "details")
    # A payload is shown whole, a key=value line each; long values are folded, never cut (--json: as data).
    for column in table.columns:
        column.overflow = "fold"
    for e in found:
        details = "\n".join(f"{k}={v if isinstance(v, str) else json.dumps(v, separators=(',', ':'))}"
                            for k, v in e.payload.items() if k != "project")
        table.add_row(str(e.serial), f"{e.created_at:%Y-%m-%d %H:%M:%S}", Text(e.actor), Text(e.action),
                      Text(e.subject), Text(details))
    Console(width=max(Console().width, 180)).print(table)
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    ctx = _context(args)
    done = deletion.delete(ctx, args.project, args.version, args.filename, reason=args.reason, as_user=args.as_user)
    what = args.filename or (f"release {args.version} of {args.project}" if args.version else args.project)
    err.print(f"deleted {what}" + (f" ({len(done)} file{'s' if len(done) != 1 else ''})" if done else ""))
    return 0


def cmd_disable_deletions(args: argparse.Namespace) -> int:
    ctx = _context(args)
    changed = deletion.disable_deletions(ctx, args.project, as_user=args.as_user)
    err.print(f"deletions are now off for {args.project}, for good" if changed else "deletions were already off")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    ctx = _context(args)
    done = deletion.restore(ctx, args.project, args.version, args.filename, reason=args.reason)
    err.print(f"restored {', '.join(done) if done else args.project}")
    return 0


def cmd_invite(args: argparse.Namespace) -> int:
    ctx = _context(args)
    transfer = args.command == "transfer"
    handover.invite(ctx, args.project, args.user, role=getattr(args, "role", "owner"), transfer=transfer,
                    as_user=args.as_user)
    what = "a transfer of" if transfer else "an invitation to"
    err.print(f"{args.user} has {what} {args.project}; they answer with `moorage accept {args.project} --as USER`")
    return 0


def cmd_answer(args: argparse.Namespace) -> int:
    ctx = _context(args)
    result = handover.answer(ctx, args.project, as_user=args.as_user, accept=args.command == "accept")
    err.print(f"{args.as_user} is now {result} of {args.project}" if result != "declined" else "declined")
    return 0


def cmd_leave(args: argparse.Namespace) -> int:
    ctx = _context(args)
    orphaned = handover.leave(ctx, args.project, as_user=args.as_user)
    err.print(f"{args.as_user} left {args.project}" + ("; it has no owner left and is archived as orphaned"
                                                       if orphaned else ""))
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    ctx = _context(args)
    done = deletion.purge(ctx, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    err.print(f"{verb} the bytes of {len(done)} file(s) past retention" + (": " + ", ".join(done) if done else ""))
    return 0


def cmd_adopt(args: argparse.Namespace) -> int:
    ctx = _context(args)
    handover.adopt(ctx, args.project, args.user, reason=args.reason)
    err.print(f"{args.user} now owns {args.project}")
    return 0


def cmd_announce_removal(args: argparse.Namespace) -> int:
    ctx = _context(args)
    decision = removal.announce_removal(ctx, args.project, days=args.days, reason=args.reason, as_user=args.as_user)
    _print_decision(decision, args.json)
    return 0


def cmd_cancel_removal(args: argparse.Namespace) -> int:
    ctx = _context(args)
    removal.cancel_removal(ctx, args.project, as_user=args.as_user)
    err.print(f"the removal of {args.project} is cancelled")
    return 0


def cmd_log_key(args: argparse.Namespace) -> int:
    print(bootstrap.log_verifier_key(_settings(args)))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from pathlib import Path

    from moorage.log.verify import IndexUnusable, verify

    try:
        report = verify(args.index, key=args.key, state_file=Path(args.state) if args.state else None,
                        projects=args.project, files=args.files)
    except IndexUnusable as exc:
        if args.json:
            print(json.dumps({"index": args.index, "ok": False, "error": str(exc)}))
        err.print(f"moorage: verify: {exc}")
        return 2
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        cp = report.checkpoint
        if cp:
            print(f"checkpoint: {cp['origin']}, {cp['size']} entries, root {cp['root']}")
        print(f"checked {report.checked_files} offered files" +
              (f", downloaded {report.downloaded_files}" if args.files else ""))
        for finding in report.findings:
            print(f"FINDING {finding['finding']}: {finding['detail']}")
        print("ok: the index agrees with its log" if report.ok else f"{len(report.findings)} finding(s)")
    return 0 if report.ok else 1


def cmd_policy_check(args: argparse.Namespace) -> int:
    ctx = _context(args)
    decision = checks.check(ctx, args.action, args.project, args.version, args.filename, as_user=args.as_user)
    if args.json:
        print(json.dumps(decision.as_dict()))
    else:
        verdict = "allowed" if decision.allowed else f"denied ({decision.rule})"
        text = f"{verdict}: {decision.reason}" if decision.reason else verdict
        if decision.until is not None:
            text += f" (until {decision.until:%Y-%m-%d %H:%M} UTC)"
        print(text)
    return 0 if decision.allowed else EXIT_DENIED


def cmd_policy_show(args: argparse.Namespace) -> int:
    settings = _settings(args)
    rules = policy_rules(settings)
    if args.json:
        print(json.dumps(rules, indent=2))
        return 0
    table = Table()
    for column in ("rule", "setting", "value"):
        table.add_column(column, no_wrap=True)
    table.add_column("what it means", min_width=30)
    for rule in rules:
        table.add_row(Text(rule["rule"]), Text(rule["key"] or "-"), Text(str(rule["value"])), Text(rule["meaning"]))
    Console(width=max(Console().width, 140)).print(table)
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    before, after = bootstrap.upgrade_database(_settings(args))
    err.print(f"database at revision {after}" + ("" if before == after else f" (was {before or 'empty'})"))
    return 0


# -- backup and restore (embedded default) --------------------------------------------------
class _BytesProgress:
    """A rich progress bar on stderr for the blobs' bytes; silent when stderr is no terminal."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
                            console=err, transient=True, disable=not err.is_terminal)
        self.task: object | None = None

    def __enter__(self) -> _BytesProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def begin(self, description: str, total_bytes: int) -> None:
        if self.task is not None:
            self.bar.remove_task(self.task)  # type: ignore[arg-type]
        self.task = self.bar.add_task(description, total=total_bytes)

    def advance(self, nbytes: int) -> None:
        if self.task is not None:
            self.bar.advance(self.task, nbytes)  # type: ignore[arg-type]


def _backup_command(args: argparse.Namespace, verb: str) -> int:
    import sqlite3
    from pathlib import Path

    from moorage.services import backup

    settings = _settings(args)
    try:
        with _BytesProgress() as progress:
            if verb == "backup":
                summary = backup.backup(settings, Path(args.dest), progress=progress)
            else:
                summary = backup.restore(settings, Path(args.src), progress=progress)
    except backup.BackupRefused as exc:
        err.print(f"moorage: {verb} refused: {exc}")
        return 2
    except (backup.BackupFailed, OSError, sqlite3.Error) as exc:
        err.print(f"moorage: {verb} failed: {exc}")
        return 1
    files = f"{summary.files} files ({summary.deleted_files} deleted)"
    blobs = f"{summary.blobs} blobs, {summary.total_bytes} bytes"
    purged = f"; {summary.purged_blobs} purged past retention, not kept" if summary.purged_blobs else ""
    keys = ", ".join(summary.keys) or "no keys"
    if verb == "backup":
        err.print(f"backed up {files}, {blobs}{purged}, {keys} and the database (revision {summary.revision}) "
                  f"to {summary.path}")
    else:
        before = summary.previous_revision
        migrated = "" if before == summary.revision else f", migrated from {before}"
        err.print(f"restored {files}, {blobs}{purged}, {keys} and the database (revision {summary.revision}"
                  f"{migrated}) into {summary.path}")
        if "log-signing-key" not in summary.keys:
            err.print("moorage: the backup has no log signing key: the index will sign its log with a new key")
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    return _backup_command(args, "backup")


def cmd_restore_backup(args: argparse.Namespace) -> int:
    return _backup_command(args, "restore-backup")


def cmd_db_migrate_from_sqlite(args: argparse.Namespace) -> int:
    import sqlite3
    from pathlib import Path

    from moorage.services import migrate

    settings = _settings(args)
    try:
        with _BytesProgress() as progress:
            summary = migrate.migrate_from_sqlite(settings, Path(args.src), progress=progress,
                                                  log_key=Path(args.log_key) if args.log_key else None)
    except migrate.MigrationRefused as exc:
        err.print(f"moorage: migrate-from-sqlite refused: {exc}")
        return 2
    except (migrate.MigrationFailed, OSError, sqlite3.Error) as exc:
        err.print(f"moorage: migrate-from-sqlite failed: {exc}")
        return 1
    # Text: paths and URLs are not rich markup.
    table = Table(title=Text(f"migrated {args.src} into {summary.target}"), title_justify="left")
    table.add_column("what", no_wrap=True)
    table.add_column("count", justify="right", no_wrap=True)
    for name, rows in summary.tables:
        table.add_row(Text(f"table {name}"), f"{rows} rows")
    present = f" ({summary.blobs_present} already there)" if summary.blobs_present else ""
    table.add_row("blobs verified and placed", f"{summary.blobs}{present}")
    if summary.purged_blobs:
        table.add_row("blobs purged past retention (not copied)", str(summary.purged_blobs))
    table.add_row("blob bytes", str(summary.total_bytes))
    table.add_row("files (deleted)", f"{summary.files} ({summary.deleted_files})")
    table.add_row("log size", str(summary.log_size))
    table.add_row("log root", summary.log_root)
    table.add_row("checkpoints checked", str(summary.checkpoints))
    table.add_row("keys copied", ", ".join(summary.keys_copied) or "-")
    if summary.keys_present:
        table.add_row("keys already in place", ", ".join(summary.keys_present))
    Console(width=max(Console().width, 120)).print(table)
    before = summary.source_revision
    migrated = "" if before == summary.revision else f", its schema migrated from {before}"
    err.print(f"migrated {summary.files} files, {summary.blobs} blobs ({summary.total_bytes} bytes) and "
              f"{sum(rows for _, rows in summary.tables)} rows (revision {summary.revision}{migrated}); the log "
              f"continues at size {summary.log_size}")
    if summary.new_log_key:
        err.print("moorage: SRC has no log signing key and its log was never signed: the index will sign its log "
                  "with a new key")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="moorage", description="A Python package index that never pulls the rug.")
    parser.add_argument("--version", action="version", version=f"moorage {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the index")
    _common(serve)
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8080)")
    serve.add_argument("--workers", type=int, help="worker processes (default 1)")
    serve.add_argument("--access-log", action="store_true",
                       help="also log every request (refusals and changes are always logged)")
    serve.set_defaults(func=cmd_serve)

    user = sub.add_parser("user", help="manage users").add_subparsers(dest="user_command", required=True)
    add = user.add_parser("add", help="create a user")
    _common(add)
    add.add_argument("name")
    add.add_argument("--admin", action="store_true")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.set_defaults(func=cmd_user_add)
    factors_cli.register(user)

    token = sub.add_parser("token", help="manage API tokens").add_subparsers(dest="token_command", required=True)
    create = token.add_parser("create", help="create an API token; prints only the token")
    _common(create)
    create.add_argument("name", help="the user the token acts for")
    create.add_argument("--project", action="append", help="limit the token to this project (repeatable)")
    create.add_argument("--expires-days", type=int)
    create.add_argument("--description")
    create.set_defaults(func=cmd_token_create)
    lst = token.add_parser("list", help="list a user's tokens")
    _common(lst)
    lst.add_argument("name")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=cmd_token_list)
    revoke = token.add_parser("revoke", help="revoke a token by id, or every token of an account")
    _common(revoke)
    which = revoke.add_mutually_exclusive_group(required=True)
    which.add_argument("id", nargs="?")
    which.add_argument("--all-for", metavar="USER", help="every live token of USER (after a compromise); recorded")
    revoke.add_argument("--reason", help="with --all-for: why (kept in the event)")
    revoke.set_defaults(func=cmd_token_revoke)

    role = sub.add_parser("role", help="owners and maintainers of a project").add_subparsers(
        dest="role_command", required=True)
    rset = role.add_parser("set", help="make a user owner or maintainer of a project")
    _common(rset)
    rset.add_argument("project")
    rset.add_argument("user")
    rset.add_argument("--role", choices=["owner", "maintainer"], default="maintainer")
    rset.set_defaults(func=cmd_role_set)
    rremove = role.add_parser("remove", help="take a user's role on a project away")
    _common(rremove)
    rremove.add_argument("project")
    rremove.add_argument("user")
    rremove.set_defaults(func=cmd_role_remove)
    rlist = role.add_parser("list", help="list a project's owners and maintainers")
    _common(rlist)
    rlist.add_argument("project")
    rlist.set_defaults(func=cmd_role_list)

    yank = sub.add_parser("yank", help="yank a release or one of its files (PEP 592)")
    _common(yank)
    yank.add_argument("project")
    yank.add_argument("version")
    yank.add_argument("filename", nargs="?")
    yank.add_argument("--reason")
    yank.add_argument("--as", dest="as_user", metavar="USER", help="act as this user, under the policy")
    yank.set_defaults(func=cmd_yank)
    unyank = sub.add_parser("unyank", help="take a yank back")
    _common(unyank)
    unyank.add_argument("project")
    unyank.add_argument("version")
    unyank.add_argument("filename", nargs="?")
    unyank.add_argument("--as", dest="as_user", metavar="USER", help="act as this user, under the policy")
    unyank.set_defaults(func=cmd_unyank)
    reopen = sub.add_parser("reopen", help="let a closed release accept new files for a while")
    _common(reopen)
    reopen.add_argument("project")
    reopen.add_argument("version")
    reopen.add_argument("--days", type=float, help="how long (default: the policy's reopen period)")
    reopen.add_argument("--reason", required=True)
    reopen.add_argument("--as", dest="as_user", metavar="USER", help="act as this user, under the policy")
    reopen.add_argument("--json", action="store_true")
    reopen.set_defaults(func=cmd_reopen)

    for command, status, done, text in (
        ("archive", "archived", "archived", "archive a project: files stay, no new uploads"),
        ("unarchive", "active", "is active again", "make an archived project active again"),
        ("deprecate", "deprecated", "deprecated", "mark a project deprecated, optionally naming its successor"),
        ("undeprecate", "active", "is active again", "take a deprecation back"),
    ):
        p = sub.add_parser(command, help=text)
        _common(p)
        p.add_argument("project")
        p.add_argument("--reason")
        if command == "deprecate":
            p.add_argument("--successor", metavar="NAME", help="the project that replaces this one")
        p.add_argument("--as", dest="as_user", metavar="USER", help="act as this user, under the policy")
        p.set_defaults(func=_status_command(status, done))
    for command, func, text in (("quarantine", cmd_quarantine, "withhold a project or one release (admin)"),
                                ("unquarantine", cmd_quarantine, "lift a quarantine (admin)")):
        p = sub.add_parser(command, help=text)
        _common(p)
        p.add_argument("project")
        p.add_argument("version", nargs="?")
        p.add_argument("--reason", required=True)
        p.set_defaults(func=func)

    dele = sub.add_parser("delete", help="delete a file, a release or a project (within the deletion window)")
    _common(dele)
    dele.add_argument("project")
    dele.add_argument("version", nargs="?")
    dele.add_argument("filename", nargs="?")
    dele.add_argument("--reason", help="why (required when acting as the operator, an admin)")
    dele.add_argument("--as", dest="as_user", metavar="USER", help="act as this user, under the policy")
    dele.set_defaults(func=cmd_delete)
    dis = sub.add_parser("disable-deletions", help="turn deletions off for a project, for good")
    _common(dis)
    dis.add_argument("project")
    dis.add_argument("--as", dest="as_user", metavar="USER", help="act as this user, under the policy")
    dis.set_defaults(func=cmd_disable_deletions)
    admin = sub.add_parser("admin", help="operator commands").add_subparsers(dest="admin_command", required=True)
    rest = admin.add_parser("restore", help="bring back a deleted file, release or project, as it was")
    _common(rest)
    rest.add_argument("project")
    rest.add_argument("version", nargs="?")
    rest.add_argument("filename", nargs="?")
    rest.add_argument("--reason", required=True)
    rest.set_defaults(func=cmd_restore)

    for command, text in (("invite", "invite a user to be owner or maintainer"),
                          ("transfer", "hand your place as owner to another user (they accept)")):
        p = sub.add_parser(command, help=text)
        _common(p)
        p.add_argument("project")
        p.add_argument("user")
        if command == "invite":
            p.add_argument("--role", choices=["owner", "maintainer"], default="maintainer")
        p.add_argument("--as", dest="as_user", metavar="USER", help="act as this user, under the policy")
        p.set_defaults(func=cmd_invite)
    for command, text in (("accept", "accept an invitation or transfer"), ("decline", "decline an invitation")):
        p = sub.add_parser(command, help=text)
        _common(p)
        p.add_argument("project")
        p.add_argument("--as", dest="as_user", metavar="USER", required=True, help="the invited user")
        p.set_defaults(func=cmd_answer)
    lv = sub.add_parser("leave", help="give up your role; the last owner leaving orphans the project")
    _common(lv)
    lv.add_argument("project")
    lv.add_argument("--as", dest="as_user", metavar="USER", required=True, help="the user who leaves")
    lv.set_defaults(func=cmd_leave)
    purge = admin.add_parser("purge", help="remove the bytes of files deleted longer ago than the retention")
    _common(purge)
    purge.add_argument("--dry-run", action="store_true")
    purge.set_defaults(func=cmd_purge)
    critical_cli.register(admin, _common, _context)
    fsck_cli.register(admin, _common, _context, _BytesProgress)
    adopt = admin.add_parser("adopt", help="hand an orphaned project to a new owner")
    _common(adopt)
    adopt.add_argument("project")
    adopt.add_argument("user")
    adopt.add_argument("--reason", required=True)
    adopt.set_defaults(func=cmd_adopt)

    ann = sub.add_parser("announce-removal", help="withdraw a project after a grace period (opt-in root after it)")
    _common(ann)
    ann.add_argument("project")
    ann.add_argument("--days", type=float, help="grace period (default: the policy's, 30 days)")
    ann.add_argument("--reason")
    ann.add_argument("--as", dest="as_user", metavar="USER", help="act as this user, under the policy")
    ann.add_argument("--json", action="store_true")
    ann.set_defaults(func=cmd_announce_removal)
    can = sub.add_parser("cancel-removal", help="take an announced removal back")
    _common(can)
    can.add_argument("project")
    can.add_argument("--as", dest="as_user", metavar="USER", help="act as this user, under the policy")
    can.set_defaults(func=cmd_cancel_removal)

    ev = sub.add_parser("events", help="the recorded events (all of them: this is the operator's view)")
    _common(ev)
    ev.add_argument("--project", help="only this project's events")
    ev.add_argument("--after", type=int, default=0, help="only events after this serial")
    ev.add_argument("--limit", type=int, default=10_000)
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(func=cmd_events)

    policy = sub.add_parser("policy", help="the rules in force").add_subparsers(dest="policy_command", required=True)
    show = policy.add_parser("show", help="print the rules in force")
    _common(show)
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_policy_show)
    chk = policy.add_parser("check", help="the decision an action would meet, without doing it")
    _common(chk)
    chk.add_argument("action", choices=list(checks.ACTIONS))
    chk.add_argument("project")
    chk.add_argument("version", nargs="?")
    chk.add_argument("filename", nargs="?")
    chk.add_argument("--as", dest="as_user", metavar="USER", required=True, help="the user who would act")
    chk.add_argument("--json", action="store_true")
    chk.set_defaults(func=cmd_policy_check)
    simulate.register(policy)

    ver = sub.add_parser("verify", help="check an index against its signed log (a client: needs only the URL)")
    ver.add_argument("--index", required=True, help="the index's root URL")
    ver.add_argument("--key", help="the log's verifier key (`moorage log key`); else trust on first use")
    ver.add_argument("--state", help="file that keeps the key and the last checkpoint seen")
    ver.add_argument("--project", action="append", help="only this project (repeatable)")
    ver.add_argument("--files", action="store_true", help="also download every offered file and check its bytes")
    ver.add_argument("--json", action="store_true")
    ver.set_defaults(func=cmd_verify)
    audit.register(sub)

    logp = sub.add_parser("log", help="the transparency log").add_subparsers(dest="log_command", required=True)
    lk = logp.add_parser("key", help="print the log's public (verifier) key")
    _common(lk)
    lk.set_defaults(func=cmd_log_key)

    db = sub.add_parser("db", help="database maintenance").add_subparsers(dest="db_command", required=True)
    upgrade = db.add_parser("upgrade", help="apply the database migrations")
    _common(upgrade)
    upgrade.set_defaults(func=cmd_db_upgrade)
    mig = db.add_parser("migrate-from-sqlite",
                        help="copy an embedded index (database, blobs, keys) into the configured PostgreSQL database "
                             "and blob store, verified")
    _common(mig)
    mig.add_argument("src", metavar="SRC", help="the data directory of the embedded index (or a `moorage backup`)")
    mig.add_argument("--log-key", help="SRC's log signing key, if it was not SRC/log-signing-key")
    mig.set_defaults(func=cmd_db_migrate_from_sqlite)

    bak = sub.add_parser("backup", help="back up the embedded database, its blobs and keys, while serving")
    _common(bak)
    bak.add_argument("dest", metavar="DEST", help="a new or empty directory")
    bak.set_defaults(func=cmd_backup)
    rbak = sub.add_parser("restore-backup", help="verify a backup, then restore it into an empty data directory")
    _common(rbak)
    rbak.add_argument("src", metavar="SRC", help="the backup directory (with its manifest.json)")
    rbak.set_defaults(func=cmd_restore_backup)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        code = func(args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's last words
        return code
    except BrokenPipeError:
        # The reader went away (`moorage events --json | head`): stop quietly, as a shell tool does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_CLOSED_PIPE
    except ConfigError as exc:
        err.print(f"moorage: configuration: {exc}")
        return 2
    except NoteError as exc:
        err.print(f"moorage: log key: {exc}")
        return 2
    except preflight.Unusable as exc:
        err.print(f"moorage: {exc}")
        return 2
    except (DBAPIError, sqlite3.Error) as exc:
        explained = preflight.explain_database_error(exc, (_loaded or Settings()).db_url)
        if explained is None:
            raise
        err.print(f"moorage: {explained}")
        return 2
    except Denied as denied:
        if getattr(args, "json", False):
            print(json.dumps(denied.decision.as_dict()))
        err.print(f"moorage: refused ({denied.decision.rule}): {denied.decision.reason}")
        return EXIT_DENIED
    except accounts.NotFound as exc:
        err.print(f"moorage: {exc}")
        return EXIT_NOT_FOUND
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
