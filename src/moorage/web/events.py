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
from moorage.web.manage import EVENTS_QUERY, query_values
from moorage.web.responses import Refusal, not_found


class EventsAPI:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def project_events(self, request: Request) -> Response:
        name = request.path_params["name"]
        if not is_valid_name(name):
            return not_found("no project of this name on this index", as_json=True)
        params = query_values(request, EVENTS_QUERY)
        if isinstance(params, Refusal):  # refused at any address of the project, so before a redirect
            return params
        normalized = normalize(name)
        if normalized != name:
            query = f"?{request.url.query}" if request.url.query else ""
            return RedirectResponse(f"{request.scope.get('root_path', '')}/api/projects/{normalized}/events{query}",
                                    301)
        after = params.get("after", 0)
        is_admin = await to_thread.run_sync(admin_from_request, self.ctx, request.headers.get("authorization"))

        def load() -> list[dict[str, object]] | None:
            with self.ctx.db.read() as conn:
                found = list_events(conn, project=normalized, after=after,
                                    actions=None if is_admin else PUBLIC_ACTIONS)
                # No event newer than `after` is an empty page; no event at all, no such project.
                if not found and not list_events(conn, project=normalized, limit=1):
                    return None
            return [e.as_dict() for e in found]

        items = await to_thread.run_sync(load)
        if items is None:
            return not_found("no project of this name on this index", as_json=True)
        return JSONResponse({"project": normalized, "events": items, "all": is_admin})
