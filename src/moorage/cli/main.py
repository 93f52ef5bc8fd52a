"""`moorage`: serve the index and administer it.

This module is the entry point: it assembles the command groups (each module registers its
subcommands and holds their handlers) and turns what a command raises into one line on
standard error and the exit status the README's table promises."""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
from collections.abc import Callable, Sequence

from sqlalchemy.exc import DBAPIError

from moorage import __version__
from moorage.cli import admin, db, deletion, lifecycle, records, roles, serve, users
from moorage.cli.common import EXIT_DENIED, EXIT_NOT_FOUND, err, loaded
from moorage.config import ConfigError, Settings
from moorage.domain.decisions import NOT_FOUND, Decision, Denied
from moorage.log.note import NoteError
from moorage.store import preflight

__all__ = ["EXIT_CLOSED_PIPE", "EXIT_DENIED", "EXIT_NOT_FOUND", "build_parser", "main"]

EXIT_CLOSED_PIPE = 141  # as a shell's writer killed by SIGPIPE: `moorage events | head` ends quietly
# The exit status of a refusal, by its rule id: what was named is not there (4), or any other
# rule refused (3). The HTTP status of a rule is the web's table (web/statuses.py).
EXIT_STATUS = {NOT_FOUND: EXIT_NOT_FOUND}


def exit_status(decision: Decision) -> int:
    return EXIT_STATUS.get(decision.rule, EXIT_DENIED)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="moorage", description="A Python package index that never pulls the rug.")
    parser.add_argument("--version", action="version", version=f"moorage {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    # The order of the calls is the order `moorage --help` lists the commands in.
    serve.register(sub)  # serve
    users.register(sub)  # user, token
    roles.register(sub)  # role
    lifecycle.register(sub)  # yank, unyank, reopen, archive ... undeprecate, quarantine, unquarantine
    deletion.register(sub)  # delete, disable-deletions
    admin.register(sub)  # admin restore | purge | daily | download-flags | review-flag | fsck | adopt
    roles.register_handover(sub)  # invite, transfer, accept, decline, leave
    lifecycle.register_removal(sub)  # announce-removal, cancel-removal
    records.register(sub)  # events, policy, verify, audit, log
    db.register(sub)  # db, backup, restore-backup
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
        explained = preflight.explain_database_error(exc, (loaded() or Settings()).db_url)
        if explained is None:
            raise
        err.print(f"moorage: {explained}")
        return 2
    except Denied as denied:
        return _refused(args, denied.decision)
    except KeyboardInterrupt:
        return 130


def _refused(args: argparse.Namespace, decision: Decision) -> int:
    """A refusal's line on standard error (and, with --json, its decision on standard output);
    what was not found is said as it is, without a rule or the JSON."""
    if decision.rule == NOT_FOUND:
        err.print(f"moorage: {decision.reason}")
    else:
        if getattr(args, "json", False):
            print(json.dumps(decision.as_dict()))
        err.print(f"moorage: refused ({decision.rule}): {decision.reason}")
    return exit_status(decision)


if __name__ == "__main__":
    raise SystemExit(main())
