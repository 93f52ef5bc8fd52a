"""`require_2fa = "critical"` end to end: a project pushed over the threshold by downloads
(real HTTP requests from distinct client addresses, not rows written into the database)
becomes critical after the daily job, shows its grace end, and after the grace period its
maintainer without a second factor cannot upload (twine shows the rule's sentence) until a
factor is enrolled in the browser and a new token is made."""

from __future__ import annotations

import http.client
import json
import re
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pyotp
import pytest
from playwright.sync_api import Page

from tests.browser.conftest import Site, sign_in
from tests.support.clients import twine_upload
from tests.support.dists import make_wheel
from tests.support.server import cli_env, run_cli, start_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]
CONFIG = """
[policy]
require_2fa = "critical"
critical = "top 1%"
critical_grace = "14d"

[downloads]
flush_interval = "0.2s"
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("critical")
    config = root / "moorage.toml"
    config.write_text(CONFIG)
    offset_file = root / "clock-offset"
    server = start_server(root / "data", config=config,
                          extra_env={"MOORAGE_CLOCK_OFFSET_FILE": str(offset_file)})
    try:
        yield Site(server, "", offset_file)
    finally:
        server.stop()


def download(site: Site, path: str, clients: range) -> None:
    """One GET of the file from each client address 127.0.0.N: distinct clients, as the
    counter's one-per-address-an-hour rule sees them."""
    parts = urlsplit(site.server.url)
    for n in clients:
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10,
                                          source_address=(f"127.0.0.{n}", 0))
        try:
            conn.request("GET", path, headers={"User-Agent": "pip/25.1"})
            response = conn.getresponse()
            response.read()
            assert response.status == 200, (path, response.status)
        finally:
            conn.close()


def downloads_last_week(site: Site, project: str) -> int:
    with urllib.request.urlopen(f"{site.server.url}pypi/{project}/json", timeout=10) as response:
        return int(json.loads(response.read())["info"]["downloads"]["last_week"])


def file_path(site: Site, project: str) -> str:
    request = urllib.request.Request(f"{site.server.simple}{project}/",
                                     headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        page = json.loads(response.read())
    return urlsplit(urllib.request.urljoin(f"{site.server.simple}{project}/", page["files"][0]["url"])).path


def test_a_project_made_critical_by_downloads_needs_2fa_after_its_grace_period(
        site: Site, page: Page, tmp_path: Path) -> None:
    site.add_user("maya", "maya's long passphrase")
    old_token = site.server.cli("token", "create", "maya").stdout.strip()
    assert twine_upload(site.server.legacy, old_token, make_wheel(tmp_path, "lighthouse", "1.0").path).returncode == 0
    assert twine_upload(site.server.legacy, site.server.admin_token,
                        make_wheel(tmp_path, "buoy", "1.0").path).returncode == 0

    # Week one: a few downloads; week two: ten times as many (a rise, not a 20x jump).
    download(site, file_path(site, "lighthouse"), range(2, 7))
    download(site, file_path(site, "buoy"), range(2, 4))
    site.move_clock(timedelta(days=7))
    download(site, file_path(site, "lighthouse"), range(10, 60))
    deadline = 50
    while downloads_last_week(site, "lighthouse") < 50 and deadline:
        page.wait_for_timeout(100)  # the counters are written in batches
        deadline -= 1
    assert downloads_last_week(site, "lighthouse") == 50

    # The daily job, on the server's (moved) clock; the server's own thread ran it at start.
    env = cli_env(site.server.data_dir)
    env["MOORAGE_CLOCK_OFFSET_FILE"] = str(site.offset_file)
    daily = run_cli(site.server.data_dir, "admin", "daily", "--json", env=env)
    report = json.loads(daily.stdout)
    assert (report["ran"], report["designated"], report["flagged"]) == (True, ["lighthouse"], [])

    # Public: the project page and the JSON API name it, with the end of the grace period.
    page.goto(f"{site.url}/project/lighthouse/")
    notice = page.locator("text=critical project").first
    notice.wait_for()
    with urllib.request.urlopen(f"{site.server.url}pypi/lighthouse/json", timeout=10) as response:
        critical = json.loads(response.read())["info"]["critical"]
    grace_end = critical["grace_until"][:10]
    assert grace_end in page.content()
    events = json.loads(urllib.request.urlopen(f"{site.server.url}api/projects/lighthouse/events",
                                               timeout=10).read())
    assert any(e["action"] == "project-became-critical" for e in events["events"])

    # In the grace period the old token still uploads.
    assert twine_upload(site.server.legacy, old_token, make_wheel(tmp_path, "lighthouse", "1.1").path).returncode == 0
    site.move_clock(timedelta(days=15))
    refused = twine_upload(site.server.legacy, old_token, make_wheel(tmp_path, "lighthouse", "1.2").path)
    assert refused.returncode != 0
    said = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", refused.stdout + refused.stderr).split())  # twine wraps lines
    assert "lighthouse is a critical project" in said and "created by an account with a second factor" in said

    # Enrol an authenticator app in the browser, make a new token there, and upload with it.
    sign_in(page, site, "maya", "maya's long passphrase")
    page.goto(f"{site.url}/account/factors/totp/")
    secret = re.sub(r"\s", "", page.locator("#totp-secret").inner_text())
    page.locator("#totp-code").fill(pyotp.TOTP(secret).at(_server_now(site)))
    page.get_by_role("button", name="Add authenticator app").click()
    page.goto(f"{site.url}/account/")
    page.locator("#token-description").fill("after 2FA")
    page.get_by_role("button", name="Create token").click()
    new_token = page.locator("#new-token").inner_text().strip()
    assert new_token.startswith("moorage-")
    assert twine_upload(site.server.legacy, old_token, make_wheel(tmp_path, "lighthouse", "1.2").path).returncode != 0
    accepted = twine_upload(site.server.legacy, new_token, make_wheel(tmp_path, "lighthouse", "1.2").path)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr


def _server_now(site: Site) -> float:
    """The server's clock: the system clock plus the offset the test wrote."""
    import time

    return time.time() + site.offset
