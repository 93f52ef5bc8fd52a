"""ASGI handler for /simple/: answers cached pages without going through the router."""

from __future__ import annotations

from anyio import to_thread

from moorage.domain.names import is_valid_name, normalize
from moorage.web.negotiation import choose
from moorage.web.simple import INDEX, Page, PageCache, content_type

_NOT_FOUND = b"not found: no project of this name on this index\n"
Headers = list[tuple[bytes, bytes]]


class SimpleAPI:
    """One index root: "/simple" (the default) or "/pending/simple" (the opt-in root)."""

    def __init__(self, cache: PageCache, root: str = "/simple") -> None:
        self.cache = cache
        self.base = root
        self.prefix = root + "/"

    async def __call__(self, scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            await _send(send, 405, [(b"allow", b"GET, HEAD")], b"method not allowed\n", method)
            return
        path: str = scope["path"]
        if path == self.base:
            await _send(send, 301, [(b"location", f"{scope.get('root_path', '')}{self.prefix}".encode())], b"",
                        method)
            return
        if not path.startswith(self.prefix):
            await _send(send, 404, [], _NOT_FOUND, method)
            return
        rest = path[len(self.prefix):]
        root = scope.get("root_path", "")
        if rest == "":
            await self._page(scope, send, INDEX)
            return
        name, slash, tail = rest.partition("/")
        if tail or not is_valid_name(name):
            await _send(send, 404, [], _NOT_FOUND, method)
            return
        normalized = normalize(name)
        if normalized != name or not slash:
            location = f"{root}{self.prefix}{normalized}/".encode()
            await _send(send, 301, [(b"location", location)], b"", method)
            return
        await self._page(scope, send, normalized)

    async def _page(self, scope: dict, send: object, key: str) -> None:  # type: ignore[type-arg]
        page: Page | None = self.cache.get(key)
        if page is None and self.cache.known_missing(key):
            await _send(send, 404, [], _NOT_FOUND, scope["method"])
            return
        if page is None:
            if key == INDEX:
                page = await to_thread.run_sync(self.cache.build_index)
            else:
                page = await to_thread.run_sync(self.cache.build_project, key)
        method = scope["method"]
        if page is None:
            await _send(send, 404, [], _NOT_FOUND, method)
            return
        accept = None
        if_none_match = None
        wants_gzip = False
        for hname, hvalue in scope["headers"]:
            if hname == b"accept":
                accept = hvalue.decode("latin-1")
            elif hname == b"if-none-match":
                if_none_match = hvalue.decode("latin-1")
            elif hname == b"accept-encoding":
                wants_gzip = _accepts_gzip(hvalue)
        media = choose(accept)
        rendered = page.pick(media)
        body = rendered.body
        etag = rendered.etag
        compressed = rendered.gzipped() if wants_gzip else None
        if compressed is not None:
            body, etag = compressed, rendered.gzip_etag
        headers: Headers = [
            (b"etag", etag.encode()),
            (b"vary", b"Accept, Accept-Encoding"),
            (b"cache-control", b"max-age=0, must-revalidate"),
            (b"x-pypi-last-serial", str(page.serial).encode()),
        ]
        if if_none_match and _etag_matches(if_none_match, etag):
            await _send(send, 304, headers, b"", "HEAD")
            return
        headers.append((b"content-type", content_type(media).encode()))
        if compressed is not None:
            headers.append((b"content-encoding", b"gzip"))
        await _send(send, 200, headers, body, method)


def _accepts_gzip(value: bytes) -> bool:
    for part in value.lower().split(b","):
        coding, _, params = part.strip().partition(b";")
        if coding.strip() in (b"gzip", b"*"):
            q = params.strip()
            if not q.startswith(b"q="):
                return True
            try:
                return float(q[2:]) > 0
            except ValueError:
                return False
    return False


def _etag_matches(header: str, etag: str) -> bool:
    if header.strip() == "*":
        return True
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return etag in tags


async def _send(send: object, status: int, headers: Headers, body: bytes, method: str) -> None:
    if status != 304:
        headers = [*headers, (b"content-length", str(len(body)).encode())]
        if status >= 400 or status in (301, 302):
            headers.append((b"content-type", b"text/plain; charset=utf-8"))
    await send({"type": "http.response.start", "status": status, "headers": headers})  # type: ignore[operator]
    await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})  # type: ignore[operator]
