"""The server's log, on by default: one structured line per refusal and per change (rule id,
project, actor), never a secret; the access log only when asked for."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.dists import make_wheel
from tests.support.server import TOKEN_LINE, Server, start_server
from tests.support.upload import post_upload

pytestmark = pytest.mark.slow

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\S+ (INFO|WARNING|ERROR) (\S+) (.*)$", re.MULTILINE)


def log_lines(server: Server, logger: str, *, wait_for: str = "", timeout: float = 10) -> list[str]:
    """The messages of ``logger`` in the server's output (waiting until one holds ``wait_for``)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [m.group(3) for m in LOG_LINE.finditer(server.output.read_text()) if m.group(2) == logger]
        if not wait_for or any(wait_for in line for line in lines) or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def api(server: Server, path: str, token: str, body: dict[str, object]) -> int:
    request = urllib.request.Request(server.url + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_refusals_and_changes_are_logged_in_one_line_each_without_secrets(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data")
    try:
        token = server.admin_token
        password = re.search(r"password: (\S+)", server.output.read_text()).group(1)  # type: ignore[union-attr]
        wheel = make_wheel(tmp_path / "dist", "Log_Demo", "1.0")
        assert post_upload(server.legacy, token, wheel.path)[0] == 200
        mismatch = post_upload(server.legacy, token, wheel.path, fields_override={"version": "2.0"})
        assert mismatch[0] == 400
        stranger = server.cli("user", "add", "stranger").returncode == 0 and server.cli(
            "token", "create", "stranger").stdout.strip()
        assert post_upload(server.legacy, stranger, make_wheel(tmp_path / "d2", "log-demo", "1.1").path)[0] == 403
        assert post_upload(server.legacy, "moorage-000000000000-not-a-real-secret", wheel.path)[0] == 403
        assert api(server, "api/projects/log-demo/yank", stranger, {"version": "1.0"}) == 403
        with pytest.raises(urllib.error.HTTPError) as no_csrf:  # a page's form without its CSRF token
            urllib.request.urlopen(urllib.request.Request(server.url + "account/login/", method="POST",
                                                          data=f"username=admin&password={password}".encode()))
        assert no_csrf.value.code == 403
        assert urllib.request.urlopen(server.simple + "log-demo/", timeout=10).status == 200

        events = log_lines(server, "moorage.events", wait_for="action=file-added")
        assert any(line.startswith("event serial=") and "action=file-added project=log-demo "
                   "subject=file:log_demo-1.0-py3-none-any.whl actor=admin" in line for line in events), events
        assert sum("action=file-added" in line for line in events) == 1  # a refused upload changes nothing
        refusals = log_lines(server, "moorage.refusals", wait_for="path=/account/login/")
        expected = [
            ("rule=metadata-mismatch", "status=400", "project=log-demo", "actor=admin", "path=/legacy/"),
            ("rule=not-a-maintainer", "status=403", "project=log-demo", "actor=stranger", "path=/legacy/"),
            ("rule=invalid-token", "status=403", "project=log-demo", "path=/legacy/"),
            ("status=403", "project=log-demo", "actor=stranger", "method=POST", "path=/api/projects/log-demo/yank"),
            ("rule=csrf-check-failed", "status=403", "method=POST", "path=/account/login/"),
        ]
        assert len(refusals) == len(expected), refusals
        for line, words in zip(refusals, expected, strict=True):
            assert line.startswith("refused rule=") and 'reason="' in line, line
            for word in words:
                assert word in line.split(), (word, line)
        # Never a secret; and no access log unless asked for.
        logged = "\n".join(m.group(0) for m in LOG_LINE.finditer(server.output.read_text()))
        for secret in (token, token.split("-", 2)[-1], stranger, stranger.split("-", 2)[-1], password,
                       "not-a-real-secret"):
            assert secret not in logged
        assert "GET /simple/" not in server.output.read_text()
        assert "Traceback" not in server.output.read_text()
    finally:
        server.stop()


def test_the_access_log_is_there_when_asked_for(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", extra_args=("--access-log",))
    try:
        assert urllib.request.urlopen(server.simple, timeout=10).status == 200
        deadline = time.monotonic() + 10
        while '"GET /simple/ HTTP/1.1" 200' not in server.output.read_text():
            assert time.monotonic() < deadline, server.output.read_text()
            time.sleep(0.05)
        assert not TOKEN_LINE.search("\n".join(m.group(0) for m in LOG_LINE.finditer(server.output.read_text())))
    finally:
        server.stop()
