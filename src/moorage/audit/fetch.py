"""The HTTP side of `moorage audit`: project pages (PEP 691 JSON), a HEAD or a download of each
pinned file. Standard library only (urllib), a small thread pool, a timeout on every request;
every failure is a `FetchError` whose message says which URL and what happened.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import urlparse

from packaging.utils import canonicalize_name

from moorage import __version__
from moorage.audit.findings import Page, Served

JSON_ACCEPT = "application/vnd.pypi.simple.v1+json"
TIMEOUT = 30.0  # seconds, per request
WORKERS = 8  # parallel requests: enough for a lock of hundreds of projects, polite to one host
CHUNK = 1 << 20
_HEADERS = {"User-Agent": f"moorage-audit/{__version__}"}

_T = TypeVar("_T")
_R = TypeVar("_R")


class FetchError(Exception):
    """The index could not be asked, or did not answer as a PEP 691 index does."""


def index_root(url: str) -> str:
    """An index URL as given (option or lock file), checked, with the trailing slash the
    simple API's relative URLs need."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise FetchError(f"the index URL must be an http:// or https:// simple root such as "
                         f"http://127.0.0.1:8080/simple/, got {url!r}")
    return url if url.endswith("/") else url + "/"


def project_url(index: str, name: str) -> str:
    return index_root(index) + canonicalize_name(name) + "/"


# Failures of the connection or the transfer (a refused or reset connection, a timeout, a body
# shorter than announced): all of them mean the index could not be asked.
_NETWORK_ERRORS = (urllib.error.URLError, OSError, http.client.HTTPException)


def _why(exc: BaseException) -> str:
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    return str(reason) or type(reason).__name__


def _check_page(url: str, doc: Any) -> dict[str, Any]:
    """Enough of PEP 691's shape that the comparison can rely on it."""
    if not isinstance(doc, dict):
        raise FetchError(f"{url}: the JSON is not a PEP 691 project page (not an object)")
    meta = doc.get("meta")
    version = meta.get("api-version") if isinstance(meta, dict) else None
    if not isinstance(version, str) or version.split(".")[0] != "1":
        raise FetchError(f"{url}: not a PEP 691 project page (meta.api-version {version!r}; expected 1.x)")
    files = doc.get("files")
    if not isinstance(files, list):
        raise FetchError(f"{url}: not a PEP 691 project page (no `files` list)")
    for i, file in enumerate(files):
        if not (isinstance(file, dict) and isinstance(file.get("filename"), str) and isinstance(file.get("url"), str)
                and isinstance(file.get("hashes"), dict)):
            raise FetchError(f"{url}: files[{i}] is not a PEP 691 file (filename, url and hashes are required)")
    return doc


def fetch_page(url: str, timeout: float = TIMEOUT) -> Page:
    """GET one project page as PEP 691 JSON."""
    request = urllib.request.Request(url, headers={**_HEADERS, "Accept": JSON_ACCEPT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            media = resp.headers.get_content_type()
            body = resp.read()
            final = resp.geturl()
    except urllib.error.HTTPError as exc:
        if exc.code in (404, 410):
            # The project is gone (deleted: the rug pulled) or never was on this index: a finding
            # for every file pinned from it, not a reason to stop auditing the rest.
            return Page(url, {}, gone=exc.code)
        raise FetchError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except _NETWORK_ERRORS as exc:
        raise FetchError(f"cannot reach the index at {url}: {_why(exc)}") from None
    if media not in (JSON_ACCEPT, "application/json"):
        raise FetchError(f"{url} answered {media}, not PEP 691 JSON ({JSON_ACCEPT}): is the index URL a simple "
                         "root of an index that speaks PEP 691?")
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise FetchError(f"{url}: the answer is not valid JSON ({exc})") from None
    return Page(final, _check_page(url, doc))


def _size_header(value: str | None) -> int | None:
    return int(value) if value is not None and value.strip().isdigit() else None


def _file_url(url: str) -> str:
    # The page decides these URLs: never let an index point the client at a local file.
    if urlparse(url).scheme not in ("http", "https"):
        raise FetchError(f"the index gives a file URL that is not http(s): {url!r}")
    return url


def head(url: str, timeout: float = TIMEOUT) -> Served:
    """The size the index serves at a file's URL, from Content-Length: cheap, and enough to
    catch bytes replaced by bytes of another length."""
    _file_url(url)
    headers = {**_HEADERS, "Accept-Encoding": "identity"}
    for method in ("HEAD", "GET"):
        try:
            # A GET is closed after its headers: only for a server that refuses HEAD.
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers, method=method),
                                        timeout=timeout) as resp:
                return Served(resp.status, _size_header(resp.headers.get("Content-Length")))
        except urllib.error.HTTPError as exc:
            if exc.code in (404, 410):
                return Served(exc.code)
            if method == "HEAD" and exc.code in (405, 501):
                continue
            raise FetchError(f"{url}: HTTP {exc.code} {exc.reason}") from None
        except _NETWORK_ERRORS as exc:
            raise FetchError(f"cannot reach {url}: {_why(exc)}") from None
    raise AssertionError("unreachable: the GET either returns or raises")


def download(url: str, timeout: float = TIMEOUT) -> Served:
    """Stream a file through sha256 (nothing is kept): the only way to see bytes replaced by
    bytes of the same length, since the index's JSON still advertises the original hash."""
    _file_url(url)
    request = urllib.request.Request(url, headers={**_HEADERS, "Accept-Encoding": "identity"})
    digest, size = hashlib.sha256(), 0
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            while chunk := resp.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
            return Served(resp.status, size, digest.hexdigest())
    except urllib.error.HTTPError as exc:
        if exc.code in (404, 410):
            return Served(exc.code)
        raise FetchError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except _NETWORK_ERRORS as exc:
        raise FetchError(f"cannot download {url}: {_why(exc)}") from None


def _parallel(func: Callable[[_T], _R], items: Iterable[_T], workers: int) -> dict[_T, _R]:
    """func over items in a few threads; the first error is raised once all have stopped."""
    unique = list(dict.fromkeys(items))
    if not unique:
        return {}
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(unique)))) as pool:
        futures = {item: pool.submit(func, item) for item in unique}
        try:
            return {item: future.result() for item, future in futures.items()}
        except BaseException:
            for future in futures.values():
                future.cancel()
            raise


def fetch_pages(urls: Iterable[str], timeout: float = TIMEOUT, workers: int = WORKERS) -> dict[str, Page]:
    return _parallel(lambda url: fetch_page(url, timeout), urls, workers)


def probe(urls: Iterable[str], *, download_files: bool, timeout: float = TIMEOUT,
          workers: int = WORKERS) -> dict[str, Served]:
    check = download if download_files else head
    return _parallel(lambda url: check(url, timeout), urls, workers)
