"""What every command group shares: the options every index command takes, the settings and
the index a command runs on, who it acts as, the message console, the bytes' progress bar."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from rich.console import Console

from moorage.config import Settings, load_settings
from moorage.domain.decisions import Decision
from moorage.services import bootstrap
from moorage.services.context import Context
from moorage.services.loading import OPERATOR as OPERATOR_ACTOR

EXIT_DENIED = 3
EXIT_NOT_FOUND = 4
# Who a command run at the CLI acts as, in every event it records: the operator (an admin),
# unless --as USER (docs/lifecycle.md, "Acting as someone"). What the index does on its own
# (the first start's account, the daily job) is "system".
OPERATOR = OPERATOR_ACTOR.name
# Messages carry user text (names, config keys such as [upload], file paths): no markup, and
# no line breaks inserted at the terminal width, so each message stays one greppable line.
err = Console(stderr=True, highlight=False, markup=False, soft_wrap=True)


def common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="TOML configuration file (or MOORAGE_CONFIG)")
    p.add_argument("--data-dir", help="data directory (or MOORAGE_DATA_DIR; default ./moorage-data)")


def acting_as(p: argparse.ArgumentParser) -> None:
    p.add_argument("--as", dest="as_user", metavar="USER", help="act as this user, under the policy")


def subcommand(sub: Any, name: str, text: str, func: Callable[[argparse.Namespace], int],
               *positionals: str) -> argparse.ArgumentParser:
    """A command that runs on an index: its help line, the options every such command takes
    (`common`), its positional arguments by name (``"version?"``: an optional one) and the
    handler it runs. The caller adds the rest of its options."""
    p: argparse.ArgumentParser = sub.add_parser(name, help=text)
    common(p)
    for positional in positionals:
        if positional.endswith("?"):
            p.add_argument(positional.removesuffix("?"), nargs="?")
        else:
            p.add_argument(positional)
    p.set_defaults(func=func)
    return p


# The settings this command runs with: main() names their database when it cannot be used.
_loaded: Settings | None = None


def settings(args: argparse.Namespace, **overrides: object) -> Settings:
    global _loaded
    _loaded = load_settings(args.config, data_dir=args.data_dir, **overrides)  # type: ignore[arg-type]
    return _loaded


def loaded() -> Settings | None:
    """The settings the command loaded, if it got that far."""
    return _loaded


def context(args: argparse.Namespace) -> Context:
    """The index of an existing data directory, its database opened and checked."""
    return bootstrap.open_index(settings(args))


def print_decision(decision: Decision, as_json: bool) -> None:
    if as_json:
        print(json.dumps(decision.as_dict()))
    elif decision.reason:
        err.print(decision.reason)


class BytesProgress:
    """A rich progress bar on stderr for the blobs' bytes; silent when stderr is no terminal."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
                            console=err, transient=True, disable=not err.is_terminal)
        self.task: object | None = None

    def __enter__(self) -> BytesProgress:
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
