"""`moorage admin ...`: the operator's commands, gathered from the groups that hold them."""

from __future__ import annotations

from typing import Any

from moorage.cli import critical, deletion, fsck, roles


def register(sub: Any) -> None:
    admin = sub.add_parser("admin", help="operator commands").add_subparsers(dest="admin_command", required=True)
    deletion.register_restore(admin)
    deletion.register_purge(admin)
    critical.register(admin)
    fsck.register(admin)
    roles.register_adopt(admin)
