"""`moorage admin fsck` run as the operator runs it, on a test's data directory."""

from __future__ import annotations

import json
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

from tests.support.server import cli_env, run_cli


def no_traceback(*texts: str) -> None:
    for text in texts:
        assert "Traceback" not in text, text


def fsck(data_dir: Path, *args: str, offset: timedelta | None = None,
         env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """`moorage admin fsck ARGS` on the data directory (its database in the PostgreSQL pass),
    optionally with the command's clock moved ahead: (exit status, stdout, stderr). It never
    prints a traceback and exits 0 (nothing wrong) or 1 (something wrong)."""
    env = dict(env or cli_env(data_dir))
    if offset is not None:
        clock = data_dir.parent / f"fsck-clock-{secrets.token_hex(3)}"
        clock.write_text(str(offset.total_seconds()))
        env["MOORAGE_CLOCK_OFFSET_FILE"] = str(clock)
    done = run_cli(data_dir, "admin", "fsck", *args, env=env, check=False)
    no_traceback(done.stdout, done.stderr)
    assert done.returncode in (0, 1), (done.returncode, done.stdout, done.stderr)
    return done.returncode, done.stdout, done.stderr


def fsck_json(data_dir: Path, *args: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    status, out, _err = fsck(data_dir, "--json", *args, **kwargs)
    report: dict[str, Any] = json.loads(out)
    assert report["ok"] is (status == 0)
    return status, report
