"""What the index recorded and the rules it runs by: `moorage events`, `policy show | check`
(`policy simulate` is in cli/simulate.py), `log key`, and the clients `verify` (and `audit`,
in cli/audit.py) that check an index from outside."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from moorage.cli import audit, simulate
from moorage.cli.common import EXIT_DENIED, common, context, err, settings
from moorage.config import policy_rules
from moorage.services import bootstrap, checks


def register(sub: Any) -> None:
    """`moorage events`, `policy ...`, `verify`, `audit` and `log key`, in the help's order."""
    ev = sub.add_parser("events", help="the recorded events (all of them: this is the operator's view)")
    common(ev)
    ev.add_argument("--project", help="only this project's events")
    ev.add_argument("--after", type=int, default=0, help="only events after this serial")
    ev.add_argument("--limit", type=int, default=10_000)
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(func=cmd_events)
    _register_policy(sub)
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
    common(lk)
    lk.set_defaults(func=cmd_log_key)


def _register_policy(sub: Any) -> None:
    policy = sub.add_parser("policy", help="the rules in force").add_subparsers(dest="policy_command", required=True)
    show = policy.add_parser("show", help="print the rules in force")
    common(show)
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_policy_show)
    chk = policy.add_parser("check", help="the decision an action would meet, without doing it")
    common(chk)
    chk.add_argument("action", choices=list(checks.ACTIONS))
    chk.add_argument("project")
    chk.add_argument("version", nargs="?")
    chk.add_argument("filename", nargs="?")
    chk.add_argument("--as", dest="as_user", metavar="USER", required=True, help="the user who would act")
    chk.add_argument("--json", action="store_true")
    chk.set_defaults(func=cmd_policy_check)
    simulate.register(policy)


def cmd_events(args: argparse.Namespace) -> int:
    from moorage.domain.names import normalize
    from moorage.store.queries import list_events

    ctx = context(args)
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


def cmd_policy_show(args: argparse.Namespace) -> int:
    rules = policy_rules(settings(args))
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


def cmd_policy_check(args: argparse.Namespace) -> int:
    ctx = context(args)
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


def cmd_log_key(args: argparse.Namespace) -> int:
    print(bootstrap.log_verifier_key(settings(args)))
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
