"""A small embedded index built in-process, without a server (for backup and migration tests)."""

from __future__ import annotations

from pathlib import Path

from moorage.config import Settings
from moorage.services import accounts
from moorage.services.clocks import SystemClock
from moorage.services.context import open_context
from tests.services.helpers import upload
from tests.support.dists import Dist, make_sdist, make_wheel


def small_index(tmp_path: Path) -> tuple[Settings, Dist]:
    """The settings of an index in ``tmp_path/small`` holding one wheel and one sdist of
    ``small`` 1.0 uploaded by ``alice``, and that wheel."""
    settings = Settings(data_dir=tmp_path / "small")
    ctx = open_context(settings, SystemClock(), migrate=True)
    try:
        accounts.add_user(ctx, "alice", password=None)
        token = accounts.create_token(ctx, "alice")[1]
        wheel = make_wheel(tmp_path / "dist", "small", "1.0")
        upload(ctx, token, wheel)
        upload(ctx, token, make_sdist(tmp_path / "dist", "small", "1.0"))
    finally:
        ctx.close()
    return settings, wheel
