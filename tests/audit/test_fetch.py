"""The HTTP side against a small stdlib server on 127.0.0.1 that answers as it is told: pages,
errors, HEAD, downloads, timeouts."""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from moorage.audit import fetch
from moorage.audit.fetch import JSON_ACCEPT, FetchError
from moorage.audit.findings import Served

PAGE = {"meta": {"api-version": "1.4"}, "name": "demo", "versions": ["1.0"],
        "files": [{"filename": "demo-1.0.tar.gz", "url": "../../files/x/demo-1.0.tar.gz", "hashes": {"sha256": "x"}}]}
BLOB = b"the bytes of a file" * 100
# path -> (status, content type, body); HEAD answers with the same headers and no body
ROUTES: dict[str, tuple[int, str, bytes]] = {
    "/simple/demo/": (200, JSON_ACCEPT, json.dumps(PAGE).encode()),
    "/simple/html/": (200, "text/html", b"<html></html>"),
    "/simple/broken/": (200, JSON_ACCEPT, b"{not json"),
    "/simple/old/": (200, JSON_ACCEPT, json.dumps({"meta": {"api-version": "2.0"}, "files": []}).encode()),
    "/simple/badfile/": (200, JSON_ACCEPT,
                         json.dumps({"meta": {"api-version": "1.0"}, "files": [{"url": "x"}]}).encode()),
    "/simple/fails/": (503, "text/plain", b"down for maintenance"),
    "/files/blob": (200, "application/octet-stream", BLOB),
    "/nohead/blob": (200, "application/octet-stream", BLOB),
}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def _answer(self, with_body: bool) -> None:
        if self.path.startswith("/slow/"):
            time.sleep(1.0)
        if self.path.startswith("/redirect/"):
            self.send_response(302)
            self.send_header("Location", "/files/blob")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        status, media, body = ROUTES.get(self.path.replace("/slow/", "/"), (404, "text/plain", b"not found"))
        self.send_response(status)
        self.send_header("Content-Type", media)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if with_body:
            # the client may close after the headers (a HEAD refused, then a GET for the size)
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer(True)

    def do_HEAD(self) -> None:
        if self.path.startswith("/nohead/"):
            self.send_response(405)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self._answer(False)


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_index_urls_get_their_slash_and_must_be_http() -> None:
    assert fetch.index_root("http://127.0.0.1:8080/simple") == "http://127.0.0.1:8080/simple/"
    assert fetch.project_url("http://127.0.0.1:8080/simple/", "Demo_Pkg") == "http://127.0.0.1:8080/simple/demo-pkg/"
    for bad in ("file:///etc/simple/", "127.0.0.1:8080/simple/", "http:///simple/"):
        with pytest.raises(FetchError, match="must be an http:// or https:// simple root"):
            fetch.index_root(bad)


def test_a_page_is_fetched_as_pep_691_json(base: str) -> None:
    page = fetch.fetch_page(base + "simple/demo/")
    assert page.url == base + "simple/demo/" and page.doc == PAGE
    assert page.file_url(page.files[0]) == base + "files/x/demo-1.0.tar.gz"


@pytest.mark.parametrize(("path", "says"), [
    ("simple/html/", "answered text/html, not PEP 691 JSON (application/vnd.pypi.simple.v1+json)"),
    ("simple/broken/", "the answer is not valid JSON"),
    ("simple/old/", "not a PEP 691 project page (meta.api-version '2.0'; expected 1.x)"),
    ("simple/badfile/", "files[0] is not a PEP 691 file"),
    ("simple/fails/", "simple/fails/: HTTP 503"),
])
def test_a_page_that_is_not_one_says_why(base: str, path: str, says: str) -> None:
    with pytest.raises(FetchError) as exc:
        fetch.fetch_page(base + path)
    assert says in str(exc.value)


def test_an_unreachable_index_and_a_timeout_are_errors(base: str) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/simple/demo/"
    with pytest.raises(FetchError, match=f"cannot reach the index at {closed}: .*refused"):
        fetch.fetch_page(closed)
    with pytest.raises(FetchError, match="cannot reach the index at .*timed out"):
        fetch.fetch_page(base + "slow/simple/demo/", timeout=0.2)


def test_head_reads_the_size_and_falls_back_to_get_when_head_is_refused(base: str) -> None:
    assert fetch.head(base + "files/blob") == Served(200, len(BLOB))
    assert fetch.head(base + "nohead/blob") == Served(200, len(BLOB))
    assert fetch.head(base + "redirect/blob") == Served(200, len(BLOB))
    assert fetch.head(base + "files/gone") == Served(404)


def test_download_hashes_the_bytes(base: str) -> None:
    assert fetch.download(base + "files/blob") == Served(200, len(BLOB), hashlib.sha256(BLOB).hexdigest())
    assert fetch.download(base + "files/gone") == Served(404)


def test_a_file_url_must_be_http() -> None:
    with pytest.raises(FetchError, match="a file URL that is not http"):
        fetch.head("file:///etc/passwd")
    with pytest.raises(FetchError, match="a file URL that is not http"):
        fetch.download("file:///etc/passwd")


def test_many_requests_run_in_a_pool_and_the_first_error_stops_them(base: str) -> None:
    urls = [base + "files/blob", base + "nohead/blob"] * 5
    assert fetch.probe(urls, download_files=False) == {base + "files/blob": Served(200, len(BLOB)),
                                                       base + "nohead/blob": Served(200, len(BLOB))}
    with pytest.raises(FetchError, match="HTTP 503"):
        fetch.fetch_pages([base + "simple/demo/", base + "simple/fails/"])


def test_a_project_the_index_does_not_know_is_a_gone_page_not_an_error(base: str) -> None:
    page = fetch.fetch_page(base + "simple/nothing/")
    assert (page.gone, page.files) == (404, [])
