"""GET /api/projects/<name>/events: a project's history, public actions to anyone, all to admins."""

from __future__ import annotations

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from moorage.domain.events import PUBLIC_ACTIONS
from moorage.domain.names import is_valid_name, normalize
from moorage.services.auth import admin_from_request
from moorage.services.context import Context
from moorage.store.queries import list_events
from moorage.web.responses import not_found


class EventsAPI:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def project_events(self, request: Request) -> Response:
        name = request.path_params["name"]
        if not is_valid_name(name):
            return not_found("no project of this name on this index", as_json=True)
        normalized = normalize(name)
        if normalized != name:
            return RedirectResponse(f"{request.scope.get('root_path', '')}/api/projects/{normalized}/events", 301)
        try:
            after = max(0, int(request.query_params.get("after", "0")))
        except ValueError:
            after = 0
        is_admin = await to_thread.run_sync(admin_from_request, self.ctx, request.headers.get("authorization"))

        def load() -> list[dict[str, object]]:
            with self.ctx.db.read() as conn:
                found = list_events(conn, project=normalized, after=after,
                                    actions=None if is_admin else PUBLIC_ACTIONS)
            return [e.as_dict() for e in found]

        items = await to_thread.run_sync(load)
        if not items and after == 0:
            return not_found("no project of this name on this index", as_json=True)
        return JSONResponse({"project": normalized, "events": items, "all": is_admin})
