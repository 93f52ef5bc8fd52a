"""The stylesheet and the security-key script: read once, served with a validator so browsers revalidate cheaply."""

from __future__ import annotations

import hashlib
from importlib import resources

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

# webauthn.js runs only on the security-key pages (their CSP allows scripts from here).
_FILES = {"style.css": "text/css", "webauthn.js": "text/javascript"}
_CACHE: dict[str, tuple[bytes, str]] = {}


def _load(name: str) -> tuple[bytes, str]:
    if name not in _CACHE:
        data = resources.files("moorage.web.pages").joinpath("static", name).read_bytes()
        _CACHE[name] = (data, '"' + hashlib.sha256(data).hexdigest()[:32] + '"')
    return _CACHE[name]


async def serve(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in _FILES:
        return PlainTextResponse("no such file\n", 404)
    data, etag = _load(name)
    headers = {"ETag": etag, "Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(data, media_type=_FILES[name], headers=headers)
