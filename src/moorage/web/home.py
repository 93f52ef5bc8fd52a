"""GET /: what this index is and how to point clients at it."""

from __future__ import annotations

from html import escape

import sqlalchemy as sa
from anyio import to_thread
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response

from moorage import __version__
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

    async def page(self, request: Request) -> Response:
        n_projects, n_files = await to_thread.run_sync(self._counts)
        base = str(request.base_url)
        simple = escape(base + "simple/")
        legacy = escape(base + "legacy/")
        body = f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>moorage</title></head>
<body>
<h1>moorage package index</h1>
<p>{n_projects} projects, {n_files} files.</p>
<h2>Install from this index</h2>
<pre>pip install --index-url {simple} PROJECT
uv pip install --index-url {simple} PROJECT</pre>
<h2>Upload to this index</h2>
<pre>twine upload --repository-url {legacy} -u __token__ -p TOKEN dist/*
uv publish --publish-url {legacy} --token TOKEN</pre>
<p><a href="simple/">Simple index</a> · moorage {__version__}</p>
</body>
</html>
"""
        return HTMLResponse(body)

    async def health(self, request: Request) -> Response:
        await to_thread.run_sync(self._counts)
        return PlainTextResponse("ok\n")
