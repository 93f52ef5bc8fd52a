"""Downloads of bytes that are not on this host's disk (an S3 blob store's objects): streamed
through the server, or redirected to a URL that serves them.

What the bytes are and where they are comes from the source (``RemoteBytes``: a size, a read,
and maybe a URL); nothing here knows which store or source it is. Streamed (the S3 store with
``[blobs] downloads = "stream"``), the answer is like the file store's (ETag, immutable
Cache-Control, Content-Length, Content-Disposition, one byte range as 206), the bytes sent as
they arrive. With a URL (``downloads = "redirect"``: presigned, valid for
``presign_seconds``), a GET is answered with 302 to it and the client fetches the bytes from
there itself, which must be reachable from it. A HEAD is answered here either way (a URL
presigned for GET does not accept HEAD).
"""

from __future__ import annotations

from datetime import UTC
from email.utils import format_datetime
from urllib.parse import quote

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response, StreamingResponse

from moorage.sources import BlobMissing, FileView, RemoteBytes
from moorage.web.ranges import byte_ranges

IMMUTABLE = "public, max-age=31536000, immutable"


def content_disposition(filename: str) -> str:
    """As Starlette's FileResponse writes it for the file store."""
    quoted = quote(filename)
    if quoted != filename:
        return f"attachment; filename*=utf-8''{quoted}"
    return f'attachment; filename="{filename}"'


class Unsatisfiable(Exception):
    pass


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """One byte range ``(start, end)`` (inclusive), or None to send the whole object (no
    Range, one to ignore, several ranges); Unsatisfiable past the end."""
    specs = byte_ranges(header)
    if specs is None or len(specs) != 1:
        return None  # ignored, or several ranges: a server may send the whole object
    first, last = specs[0]
    if first is None:  # the last N bytes
        assert last is not None
        if last == 0 or size == 0:
            raise Unsatisfiable
        return max(0, size - last), size - 1
    if first >= size:
        raise Unsatisfiable
    return first, min(last if last is not None else size - 1, size - 1)


async def remote_download(request: Request, view: FileView, data: RemoteBytes, *, want_metadata: bool) -> Response:
    """The answer to a GET or HEAD of the file (or its metadata) whose bytes are ``data``;
    BlobMissing when they are not there (answered as 503 naming the file, web/files.py)."""
    if want_metadata:
        assert view.metadata_sha256 is not None
        sha, size, media_type, disposition = view.metadata_sha256, None, "text/plain; charset=utf-8", None
    else:
        sha, size, media_type = view.sha256, view.size, "application/octet-stream"
        disposition = content_disposition(view.filename)
    headers = {"etag": f'"{sha}"', "cache-control": IMMUTABLE, "accept-ranges": "bytes"}
    if disposition:
        headers["content-disposition"] = disposition
    if data.url is not None and request.method == "GET":
        url_for = data.url
        url = await to_thread.run_sync(lambda: url_for(media_type, disposition))
        # The URL expires: the redirect itself is not to be cached.
        return RedirectResponse(url, status_code=302, headers={"cache-control": "no-store"})

    wanted = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if wanted and if_range is not None and if_range != headers["etag"]:
        wanted = None  # the client's copy is of other bytes: send them all
    if request.method == "HEAD" or (size is None and wanted):
        # A HEAD asks the store too: it must not promise bytes the store does not have.
        found = await to_thread.run_sync(data.size)
        if found is None:
            raise BlobMissing(sha)  # answered as 503 naming the file (web/files.py)
        size = size if size is not None else found
    try:
        byte_range = parse_range(wanted, size) if wanted and size is not None else None
    except Unsatisfiable:
        return PlainTextResponse("", status_code=416, headers={"content-range": f"bytes */{size}"})
    status = 200
    if byte_range is not None:
        headers["content-range"] = f"bytes {byte_range[0]}-{byte_range[1]}/{size}"
        status = 206
    if request.method == "HEAD":
        start, end = byte_range if byte_range is not None else (0, (size or 0) - 1)
        headers["content-length"] = str(end - start + 1)
        return Response(b"", status_code=status, headers=headers, media_type=media_type)
    stream = await to_thread.run_sync(data.read, byte_range)
    headers["content-length"] = str(stream.length)
    if stream.last_modified is not None:
        headers["last-modified"] = format_datetime(stream.last_modified.astimezone(UTC), usegmt=True)
    return StreamingResponse(stream.chunks(), status_code=status, headers=headers, media_type=media_type)
