"""GET /healthz: the database answers."""

from __future__ import annotations

import sqlalchemy as sa
from anyio import to_thread
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from moorage.services.context import Context
from moorage.store.tables import files, projects


class Home:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def _counts(self) -> tuple[int, int]:
        with self.ctx.db.read() as conn:
            n_projects = conn.execute(sa.select(sa.func.count()).select_from(projects)).scalar_one()
            n_files = conn.execute(sa.select(sa.func.count()).select_from(files)).scalar_one()
        return int(n_projects), int(n_files)

    async def health(self, request: Request) -> Response:
        await to_thread.run_sync(self._counts)
        return PlainTextResponse("ok\n")
