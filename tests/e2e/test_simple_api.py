"""The served pages against the specs: PEP 503 (HTML), PEP 691 (JSON), PEP 658/714 (metadata),
PEP 700 (upload-time, versions, size), PEP 792 (project status), and the PyPI-style JSON API.

One module-wide set of projects is uploaded once with twine; tests that need to change a project
(serials, cache invalidation, upload-time stability) upload to projects of their own.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import json
import os
import re
import socket
import tarfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from packaging.specifiers import SpecifierSet

from tests.support import clients
from tests.support.dists import Dist, make_sdist, make_wheel, metadata_text
from tests.support.server import Server, start_server

pytestmark = pytest.mark.slow

JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
PIP_ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"
UV_ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
UPLOAD_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# -- HTTP without any client-side magic (no redirects followed, no Accept added) -------------
@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> dict:  # type: ignore[type-arg]
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


def _address(server: Server) -> tuple[str, int]:
    parts = urlsplit(server.url)
    assert parts.hostname == "127.0.0.1"
    return parts.hostname, int(parts.port or 80)


def fetch(server: Server, path: str, *, method: str = "GET", headers: dict[str, str] | None = None) -> Reply:
    host, port = _address(server)
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        body = resp.read()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, body)
    finally:
        conn.close()


def raw_fetch(server: Server, path: str, *, method: str, headers: dict[str, str] | None = None) -> Reply:
    """Reads everything the server sends until it closes: shows a body a client would skip
    (http.client never reads a body after HEAD or 304)."""
    host, port = _address(server)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    data = b"".join(chunks)
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep, f"no end of headers in {data!r}"
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    hdrs = {}
    for line in header_lines:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return Reply(int(status_line.split()[1]), hdrs, body)


def page_path(name: str) -> str:
    return f"/simple/{norm(name)}/"


def simple_json(server: Server, name: str) -> dict:  # type: ignore[type-arg]
    reply = fetch(server, page_path(name), headers={"Accept": JSON_V1})
    assert reply.status == 200, reply
    return reply.json()


def simple_html(server: Server, name: str) -> Reply:
    reply = fetch(server, page_path(name), headers={"Accept": "text/html"})
    assert reply.status == 200, reply
    return reply


def file_path(project: str, url: str) -> str:
    """The path of a file link, resolved against the project page it appears on."""
    resolved = urljoin(f"http://127.0.0.1{page_path(project)}", url)
    parts = urlsplit(resolved)
    return parts.path


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.anchors: list[tuple[dict[str, str | None], str]] = []
        self.meta: dict[str, str | None] = {}
        self._open: dict[str, str | None] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._open, self._text = dict(attrs), []
        elif tag == "meta":
            d = dict(attrs)
            if d.get("name"):
                self.meta[str(d["name"])] = d.get("content")

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._open is not None:
            self.anchors.append((self._open, "".join(self._text).strip()))
            self._open = None


def parse_html(body: bytes) -> Links:
    parser = Links()
    parser.feed(body.decode("utf-8"))
    parser.close()
    return parser


def anchors_by_filename(body: bytes) -> dict[str, dict[str, str | None]]:
    return {text: attrs for attrs, text in parse_html(body).anchors}


def serial_of(reply: Reply) -> int:
    value = reply.header("X-PyPI-Last-Serial")
    assert value is not None and value.isdigit(), f"X-PyPI-Last-Serial missing or not a number: {value!r}"
    return int(value)


def upload(server: Server, *dists: Dist) -> None:
    result = clients.twine_upload(server.legacy, server.admin_token, *(d.path for d in dists))
    assert result.returncode == 0, result.stdout + result.stderr


# -- the module's projects ----------------------------------------------------------------
@dataclass
class Published:
    main: str  # display name, not normalized
    dyn: str  # sdist with Dynamic: Requires-Dist (and a wheel)
    dynpy: str  # sdist with Dynamic: Requires-Python
    old: str  # sdist with Metadata-Version 2.1
    dists: dict[str, list[Dist]] = field(default_factory=dict)
    # filename -> whether PEP 658 metadata must be served
    serves_metadata: dict[str, bool] = field(default_factory=dict)

    @property
    def projects(self) -> list[str]:
        return [self.main, self.dyn, self.dynpy, self.old]

    def by_filename(self, project: str) -> dict[str, Dist]:
        return {d.filename: d for d in self.dists[project]}

    def all_dists(self) -> list[tuple[str, Dist]]:
        return [(p, d) for p in self.projects for d in self.dists[p]]


MAIN_REQUIRES = ["attrs>=21", 'tomli>=1; python_version < "3.11"']


@pytest.fixture(scope="module")
def published(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Published:
    u = f"sa{os.getpid()}"
    out = tmp_path_factory.mktemp("simple-api-dists")
    pub = Published(main=f"Spec_Pkg.{u}", dyn=f"dyn-req-{u}", dynpy=f"dyn-py-{u}", old=f"old-meta-{u}")
    m = pub.main
    pub.dists[m] = [
        make_wheel(out, m, "1.0", requires=MAIN_REQUIRES, requires_python=">=3.8,<4"),
        make_sdist(out, m, "1.0", metadata=metadata_text(m, "1.0", requires=MAIN_REQUIRES,
                                                         requires_python=">=3.8,<4", metadata_version="2.2")),
        make_wheel(out, m, "1.1", metadata=metadata_text(m, "1.1", requires=["attrs>=22"], requires_python=">=3.9",
                                                         summary="the newest final release")),
        make_sdist(out, m, "1.1", metadata=metadata_text(m, "1.1", requires=["attrs>=22"],
                                                         requires_python=">=3.9", metadata_version="2.3",
                                                         summary="the newest final release")),
        make_wheel(out, m, "2.0b1", requires=["attrs>=23"], requires_python=">=3.10"),
    ]
    pub.dists[pub.dyn] = [
        make_sdist(out, pub.dyn, "1.0", metadata_version="2.2", dynamic=["Requires-Dist"]),
        make_wheel(out, pub.dyn, "1.0", requires=["attrs"]),
    ]
    pub.dists[pub.dynpy] = [
        make_sdist(out, pub.dynpy, "0.5", metadata=metadata_text(
            pub.dynpy, "0.5", requires=["attrs"], requires_python=None, metadata_version="2.2",
            dynamic=["Requires-Python"])),
    ]
    pub.dists[pub.old] = [make_sdist(out, pub.old, "3.0", metadata_version="2.1")]
    for _project, d in pub.all_dists():
        sdist = d.filename.endswith(".tar.gz")
        pub.serves_metadata[d.filename] = not sdist or _sdist_serves(d)
    upload(server, *(d for _p, d in pub.all_dists()))
    return pub


def _sdist_serves(d: Dist) -> bool:
    text = d.metadata.decode()
    version = re.search(r"^Metadata-Version: (\S+)$", text, re.M)
    assert version
    dynamic = {v.lower() for v in re.findall(r"^Dynamic: (.+)$", text, re.M)}
    major, minor = map(int, version.group(1).split("."))
    return (major, minor) >= (2, 2) and not ({"requires-dist", "requires-python"} & dynamic)


def test_the_fixture_covers_both_kinds_of_sdist(published: Published) -> None:
    served = [f for f, s in published.serves_metadata.items() if f.endswith(".tar.gz") and s]
    not_served = [f for f, s in published.serves_metadata.items() if f.endswith(".tar.gz") and not s]
    assert len(served) == 2 and len(not_served) == 3, published.serves_metadata


# -- PEP 503: the root page ---------------------------------------------------------------
def test_root_html_links_every_project_to_its_normalized_name(server: Server, published: Published) -> None:
    reply = fetch(server, "/simple/", headers={"Accept": "text/html"})
    assert reply.status == 200
    hrefs = {attrs["href"] for attrs, _text in parse_html(reply.body).anchors}
    for project in published.projects:
        assert norm(project) + "/" in hrefs, (project, hrefs)
    # Every project the JSON root knows has its link in the HTML root, and nothing else.
    names = {norm(p["name"]) + "/" for p in fetch(server, "/simple/", headers={"Accept": JSON_V1}).json()["projects"]}
    assert hrefs == names


def test_root_html_declares_the_api_version(server: Server, published: Published) -> None:
    meta = parse_html(fetch(server, "/simple/").body).meta
    assert meta.get("pypi:repository-version") == "1.4"


def test_root_json_lists_the_projects_by_name(server: Server, published: Published) -> None:
    reply = fetch(server, "/simple/", headers={"Accept": JSON_V1})
    assert reply.status == 200
    assert reply.header("Content-Type") == JSON_V1
    doc = reply.json()
    assert doc["meta"]["api-version"] == "1.4"
    assert isinstance(doc["projects"], list)
    assert all(isinstance(p, dict) and isinstance(p.get("name"), str) for p in doc["projects"])
    names = {norm(p["name"]) for p in doc["projects"]}
    assert {norm(p) for p in published.projects} <= names


# -- PEP 503: the project page ------------------------------------------------------------
def test_project_html_meta_tags(server: Server, published: Published) -> None:
    meta = parse_html(simple_html(server, published.main).body).meta
    assert meta.get("pypi:repository-version") == "1.4"
    assert meta.get("pypi:project-status") == "active"


def test_project_html_lists_every_file_with_its_sha256_fragment(server: Server, published: Published) -> None:
    for project in published.projects:
        anchors = anchors_by_filename(simple_html(server, project).body)
        expected = published.by_filename(project)
        assert set(anchors) == set(expected), project
        for filename, attrs in anchors.items():
            href = attrs["href"]
            assert href is not None
            assert href.endswith(f"#sha256={expected[filename].sha256}"), href
            # The link itself leads to exactly those bytes.
            data = fetch(server, file_path(project, href.partition("#")[0])).body
            assert hashlib.sha256(data).hexdigest() == expected[filename].sha256
            assert urlsplit(href).path.endswith("/" + filename)


def test_project_html_requires_python_is_html_escaped(server: Server, published: Published) -> None:
    reply = simple_html(server, published.main)
    raw_attrs = re.findall(r'data-requires-python="([^"]*)"', reply.text)
    assert raw_attrs, reply.text
    assert all("<" not in v and ">" not in v for v in raw_attrs), raw_attrs
    assert any("&lt;" in v for v in raw_attrs) and any("&gt;" in v for v in raw_attrs), raw_attrs
    anchors = anchors_by_filename(reply.body)
    wheel_10 = next(d for d in published.dists[published.main] if d.version == "1.0" and d.filename.endswith(".whl"))
    value = anchors[wheel_10.filename]["data-requires-python"]
    assert value is not None and SpecifierSet(value) == SpecifierSet(">=3.8,<4"), value
    by_version = {d.filename: d.version for d in published.dists[published.main]}
    wanted = {"1.0": ">=3.8,<4", "1.1": ">=3.9", "2.0b1": ">=3.10"}
    for filename, attrs in anchors.items():
        assert SpecifierSet(attrs["data-requires-python"] or "") == SpecifierSet(wanted[by_version[filename]])


def test_project_html_without_requires_python_has_no_attribute(server: Server, published: Published) -> None:
    anchors = anchors_by_filename(simple_html(server, published.dynpy).body)
    assert len(anchors) == 1
    (attrs,) = anchors.values()
    assert "data-requires-python" not in attrs, attrs


def test_project_html_core_metadata_attributes(server: Server, published: Published) -> None:
    for project in published.projects:
        anchors = anchors_by_filename(simple_html(server, project).body)
        for filename, dist in published.by_filename(project).items():
            attrs = anchors[filename]
            if published.serves_metadata[filename]:
                want = f"sha256={hashlib.sha256(dist.metadata).hexdigest()}"
                assert attrs.get("data-core-metadata") == want, (filename, attrs)
                assert attrs.get("data-dist-info-metadata") == want, (filename, attrs)
            else:
                assert "data-core-metadata" not in attrs, (filename, attrs)
                assert "data-dist-info-metadata" not in attrs, (filename, attrs)


# -- PEP 691 JSON -------------------------------------------------------------------------
def test_project_json_content_type_and_api_version(server: Server, published: Published) -> None:
    reply = fetch(server, page_path(published.main), headers={"Accept": JSON_V1})
    assert reply.status == 200
    assert reply.header("Content-Type") == JSON_V1
    doc = reply.json()
    assert doc["meta"]["api-version"] == "1.4"


def test_project_json_name_is_normalized(server: Server, published: Published) -> None:
    for project in published.projects:
        assert simple_json(server, project)["name"] == norm(project)
    assert norm(published.main) != published.main  # the case is a real one


def test_project_json_files_filename_url_and_sha256(server: Server, published: Published) -> None:
    for project in published.projects:
        files = simple_json(server, project)["files"]
        expected = published.by_filename(project)
        assert sorted(f["filename"] for f in files) == sorted(expected)
        for f in files:
            assert f["hashes"]["sha256"] == expected[f["filename"]].sha256
            assert HEX64.match(f["hashes"]["sha256"])
            reply = fetch(server, file_path(project, f["url"]))
            assert reply.status == 200, f["url"]
            assert reply.body == expected[f["filename"]].path.read_bytes()


def test_project_json_requires_python(server: Server, published: Published) -> None:
    wanted = {"1.0": ">=3.8,<4", "1.1": ">=3.9", "2.0b1": ">=3.10"}
    expected = published.by_filename(published.main)
    for f in simple_json(server, published.main)["files"]:
        assert SpecifierSet(f["requires-python"]) == SpecifierSet(wanted[expected[f["filename"]].version])
    (f,) = simple_json(server, published.dynpy)["files"]
    assert f["requires-python"] is None


def test_project_json_core_metadata(server: Server, published: Published) -> None:
    for project in published.projects:
        for f in simple_json(server, project)["files"]:
            dist = published.by_filename(project)[f["filename"]]
            if published.serves_metadata[f["filename"]]:
                want = {"sha256": hashlib.sha256(dist.metadata).hexdigest()}
                assert f["core-metadata"] == want, f
                assert f["dist-info-metadata"] == want, f
            else:
                assert f["core-metadata"] is False, f
                assert f["dist-info-metadata"] is False, f


def test_project_json_yanked_and_size(server: Server, published: Published) -> None:
    for project in published.projects:
        for f in simple_json(server, project)["files"]:
            assert f["yanked"] is False
            assert type(f["size"]) is int
            assert f["size"] == published.by_filename(project)[f["filename"]].path.stat().st_size


def test_project_json_versions_lists_every_version(server: Server, published: Published) -> None:
    doc = simple_json(server, published.main)
    assert sorted(doc["versions"]) == sorted({"1.0", "1.1", "2.0b1"})
    assert len(doc["versions"]) == 3


def test_project_json_project_status(server: Server, published: Published) -> None:
    for project in published.projects:
        assert simple_json(server, project)["project-status"] == {"status": "active"}


def test_project_json_upload_time_format_and_stability(server: Server, unique: str, dists: Path) -> None:
    name = f"times-{unique}"
    first = make_wheel(dists, name, "1.0")
    before = datetime.now(UTC)
    upload(server, first)
    after = datetime.now(UTC)
    doc = simple_json(server, name)
    (f,) = doc["files"]
    stamp = f["upload-time"]
    assert UPLOAD_TIME.match(stamp), stamp
    when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    assert before.timestamp() - 5 <= when.timestamp() <= after.timestamp() + 5, (before, stamp, after)

    assert simple_json(server, name)["files"][0]["upload-time"] == stamp
    time.sleep(0.01)
    upload(server, make_sdist(dists, name, "1.0"), first)  # a new file, and the same one again
    files = {x["filename"]: x for x in simple_json(server, name)["files"]}
    assert len(files) == 2
    assert files[first.filename]["upload-time"] == stamp
    assert UPLOAD_TIME.match(files[f"{name.replace('-', '_')}-1.0.tar.gz"]["upload-time"])
    # The JSON API reports the same instant.
    api = fetch(server, f"/pypi/{norm(name)}/json").json()
    by_file = {x["filename"]: x for x in api["releases"]["1.0"]}
    assert datetime.fromisoformat(by_file[first.filename]["upload_time_iso_8601"].replace("Z", "+00:00")) == when


# -- content negotiation ------------------------------------------------------------------
@pytest.mark.parametrize(("accept", "want"), [
    pytest.param(PIP_ACCEPT, JSON_V1, id="pip"),
    pytest.param(UV_ACCEPT, JSON_V1, id="uv"),
    pytest.param(JSON_V1, JSON_V1, id="json-only"),
    pytest.param("application/vnd.pypi.simple.latest+json", JSON_V1, id="latest-json"),
    pytest.param(HTML_V1, HTML_V1, id="html-v1-only"),
    pytest.param(f"{HTML_V1}, text/html;q=0.01", HTML_V1, id="html-v1-then-text-html"),
    pytest.param("text/html", "text/html", id="text-html"),
    pytest.param(None, "text/html", id="no-accept"),
    pytest.param("application/xml", "text/html", id="unmatched"),
    pytest.param(f"{JSON_V1};q=0, text/html", "text/html", id="json-refused"),
    pytest.param(f"text/html;q=0.5, {JSON_V1};q=0.9", JSON_V1, id="weights-not-order"),
])
@pytest.mark.parametrize("where", ["project", "root"])
def test_content_negotiation(server: Server, published: Published, accept: str | None, want: str,
                             where: str) -> None:
    path = page_path(published.main) if where == "project" else "/simple/"
    reply = fetch(server, path, headers={"Accept": accept} if accept else {})
    assert reply.status == 200
    ctype = reply.header("Content-Type") or ""
    media = ctype.split(";")[0].strip()
    assert media == want, (accept, ctype)
    if want == JSON_V1:
        assert reply.json()["meta"]["api-version"] == "1.4"
    else:
        assert reply.text.lstrip().lower().startswith("<!doctype html>"), reply.text[:80]
    vary = [v.strip().lower() for v in (reply.header("Vary") or "").split(",")]
    assert "accept" in vary, reply.headers


# -- names: redirects and misses ----------------------------------------------------------
@pytest.mark.parametrize(("path", "location"), [
    ("/simple/Foo_Bar/", "/simple/foo-bar/"),
    ("/simple/foo.bar", "/simple/foo-bar/"),
    ("/simple/foo-bar", "/simple/foo-bar/"),
    ("/simple/FOO--bar/", "/simple/foo-bar/"),
])
def test_non_normalized_names_redirect(server: Server, path: str, location: str) -> None:
    reply = fetch(server, path)
    assert reply.status == 301, reply
    assert urlsplit(reply.header("Location") or "").path == location


def test_non_normalized_name_of_a_real_project_redirects_to_its_page(server: Server, published: Published) -> None:
    for variant in (f"/simple/{published.main}/", f"/simple/{published.main.upper()}"):
        reply = fetch(server, variant, headers={"Accept": JSON_V1})
        assert reply.status == 301, variant
        location = urljoin(server.url, reply.header("Location") or "")
        assert urlsplit(location).path == page_path(published.main)
        target = fetch(server, urlsplit(location).path, headers={"Accept": JSON_V1})
        assert target.status == 200 and target.json()["name"] == norm(published.main)


@pytest.mark.parametrize("accept", [None, JSON_V1, PIP_ACCEPT])
def test_unknown_project_is_404(server: Server, unique: str, accept: str | None) -> None:
    reply = fetch(server, f"/simple/no-such-{unique}/", headers={"Accept": accept} if accept else {})
    assert reply.status == 404


# -- caching headers ----------------------------------------------------------------------
@pytest.mark.parametrize("accept", ["text/html", JSON_V1, PIP_ACCEPT])
@pytest.mark.parametrize("where", ["project", "root"])
def test_if_none_match_gives_304_without_body(server: Server, published: Published, accept: str,
                                              where: str) -> None:
    path = page_path(published.main) if where == "project" else "/simple/"
    first = fetch(server, path, headers={"Accept": accept})
    etag = first.header("ETag")
    assert first.status == 200 and etag, first.headers
    again = raw_fetch(server, path, method="GET", headers={"Accept": accept, "If-None-Match": etag})
    assert again.status == 304, again
    assert again.body == b"", again.body[:100]
    assert again.header("ETag") == etag
    # A stale tag gets the page.
    stale = fetch(server, path, headers={"Accept": accept, "If-None-Match": '"0123"'})
    assert stale.status == 200 and stale.body == first.body


def test_etag_differs_between_html_and_json(server: Server, published: Published) -> None:
    for path in (page_path(published.main), "/simple/"):
        html = fetch(server, path, headers={"Accept": "text/html"})
        as_json = fetch(server, path, headers={"Accept": JSON_V1})
        assert html.header("ETag") and as_json.header("ETag")
        assert html.header("ETag") != as_json.header("ETag")
        # The HTML tag does not validate the JSON representation.
        cross = fetch(server, path, headers={"Accept": JSON_V1, "If-None-Match": html.header("ETag") or ""})
        assert cross.status == 200 and cross.json()["meta"]["api-version"] == "1.4"


def test_head_on_a_page_sends_headers_only(server: Server, published: Published) -> None:
    got = fetch(server, page_path(published.main), headers={"Accept": JSON_V1})
    head = raw_fetch(server, page_path(published.main), method="HEAD", headers={"Accept": JSON_V1})
    assert head.status == 200
    assert head.body == b""
    assert head.header("ETag") == got.header("ETag")
    assert head.header("Content-Length") == str(len(got.body))


def test_last_serial_increases_after_each_upload(server: Server, unique: str, dists: Path) -> None:
    name = f"serial-{unique}"
    serials = []
    root_serials = [serial_of(fetch(server, "/simple/"))]
    for version in ("1.0", "1.1", "1.2"):
        upload(server, make_wheel(dists, name, version))
        html = fetch(server, page_path(name))
        as_json = fetch(server, page_path(name), headers={"Accept": JSON_V1})
        assert serial_of(html) == serial_of(as_json) == as_json.json()["meta"]["_last-serial"]
        serials.append(serial_of(html))
        root = fetch(server, "/simple/")
        root_serials.append(serial_of(root))
        # The root page carries the global serial: nothing newer exists than this upload.
        assert serial_of(root) == serials[-1], (serial_of(root), serials)
        assert serial_of(fetch(server, "/simple/", headers={"Accept": JSON_V1})) == serials[-1]
    assert serials == sorted(set(serials)), serials
    assert root_serials == sorted(set(root_serials)), root_serials
    # An identical re-upload changes nothing, so the serial stays.
    upload(server, make_wheel(dists, name, "1.2"))
    assert serial_of(fetch(server, page_path(name))) == serials[-1]


def test_new_upload_is_visible_at_once(server: Server, unique: str, dists: Path) -> None:
    name = f"fresh-{unique}"
    upload(server, make_wheel(dists, name, "1.0"))
    # Warm every cached representation first.
    for accept in ("text/html", JSON_V1):
        fetch(server, page_path(name), headers={"Accept": accept})
        fetch(server, "/simple/", headers={"Accept": accept})
    second = make_wheel(dists, name, "2.0")
    upload(server, second)
    assert second.filename in anchors_by_filename(simple_html(server, name).body)
    doc = simple_json(server, name)
    assert second.filename in {f["filename"] for f in doc["files"]}
    assert "2.0" in doc["versions"]
    assert fetch(server, f"/pypi/{norm(name)}/json").json()["info"]["version"] == "2.0"
    # A brand-new project shows up at once too, even right after its name was asked for (a 404).
    other = f"fresh2-{unique}"
    for accept in ("text/html", JSON_V1):
        assert fetch(server, page_path(other), headers={"Accept": accept}).status == 404
    assert fetch(server, f"/pypi/{norm(other)}/json").status == 404
    upload(server, make_wheel(dists, other, "0.1"))
    for accept in ("text/html", JSON_V1):
        assert fetch(server, page_path(other), headers={"Accept": accept}).status == 200, accept
    assert fetch(server, f"/pypi/{norm(other)}/json").status == 200
    assert norm(other) + "/" in {a["href"] for a, _t in parse_html(fetch(server, "/simple/").body).anchors}
    assert norm(other) in {norm(p["name"]) for p in
                           fetch(server, "/simple/", headers={"Accept": JSON_V1}).json()["projects"]}


@pytest.fixture(scope="module")
def slow_checking_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server that never looks for other processes' changes during a test: only its own
    after-commit invalidation can make a new upload visible."""
    root = tmp_path_factory.mktemp("slow-check")
    config = root / "moorage.toml"
    config.write_text("[server]\ncache_check_interval = 3600\n")
    srv = start_server(root / "data", config=config)
    yield srv
    srv.stop()


def test_new_upload_is_visible_at_once_by_invalidation(slow_checking_server: Server, unique: str,
                                                       dists: Path) -> None:
    server = slow_checking_server
    name, other = f"inval-{unique}", f"inval2-{unique}"
    upload(server, make_wheel(dists, name, "1.0"))
    for accept in ("text/html", JSON_V1):
        assert fetch(server, page_path(name), headers={"Accept": accept}).status == 200
        assert fetch(server, "/simple/", headers={"Accept": accept}).status == 200
        assert fetch(server, page_path(other), headers={"Accept": accept}).status == 404
    second = make_wheel(dists, name, "2.0")
    upload(server, second, make_wheel(dists, other, "0.1"))
    assert second.filename in anchors_by_filename(simple_html(server, name).body)
    assert "2.0" in simple_json(server, name)["versions"]
    for accept in ("text/html", JSON_V1):
        assert fetch(server, page_path(other), headers={"Accept": accept}).status == 200, accept
    assert norm(other) + "/" in {a["href"] for a, _t in parse_html(fetch(server, "/simple/").body).anchors}
    assert norm(other) in {norm(p["name"]) for p in
                           fetch(server, "/simple/", headers={"Accept": JSON_V1}).json()["projects"]}


# -- files --------------------------------------------------------------------------------
def _files(server: Server, published: Published) -> list[tuple[str, Dist, dict]]:  # type: ignore[type-arg]
    found = []
    for project in published.projects:
        for f in simple_json(server, project)["files"]:
            found.append((file_path(project, f["url"]), published.by_filename(project)[f["filename"]], f))
    return found


def test_file_get_returns_the_exact_bytes(server: Server, published: Published) -> None:
    files = _files(server, published)
    assert len(files) == len(published.all_dists())
    for path, dist, _f in files:
        reply = fetch(server, path)
        data = dist.path.read_bytes()
        assert reply.status == 200
        assert reply.body == data
        assert reply.header("Content-Length") == str(len(data))
        assert "immutable" in (reply.header("Cache-Control") or ""), reply.headers


def test_file_head_sends_headers_only(server: Server, published: Published) -> None:
    path, dist, _f = _files(server, published)[0]
    reply = raw_fetch(server, path, method="HEAD")
    assert reply.status == 200
    assert reply.body == b""
    assert reply.header("Content-Length") == str(dist.path.stat().st_size)
    assert "immutable" in (reply.header("Cache-Control") or "")


def test_file_range_request(server: Server, published: Published) -> None:
    path, dist, _f = _files(server, published)[0]
    data = dist.path.read_bytes()
    reply = fetch(server, path, headers={"Range": "bytes=0-9"})
    assert reply.status == 206, reply.headers
    assert reply.body == data[:10]
    assert reply.header("Content-Range") == f"bytes 0-9/{len(data)}"
    assert reply.header("Content-Length") == "10"


def test_file_suffix_range(server: Server, published: Published) -> None:
    path, dist, _f = _files(server, published)[0]
    data = dist.path.read_bytes()
    reply = fetch(server, path, headers={"Range": "bytes=-22"})  # the zip's end-of-central-directory
    assert reply.status == 206, reply.headers
    assert reply.body == data[-22:]
    assert reply.header("Content-Range") == f"bytes {len(data) - 22}-{len(data) - 1}/{len(data)}"


def test_file_unsatisfiable_range(server: Server, published: Published) -> None:
    path, dist, _f = _files(server, published)[0]
    size = dist.path.stat().st_size
    reply = fetch(server, path, headers={"Range": f"bytes={size + 10}-{size + 20}"})
    assert reply.status == 416, reply
    assert reply.header("Content-Range") == f"bytes */{size}"


@pytest.mark.parametrize("header", ["bytes=abc", "bytes=10-5", "bytes=", "bytes=1-2-3", "bytes=-", "items=0-9",
                                    "bytes 0-9", "bytes=0-9,x"])
def test_a_range_header_the_server_cannot_read_is_ignored(server: Server, published: Published,
                                                         header: str) -> None:
    """RFC 9110 section 14.2: a server may ignore an invalid Range and send the whole file (200), and
    must ignore one in a unit it does not know."""
    path, dist, _f = _files(server, published)[0]
    data = dist.path.read_bytes()
    reply = fetch(server, path, headers={"Range": header})
    assert reply.status == 200, (header, reply.status, reply.body[:200])
    assert reply.body == data
    assert reply.header("Content-Range") is None
    metadata = fetch(server, path + ".metadata", headers={"Range": header})
    assert metadata.status == 200, (header, metadata.status)


@pytest.mark.parametrize("suffix", ["", ".metadata"])
def test_if_none_match_with_the_files_own_etag_is_304(server: Server, published: Published, suffix: str) -> None:
    path, dist, _f = next(f for f in _files(server, published) if f[1].filename.endswith(".whl"))
    first = fetch(server, path + suffix)
    etag = first.header("ETag")
    assert first.status == 200 and etag
    for sent in (etag, f"W/{etag}", f'"0123", {etag}', "*"):
        for method in ("GET", "HEAD"):
            again = raw_fetch(server, path + suffix, method=method, headers={"If-None-Match": sent})
            assert again.status == 304, (sent, method, again.status)
            assert again.body == b""
            assert again.header("ETag") == etag
            assert "immutable" in (again.header("Cache-Control") or "")
    other = fetch(server, path + suffix, headers={"If-None-Match": '"0123"'})
    assert other.status == 200 and other.body == first.body


def test_file_with_the_wrong_sha256_is_404(server: Server, published: Published) -> None:
    path, dist, _f = _files(server, published)[0]
    wrong = hashlib.sha256(b"something else").hexdigest()
    assert fetch(server, path.replace(dist.sha256, wrong)).status == 404
    assert fetch(server, path.replace(dist.sha256, wrong) + ".metadata").status == 404
    assert fetch(server, f"/files/{dist.sha256}/no-such-file-1.0.tar.gz").status == 404
    assert fetch(server, path).status == 200


def test_wheel_metadata_file_is_the_wheels_METADATA(server: Server, published: Published) -> None:
    checked = 0
    for path, dist, f in _files(server, published):
        if not dist.filename.endswith(".whl"):
            continue
        with zipfile.ZipFile(io.BytesIO(fetch(server, path).body)) as zf:
            (member,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
            inside = zf.read(member)
        reply = fetch(server, path + ".metadata")
        assert reply.status == 200, path
        assert reply.body == inside
        assert hashlib.sha256(reply.body).hexdigest() == f["core-metadata"]["sha256"]
        checked += 1
    assert checked == sum(d.filename.endswith(".whl") for _p, d in published.all_dists()) == 4


def test_sdist_metadata_file_is_the_pkg_info(server: Server, published: Published) -> None:
    checked = 0
    for path, dist, f in _files(server, published):
        if not dist.filename.endswith(".tar.gz") or not published.serves_metadata[dist.filename]:
            continue
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(fetch(server, path).body))) as tar:
            (member,) = [m for m in tar.getmembers() if m.name.count("/") == 1 and m.name.endswith("/PKG-INFO")]
            extracted = tar.extractfile(member)
            assert extracted is not None
            pkg_info = extracted.read()
        reply = fetch(server, path + ".metadata")
        assert reply.status == 200, path
        assert reply.body == pkg_info
        assert hashlib.sha256(reply.body).hexdigest() == f["core-metadata"]["sha256"]
        checked += 1
    assert checked == 2


def test_no_metadata_file_for_old_or_dynamic_sdists(server: Server, published: Published) -> None:
    missing = [(path, dist) for path, dist, _f in _files(server, published)
               if not published.serves_metadata[dist.filename]]
    assert {d.filename for _p, d in missing} == {
        published.dists[published.dyn][0].filename,
        published.dists[published.dynpy][0].filename,
        published.dists[published.old][0].filename,
    }
    for path, _dist in missing:
        assert fetch(server, path + ".metadata").status == 404, path
        assert fetch(server, path).status == 200


# -- the PyPI-style JSON API --------------------------------------------------------------
def test_pypi_json_info(server: Server, published: Published) -> None:
    reply = fetch(server, f"/pypi/{norm(published.main)}/json")
    assert reply.status == 200
    assert (reply.header("Content-Type") or "").startswith("application/json")
    info = reply.json()["info"]
    assert info["name"] == published.main
    assert info["version"] == "1.1"  # the newest final release; 2.0b1 is a pre-release
    assert info["summary"] == "the newest final release"
    assert info["requires_dist"] == ["attrs>=22"]
    assert SpecifierSet(info["requires_python"]) == SpecifierSet(">=3.9")
    assert info["description_content_type"] == "text/markdown"
    assert info["yanked"] is False and info["yanked_reason"] is None


def test_pypi_json_info_keeps_markers(server: Server, published: Published) -> None:
    info = fetch(server, f"/pypi/{norm(published.main)}/1.0/json").json()["info"]
    assert info["version"] == "1.0"
    assert info["requires_dist"] == MAIN_REQUIRES
    assert SpecifierSet(info["requires_python"]) == SpecifierSet(">=3.8,<4")


def test_pypi_json_releases_and_urls(server: Server, published: Published) -> None:
    doc = fetch(server, f"/pypi/{norm(published.main)}/json").json()
    expected: dict[str, set[str]] = {}
    for d in published.dists[published.main]:
        expected.setdefault(d.version, set()).add(d.filename)
    assert set(doc["releases"]) == set(expected)
    for version, files in doc["releases"].items():
        assert {f["filename"] for f in files} == expected[version]
    assert {f["filename"] for f in doc["urls"]} == expected["1.1"]


def test_pypi_json_digests_match_the_bytes(server: Server, published: Published) -> None:
    for project in published.projects:
        doc = fetch(server, f"/pypi/{norm(project)}/json").json()
        files = [f for fs in doc["releases"].values() for f in fs]
        assert {f["filename"] for f in files} == set(published.by_filename(project))
        for f in files:
            data = fetch(server, urlsplit(f["url"]).path).body
            assert urlsplit(f["url"]).hostname == "127.0.0.1"
            assert data == published.by_filename(project)[f["filename"]].path.read_bytes()
            assert f["digests"]["sha256"] == hashlib.sha256(data).hexdigest()
            assert f["digests"]["md5"] == hashlib.md5(data).hexdigest()
            assert f["md5_digest"] == hashlib.md5(data).hexdigest()
            assert f["digests"]["blake2b_256"] == hashlib.blake2b(data, digest_size=32).hexdigest()
            assert f["size"] == len(data)


def test_pypi_json_file_fields(server: Server, published: Published) -> None:
    doc = fetch(server, f"/pypi/{norm(published.main)}/json").json()
    simple = {f["filename"]: f for f in simple_json(server, published.main)["files"]}
    for version, files in doc["releases"].items():
        for f in files:
            assert UPLOAD_TIME.match(f["upload_time_iso_8601"]), f["upload_time_iso_8601"]
            assert f["upload_time_iso_8601"] == simple[f["filename"]]["upload-time"]
            assert f["yanked"] is False
            assert f["yanked_reason"] is None
            assert f["packagetype"] == ("sdist" if f["filename"].endswith(".tar.gz") else "bdist_wheel")
            wanted = {"1.0": ">=3.8,<4", "1.1": ">=3.9", "2.0b1": ">=3.10"}[version]
            assert SpecifierSet(f["requires_python"]) == SpecifierSet(wanted)
    (dynpy,) = fetch(server, f"/pypi/{norm(published.dynpy)}/json").json()["urls"]
    assert dynpy["requires_python"] is None


def test_pypi_version_json(server: Server, published: Published) -> None:
    reply = fetch(server, f"/pypi/{norm(published.main)}/2.0b1/json")
    assert reply.status == 200
    doc = reply.json()
    assert doc["info"]["version"] == "2.0b1"
    assert doc["info"]["requires_dist"] == ["attrs>=23"]
    assert [f["filename"] for f in doc["urls"]] == [
        d.filename for d in published.dists[published.main] if d.version == "2.0b1"]
    # An equivalent spelling of the version finds the same release.
    assert fetch(server, f"/pypi/{norm(published.main)}/1.1.0/json").json()["info"]["version"] == "1.1"


@pytest.mark.parametrize("tail", ["json", "1.0/json"])
def test_pypi_json_non_normalized_name_redirects(server: Server, published: Published, tail: str) -> None:
    reply = fetch(server, f"/pypi/{published.main}/{tail}")
    assert reply.status in (301, 308), reply
    assert urlsplit(reply.header("Location") or "").path == f"/pypi/{norm(published.main)}/{tail}"


@pytest.mark.parametrize("path", ["/pypi/no-such-{u}/json", "/pypi/no-such-{u}/1.0/json",
                                  "/pypi/{main}/9.9/json"])
def test_pypi_json_unknown_is_404(server: Server, published: Published, unique: str, path: str) -> None:
    reply = fetch(server, path.format(u=unique, main=norm(published.main)))
    assert reply.status == 404, reply


def test_pypi_json_last_serial(server: Server, published: Published) -> None:
    for path in (f"/pypi/{norm(published.main)}/json", f"/pypi/{norm(published.main)}/1.0/json"):
        reply = fetch(server, path)
        doc = reply.json()
        assert isinstance(doc["last_serial"], int) and doc["last_serial"] > 0
        assert serial_of(reply) == doc["last_serial"]
        assert doc["last_serial"] == serial_of(simple_html(server, published.main))
