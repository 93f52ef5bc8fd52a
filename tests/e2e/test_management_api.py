"""The management JSON API: every action with a token, the OpenAPI document, "may I?"."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from moorage.web.manage import ACTIONS
from tests.support import clients
from tests.support.dists import make_wheel
from tests.support.server import Server

pytestmark = pytest.mark.slow


def call(server: Server, method: str, path: str, body: bytes | None = None, token: str | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict]:  # type: ignore[type-arg]
    request = urllib.request.Request(server.url + path.lstrip("/"), data=body, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, {"raw": raw.decode(errors="replace")}


def post(server: Server, project: str, action: str, token: str | None, **body: object) -> tuple[int, dict]:  # type: ignore[type-arg]
    return call(server, "POST", f"/api/projects/{project}/{action}", json.dumps(body).encode(), token)


@pytest.fixture
def owned(server: Server, unique: str, dists: Path) -> tuple[str, str, str]:
    """A project owned by a fresh user: (project, the owner's token, the wheel's filename)."""
    user = f"mgr{unique}"
    server.cli("user", "add", user)
    token = server.cli("token", "create", user).stdout.strip()
    project = f"managed-{unique}"
    wheel = make_wheel(dists, project, "1.0")
    result = clients.twine_upload(server.legacy, token, wheel.path)
    assert result.returncode == 0, result.stdout + result.stderr
    return project, token, wheel.filename


def test_the_openapi_document_lists_every_action(server: Server) -> None:
    status, doc = call(server, "GET", "/api/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.")
    for verb in ACTIONS:
        assert f"/api/projects/{{project}}/{verb}" in doc["paths"]
    assert "/api/projects/{project}/check" in doc["paths"]
    status, policy = call(server, "GET", "/api/policy")
    assert status == 200 and {"upload-window", "deletion-window", "retention"} <= {r["rule"] for r in policy["rules"]}


def test_an_owner_manages_a_project_through_the_api(server: Server, owned: tuple[str, str, str]) -> None:
    project, token, filename = owned
    status, may = call(server, "GET", f"/api/projects/{project}/check?action=delete&version=1.0", token=token)
    assert status == 200 and may["allowed"] is True and may["until"]
    assert post(server, project, "yank", token, version="1.0", reason="broken")[1]["files"] == [filename]
    assert post(server, project, "unyank", token, version="1.0")[0] == 200
    assert post(server, project, "status", token, status="archived", reason="done")[0] == 200
    status, refused = post(server, project, "status", token, status="quarantined", reason="x")
    assert status == 403 and refused["error"]["rule"] == "admin-only" and refused["error"]["reason"]
    assert post(server, project, "status", token, status="active")[0] == 200
    status, deleted = post(server, project, "delete", token, version="1.0", filename=filename)
    assert status == 200 and deleted["files"] == [filename]
    status, restore = post(server, project, "restore", token, version="1.0", filename=filename, reason="r")
    assert status == 403 and restore["error"]["rule"] == "admin-only"
    status, restored = post(server, project, "restore", server.admin_token, version="1.0", filename=filename,
                            reason="the owner asked")
    assert status == 200 and restored["files"] == [filename]


def test_authentication_and_scope(server: Server, owned: tuple[str, str, str], unique: str) -> None:
    project, _token, _ = owned
    status, body = post(server, project, "yank", None, version="1.0")
    assert status == 401 and body["error"]["rule"] == "authentication-required"
    status, body = post(server, project, "yank", "moorage-000000000000-nope", version="1.0")
    assert status == 401
    scoped = server.cli("token", "create", "admin", "--project", "elsewhere").stdout.strip()
    status, body = post(server, project, "yank", scoped, version="1.0")
    assert status == 403 and body["error"]["rule"] == "token-scope"
    stranger = f"str{unique}"
    server.cli("user", "add", stranger)
    stranger_token = server.cli("token", "create", stranger).stdout.strip()
    status, body = post(server, project, "yank", stranger_token, version="1.0")
    assert status == 403 and body["error"]["rule"] == "not-an-owner"


MALFORMED_BODIES: list[bytes] = [
    b"", b"{", b"[]", b"null", b"42", b'"text"', b"\xff\xfe\x00", b'{"version": 1}', b'{"version": null}',
    b'{"version": "not a version"}', b'{"unknown": true}', b'{"days": "NaN", "version": "1.0"}',
    b'{"version": "1.0", "days": 1e308, "reason": "x"}', b'{"version": "1.0", "days": NaN, "reason": "x"}',
    b'{"version": "1.0", "days": -Infinity, "reason": "x"}', b'{"version": "1.0", "days": -1, "reason": "x"}',
    b'{"status": "weird"}', b'{"user": "nobody-here", "role": "king"}', b'{"version": "1.0", "filename": "../../x"}',
    b'{"version": "9' + b"9" * 5000 + b'"}', b'{"reason": "' + b"x" * 70000 + b'"}', b'{"lift": "yes"}',
    json.dumps({"version": "1.0", "filename": "\u0000\u2028"}).encode(),
]


def test_no_malformed_request_gets_a_500(server: Server, owned: tuple[str, str, str]) -> None:
    project, token, _ = owned
    for verb in ACTIONS:
        for body in MALFORMED_BODIES:
            for who in (token, server.admin_token):
                status, answer = call(server, "POST", f"/api/projects/{project}/{verb}", body, who)
                assert status < 500, (verb, body[:60], status, answer)
                if status >= 400:
                    assert answer.get("error", {}).get("rule") and answer["error"]["reason"], (verb, body[:60])
    for path in ("/api/projects/-bad-/yank", "/api/projects/" + "x" * 300 + "/yank", "/api/projects/ok/nope"):
        status, answer = call(server, "POST", path, b"{}", token)
        assert 400 <= status < 500, (path, status)
    for query in ("", "?action=explode", "?action=delete&version=%00", "?action=reopen", "?action=delete&version=9"):
        status, answer = call(server, "GET", f"/api/projects/{project}/check{query}", token=token)
        assert status < 500, (query, status, answer)
    for path in ("/simple/%00/", "/simple/a/b/c", "/pypi/%ff/json", "/pypi/x/%00/json", "/files/zz/zz",
                 "/api/projects/%00/events", "/api/projects/x/events?after=abc", "/pending/simple/..%2f/",
                 f"/pypi/{project}/{'9' * 5000}/json",
                 f"/api/projects/{project}/check?action=reopen&version={'9' * 5000}"):
        status, _ = call(server, "GET", path)
        assert status < 500, (path, status)
    for body in MALFORMED_BODIES[:8]:
        status, _ = call(server, "POST", "/legacy/", body, headers={"Content-Type": "multipart/form-data; boundary=x",
                                                                     "Authorization": "Basic X19fdG9rZW5fXzp4"})
        assert status < 500, (body[:40], status)


def test_the_state_shows_upload_windows_and_delete_decisions(server: Server, owned: tuple[str, str, str]) -> None:
    project, token, filename = owned
    status, state = call(server, "GET", f"/api/projects/{project}", token=token)
    assert status == 200 and state["status"] == "active" and state["you"]["role"] == "owner"
    [release] = state["releases"]
    assert release["version"] == "1.0" and release["accepts_uploads"] is True
    assert release["upload_window_closes"] == release["upload_window"]["until"]
    [file] = release["files"]
    assert file["filename"] == filename and file["may_delete"]["allowed"] is True
    assert file["may_delete"]["until"]
    status, _ = call(server, "GET", f"/api/projects/{project}")
    assert status == 401
