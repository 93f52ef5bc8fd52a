"""Unknown addresses: a page for browsers, a line of text for programs."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from moorage.web.pages.render import render


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


async def not_found_page(request: Request, exc: Exception) -> Response:
    if _wants_html(request):
        return render("message.html", 404, title="Not found", message="There is no page at this address.",
                      kind="notice", user=None, csrf_token="")
    return PlainTextResponse("Not Found\n", 404)


async def method_not_allowed(request: Request, exc: Exception) -> Response:
    return PlainTextResponse("Method Not Allowed\n", 405)
