"""The management API's OpenAPI document says exactly what the server accepts and answers.

Schemathesis drives the real server from `/api/openapi.json` (every check, positive and
negative data); the focused tests pin what an independent trial found: bodies marked optional
where fields are required, bounds the document left out, null taken for a number, a 405 without
Allow, and requests that were answered 500.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema_rs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.version import InvalidVersion, Version

from moorage.web.manage import ACTIONS, NON_BLANK, VERSION
from tests.support.dists import make_sdist, make_wheel
from tests.support.server import Server, raw_request, start_server
from tests.support.upload import post_upload

Answer = tuple[int, dict[str, str], Any]


def call(server: Server, method: str, path: str, body: bytes | None = None, token: str | None = None) -> Answer:
    """(status, headers, JSON body or None) of one request."""
    import http.client

    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        answer = {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()
    try:
        return resp.status, answer, json.loads(raw) if raw else None
    except ValueError:
        return resp.status, answer, raw


def post(server: Server, project: str, verb: str, token: str, body: object) -> Answer:
    return call(server, "POST", f"/api/projects/{project}/{verb}", json.dumps(body).encode(), token)


def document(server: Server) -> dict[str, Any]:
    status, _, doc = call(server, "GET", "/api/openapi.json")
    assert status == 200
    return doc  # type: ignore[no-any-return]


def body_schema(doc: dict[str, Any], verb: str) -> dict[str, Any]:
    schema = doc["paths"][f"/api/projects/{{project}}/{verb}"]["post"]["requestBody"]["content"]
    return {**schema["application/json"]["schema"], "components": doc["components"]}


@pytest.fixture(scope="module")
def owned(server: Server, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A project with a release, owned by a fresh user: (project, the owner's token). The tests
    that change it put it back."""
    unique = f"p{os.getpid()}x{time.monotonic_ns()}"
    user = f"doc{unique}"
    server.cli("user", "add", user)
    token = server.cli("token", "create", user).stdout.strip()
    project = f"documented-{unique}"
    wheel = make_wheel(tmp_path_factory.mktemp("dists"), project, "1.0")
    status, reason, _ = post_upload(server.legacy, token, wheel.path)
    assert status == 200, reason
    return project, token


# -- what the trial found -----------------------------------------------------------------------
def test_a_body_is_marked_required_exactly_when_the_action_has_required_fields(server: Server,
                                                                                owned: tuple[str, str]) -> None:
    project, token = owned
    doc = document(server)
    for verb, action in ACTIONS.items():
        operation = doc["paths"][f"/api/projects/{{project}}/{verb}"]["post"]
        required = [name for name, field in action.fields.items() if field.required]
        assert operation["requestBody"]["required"] is bool(required), verb
        assert body_schema(doc, verb).get("required", []) == required, verb
        if required:  # and the server refuses the empty body the document refuses
            status, headers, answer = call(server, "POST", f"/api/projects/{project}/{verb}", None, token)
            assert status == 400 and answer["error"]["rule"] == "invalid-body", (verb, answer)
            assert repr(required[0]) in answer["error"]["reason"] and headers["x-moorage-rule"] == "invalid-body"


def test_announce_removal_refuses_null_days_and_takes_a_blank_reason_as_no_reason(
        server: Server, owned: tuple[str, str]) -> None:
    project, token = owned
    status, _, answer = post(server, project, "announce-removal", token, {"days": None, "reason": ""})
    assert status == 400, answer
    assert answer["error"]["rule"] == "invalid-body"
    assert answer["error"]["reason"] == "the field 'days' must be a number, not null"
    assert call(server, "GET", f"/api/projects/{project}", token=token)[2]["removal_at"] is None
    # An optional reason that is empty or only white space is no reason, as for every action
    # (the services strip it); the document says so.
    schema = body_schema(document(server), "announce-removal")
    assert "empty or only white space means no reason" in schema["properties"]["reason"]["description"]
    assert schema["properties"]["days"]["type"] == "number"  # not nullable
    status, _, answer = post(server, project, "announce-removal", token, {"reason": " \t"})
    assert status == 200, answer
    assert answer["decision"]["reason"].startswith("pending removal: ") and ";" not in answer["decision"]["reason"]
    assert post(server, project, "cancel-removal", token, {})[0] == 200


API_PATHS = {  # an address of each route of the API -> the methods it has
    "/api/projects/{p}/yank": {"POST"}, "/api/projects/{p}/cancel-removal": {"POST"},
    "/api/projects/{p}": {"GET", "HEAD"}, "/api/projects/{p}/check": {"GET", "HEAD"},
    "/api/projects/{p}/events": {"GET", "HEAD"}, "/api/policy": {"GET", "HEAD"},
    "/api/openapi.json": {"GET", "HEAD"},
}


@pytest.mark.parametrize("path", sorted(API_PATHS))
def test_a_wrong_method_is_answered_405_with_allow(server: Server, path: str) -> None:
    allowed = API_PATHS[path]
    for method in sorted({"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"} - allowed):
        status, headers, answer = call(server, method, path.format(p="any-project"), b"{}")
        assert status == 405, (method, path, status, answer)
        assert {m.strip() for m in headers["allow"].split(",")} == allowed, (method, path, headers)
        assert headers["content-type"] == "application/json"
        assert answer["error"]["rule"] == "method-not-allowed" and method in answer["error"]["reason"]


def test_a_page_answers_a_wrong_method_with_allow_too(server: Server) -> None:
    status, headers, _ = raw_request(server.url + "search/", method="DELETE")
    assert status == 405 and {m.strip() for m in headers["allow"].split(",")} == {"GET", "HEAD"}


def _raw_head(url: str) -> tuple[bytes, bytes]:
    """A HEAD request on a bare socket: (status line and headers, every byte after them)."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        sock.sendall(f"HEAD {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def test_head_answers_as_get_does_without_a_body(server: Server, owned: tuple[str, str]) -> None:
    project, _token = owned
    for path in (f"api/projects/{project}/events", "api/policy", "api/openapi.json",
                 "api/projects/no-such-project-here/events", f"api/projects/{project}/events?after=x"):
        get_status, get_headers, get_body = raw_request(server.url + path)
        head, rest = _raw_head(server.url + path)
        assert rest == b"", path
        status_line, *lines = head.decode("latin-1").split("\r\n")
        assert int(status_line.split()[1]) == get_status, (path, status_line)
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
        assert headers["content-type"] == get_headers["content-type"], path
        assert int(headers["content-length"]) == len(get_body), path


# -- the document's bounds are the server's -----------------------------------------------------
REFUSED_BODIES: list[tuple[str, dict[str, Any]]] = [
    ("reopen", {"version": "1.0", "reason": ""}),
    ("reopen", {"version": "1.0", "reason": " \t\u3000\x1f"}),
    ("reopen", {"version": "1.0", "reason": "why", "days": -1}),
    ("reopen", {"version": "1.0", "reason": "why", "days": 0}),
    ("reopen", {"version": "1.0", "reason": "why", "days": 1e-9}),
    ("reopen", {"version": "1.0", "reason": "why", "days": 36501}),
    ("reopen", {"version": "1.0", "reason": "why", "days": 10**400}),
    ("reopen", {"version": "1.0", "reason": "why", "days": True}),
    ("announce-removal", {"days": None}),
    ("announce-removal", {"days": "7"}),
    ("yank", {"version": "not a version"}),
    ("yank", {"version": " 1.0"}),
    ("yank", {"version": "1.0\n"}),
    ("yank", {"version": "1" * 101}),
    ("yank", {"version": None}),
    ("yank", {"version": "1.0", "reason": "a\x00b"}),
    ("yank", {"version": "1.0", "filename": ""}),
    ("delete", {"filename": "x-1.0-py3-none-any.whl"}),
    ("status", {"status": "weird"}),
    ("status", {"status": "quarantined"}),
    ("status", {"status": "quarantined", "reason": "  "}),
    ("status", {"status": "archived", "successor": "elsewhere"}),
    ("status", {"status": "deprecated", "successor": "not a name"}),
    ("invite", {"user": "someone", "role": "king"}),
    ("invite", {"user": "bad name!"}),
    ("quarantine-release", {"version": "1.0", "reason": "why", "lift": "yes"}),
    ("restore", {"reason": "x" * 2001}),
    ("leave", {"why": "unknown fields are refused"}),
]


@pytest.mark.parametrize(("verb", "body"), REFUSED_BODIES, ids=[f"{v}-{i}" for i, (v, _) in
                                                                 enumerate(REFUSED_BODIES)])
def test_a_body_the_document_refuses_is_refused_by_the_server(server: Server, owned: tuple[str, str], verb: str,
                                                               body: dict[str, Any]) -> None:
    project, token = owned
    validator = jsonschema_rs.validator_for(body_schema(document(server), verb))
    assert not validator.is_valid(body), (verb, body)
    status, headers, answer = post(server, project, verb, token, body)
    assert status == 400, (verb, body, status, answer)
    assert answer["error"]["rule"] == "invalid-body" and answer["error"]["reason"]


def test_a_body_the_document_accepts_is_not_refused_as_malformed(server: Server, owned: tuple[str, str]) -> None:
    project, token = owned
    doc = document(server)
    for verb, body, expected in [
        ("yank", {"version": "1.0", "reason": ""}, 200),
        ("unyank", {"version": "V1.0"}, 200),  # packaging reads versions case-insensitively
        ("reopen", {"version": "1.0", "reason": "a fix", "days": 1 / 86400}, 200),
        ("reopen", {"version": "1.0", "reason": "a fix", "days": 1}, 200),
        ("yank", {"version": "1!2.0rc1.post3.dev4+local.7"}, 404),
        ("status", {"status": "deprecated", "successor": "no-such-successor"}, 404),
        ("cancel-removal", {}, 409),  # the project's state, not the request, refuses it
        ("invite", {"user": "admin", "role": "owner"}, 200),
    ]:
        assert jsonschema_rs.validator_for(body_schema(doc, verb)).is_valid(body), (verb, body)
        status, _, answer = post(server, project, verb, token, body)
        assert status == expected, (verb, body, status, answer)
    assert "409" in doc["paths"]["/api/projects/{project}/cancel-removal"]["post"]["responses"]


def test_what_was_answered_500_is_refused_with_400(server: Server, owned: tuple[str, str]) -> None:
    project, token = owned
    at = f"/api/projects/{project}"
    # A JSON integer too large for a float (float() raised OverflowError).
    status, _, answer = call(server, "POST", f"{at}/reopen", b'{"version": "1.0", "reason": "x", "days": 1'
                             + b"0" * 400 + b"}", token)
    assert status == 400 and "'days'" in answer["error"]["reason"], answer
    # Nesting deeper than Python's JSON reader recurses (RecursionError).
    status, _, answer = call(server, "POST", f"{at}/yank", b"[" * 60000, token)
    assert status == 400 and answer["error"]["rule"] == "invalid-body", answer
    # A lone surrogate (\ud800) is no Unicode text: the database cannot store it.
    status, _, answer = call(server, "POST", f"{at}/yank", b'{"version": "1.0", "reason": "\\ud800"}', token)
    assert status == 400 and "Unicode" in answer["error"]["reason"], answer
    # NaN is not JSON.
    status, _, answer = call(server, "POST", f"{at}/reopen", b'{"version": "1.0", "reason": "x", "days": NaN}',
                             token)
    assert status == 400 and answer["error"]["rule"] == "invalid-body", answer
    # An event serial past SQLite's integers (OverflowError in the driver).
    status, _, answer = call(server, "GET", f"{at}/events?after=99999999999999999999")
    assert status == 400 and answer["error"]["rule"] == "invalid-query", answer


def test_events_after_is_an_integer_from_zero(server: Server, owned: tuple[str, str]) -> None:
    project, _token = owned
    at = f"/api/projects/{project}/events"
    for query in ("abc", "-1", "1.5", "%D9%A3", "+1", "%201", "1_0", "2147483648", "1&after=2"):
        status, _, answer = call(server, "GET", f"{at}?after={query}")
        assert status == 400 and answer["error"]["rule"] == "invalid-query", (query, status, answer)
    status, _, answer = call(server, "GET", f"{at}?after=0")
    assert status == 200 and answer["events"]
    last = answer["events"][-1]["serial"]
    assert call(server, "GET", f"{at}?after={last}")[2]["events"] == []
    assert call(server, "GET", f"{at}?after=2147483647")[0] == 200
    # A project that never existed is not found whatever `after` says.
    assert call(server, "GET", f"/api/projects/never-{project}/events?after=5")[0] == 404
    # The redirect to the normalized name keeps the query.
    status, headers, _ = call(server, "GET", f"/api/projects/{project.upper()}/events?after={last}")
    assert status == 301 and headers["location"] == f"/api/projects/{project}/events?after={last}"


def test_check_takes_its_query_as_the_document_says(server: Server, owned: tuple[str, str]) -> None:
    project, token = owned
    at = f"/api/projects/{project}/check"
    for query in ("", "?action=explode", "?action=reopen", "?action=delete&filename=f.whl",
                  "?action=yank&action=delete", "?action=delete&version=x%00", "?action=delete&version=not+a+version"):
        status, _, answer = call(server, "GET", at + query, token=token)
        assert status == 400 and answer["error"]["rule"] == "invalid-query", (query, answer)
    status, _, answer = call(server, "GET", f"{at}?action=reopen&version=1.0&ignored=1", token=token)
    assert status == 200 and set(answer) == {"allowed", "rule", "reason", "until"}


# -- the patterns read alike in Python and in an ECMA-262 engine (JSON Schema's) -----------------
def _parses(text: str) -> bool:
    try:
        Version(text)
    except InvalidVersion:
        return False
    return True


_ECMA_VERSION = jsonschema_rs.validator_for({"type": "string", "pattern": f"^(?:{VERSION})$"})
_ECMA_NON_BLANK = jsonschema_rs.validator_for({"type": "string", "pattern": f"^(?:{NON_BLANK})$"})


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="0123456789.!+-_vVaAlLpPhHbBeEtTrRcCiIwWoOsSdDxX", max_size=16)
       | st.from_regex(re.compile(f"(?:{VERSION})"), fullmatch=True))
def test_the_version_pattern_is_packaging_s_reading(text: str) -> None:
    matches = re.fullmatch(VERSION, text) is not None
    assert matches == _parses(text), text
    assert _ECMA_VERSION.is_valid(text) == matches, text


@settings(max_examples=400, deadline=None)
@given(st.text(st.characters(codec="utf-8"), max_size=6)
       | st.text(alphabet=" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2028\u3000\ufeffx\x00", max_size=4))
def test_the_non_blank_pattern_is_what_the_services_call_a_reason(text: str) -> None:
    matches = re.fullmatch(NON_BLANK, text) is not None
    assert matches == (bool(text.strip()) and "\x00" not in text), repr(text)
    assert _ECMA_NON_BLANK.is_valid(text) == matches, repr(text)


# -- Schemathesis against the real server --------------------------------------------------------
SCHEMATHESIS_CONFIG = """\
# The path's project, the body's version and user: mostly names that exist, so the operations
# reach the services; sometimes generated ones.
[parameters]
"path.project" = {{ dictionary = "projects", probability = 0.9 }}
"body.version" = {{ dictionary = "versions", probability = 0.7 }}
"body.user" = {{ dictionary = "users", probability = 0.8 }}

[dictionaries.projects]
values = {projects}
[dictionaries.versions]
values = {versions}
[dictionaries.users]
values = {users}
"""


def _schemathesis(server: Server, token: str, config: Path, out: Path) -> dict[str, Any]:
    """One run of the Schemathesis CLI with every check: its JSON report, and the requests it sent."""
    out.mkdir()
    args = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run",
            f"{server.url}api/openapi.json", "-H", f"Authorization: Bearer {token}",
            "--checks", "all",
            "--max-examples", "10",  # per operation and phase: the run takes about half a minute
            "--max-response-time", "10",  # generous: only a hang fails it
            "--request-timeout", "30",
            # One worker: with more, Hypothesis' ast.parse in threads trips a CPython 3.11 bug
            # ("AST constructor recursion depth mismatch") inside Schemathesis itself.
            "--workers", "1",
            "--generation-database", "none", "--no-color",
            "--report", "json,har", "--report-json-path", str(out / "report.json"),
            "--report-har-path", str(out / "requests.har")]
    started = time.monotonic()
    proc = subprocess.run(args, capture_output=True, text=True, cwd=out, timeout=300)
    elapsed = time.monotonic() - started
    report = json.loads((out / "report.json").read_text()) if (out / "report.json").exists() else {}
    har = json.loads((out / "requests.har").read_text()) if (out / "requests.har").exists() else {}
    requests = len(har.get("log", {}).get("entries", []))
    return {"proc": proc, "report": report, "requests": requests, "seconds": elapsed}


@pytest.mark.slow
def test_schemathesis_finds_no_difference_between_the_document_and_the_server(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data")
    try:
        server.cli("user", "add", "fuzzer")
        server.cli("user", "add", "friend")
        server.cli("user", "add", "steward", "--admin")
        owner = server.cli("token", "create", "fuzzer").stdout.strip()
        friend = server.cli("token", "create", "friend").stdout.strip()
        admin = server.cli("token", "create", "steward").stdout.strip()
        dists = tmp_path / "dists"
        dists.mkdir()
        versions = ["1.0", "1.1rc1", "2.0"]
        for project, token in (("fuzzed", owner), ("fuzzed-two", owner), ("friendly", friend)):
            for version in versions:
                for dist in (make_wheel(dists, project, version), make_sdist(dists, project, version)):
                    status, reason, _ = post_upload(server.legacy, token, dist.path)
                    assert status == 200, reason
        server.cli("invite", "friendly", "fuzzer", "--as", "friend")  # something to accept or decline
        config = tmp_path / "schemathesis.toml"
        config.write_text(SCHEMATHESIS_CONFIG.format(
            projects=json.dumps(["fuzzed", "Fuzzed_Two", "fuzzed-two", "friendly"]),
            versions=json.dumps(versions), users=json.dumps(["fuzzer", "friend", "steward", "admin"])))
        # The owner first (the policy's refusals of an owner), then an admin (every action
        # reaches its service, deletions and restores included).
        runs = {who: _schemathesis(server, token, config, tmp_path / f"report-{who}")
                for who, token in (("owner", owner), ("admin", admin))}
    finally:
        server.stop()
    for who, run in runs.items():
        report, proc = run["report"], run["proc"]
        failures = sum(int(f.get("count", 1)) for f in report.get("failures", []))
        errors = sum(int(e.get("count", 1)) for e in report.get("errors", []))
        print(f"schemathesis as {who}: {run['requests']} requests sent, {report.get('test_cases', {}).get('generated')}"
              f" test cases, {failures} failures, {errors} errors, {run['seconds']:.1f} s (seed {report.get('seed')})")
        assert proc.returncode == 0 and report.get("exit_code") == 0, proc.stdout[-20000:] + proc.stderr[-5000:]
        assert failures == 0 and errors == 0, proc.stdout[-20000:]
        assert run["requests"] > 500, proc.stdout[-5000:]
    log = server.output.read_text()
    assert "Traceback" not in log, log[-10000:]
