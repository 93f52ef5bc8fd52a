"""Download counts through the real server: real pip, plain GETs, mirrors, the dedupe window,
what does not count, the S3 store (streamed and redirected), a clean restart, the critical
notice, and counting switched off.

Client addresses: uvicorn trusts X-Forwarded-For from 127.0.0.1 (its default
forwarded_allow_ips), so a test stands for several clients by sending that header.
"""

from __future__ import annotations

import json
import re
import secrets
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
import sqlalchemy as sa

from moorage.config import Settings
from moorage.store.database import Database
from moorage.store.tables import critical_projects, projects
from tests.support import clients
from tests.support.dists import Dist, make_sdist, make_wheel
from tests.support.s3 import AWS_ENV, MotoServer, moto_or_skip
from tests.support.server import Server, database_url, raw_request, start_server
from tests.support.upload import post_upload

pytestmark = pytest.mark.slow

JSON_V1 = "application/vnd.pypi.simple.v1+json"
PIP = "pip/24.0 CPython/3.12.1"
MIRROR = "bandersnatch/6.5.0 (cpython 3.12.1-final0, Linux x86_64)"
ZERO = {"last_day": 0, "last_week": 0, "last_month": 0}


def one(n: int) -> dict[str, int]:
    return {"last_day": n, "last_week": n, "last_month": n}


# -- helpers ------------------------------------------------------------------------------------
def get_file(url: str, address: str, agent: str = PIP, **headers: str) -> int:
    status, _headers, _body = raw_request(url, headers={"X-Forwarded-For": address, "User-Agent": agent,
                                                    **{k.replace("_", "-"): v for k, v in headers.items()}})
    return status


def publish(server: Server, *dists: Dist) -> None:
    for dist in dists:
        status, reason, body = post_upload(server.legacy, server.admin_token, dist.path)
        assert status == 200, (status, reason, body)


def file_urls(server: Server, project: str) -> dict[str, str]:
    page = server.simple + project + "/"
    status, _h, body = raw_request(page, headers={"Accept": JSON_V1})
    assert status == 200, body
    return {f["filename"]: urljoin(page, f["url"]) for f in json.loads(body)["files"]}


def info(server: Server, project: str) -> dict[str, Any]:
    status, _h, body = raw_request(f"{server.url}pypi/{project}/json")
    assert status == 200, body
    found: dict[str, Any] = json.loads(body)["info"]
    return found


def wait_for(server: Server, project: str, check: Callable[[dict[str, Any]], bool], timeout: float = 15
             ) -> dict[str, Any]:
    """The project's JSON info once ``check`` holds (counts are written every flush_interval)."""
    deadline = time.monotonic() + timeout
    while True:
        found = info(server, project)
        if check(found):
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout} s: {found['downloads']} {found['mirror_downloads']}")
        time.sleep(0.1)


def settle(server: Server, seconds: float = 1.0) -> None:
    """Several flush intervals (0.2 s): anything recorded is in the database by now."""
    time.sleep(seconds)


def project_page(server: Server, project: str) -> str:
    status, _h, body = raw_request(f"{server.url}project/{project}/", headers={"Accept": "text/html"})
    assert status == 200, body
    return body.decode()


def downloads_row(page: str, label: str) -> list[str]:
    match = re.search(rf'<tr><th scope="row">{label}</th>((?:<td>[^<]*</td>)+)</tr>', page)
    assert match, page
    return re.findall(r"<td>([^<]*)</td>", match.group(1))


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def database_of(server: Server) -> Database:
    return Database(Settings(data_dir=server.data_dir, database_url=database_url(server.data_dir)).db_url)


# -- the module's server: flushes every 0.2 s, the default one-hour dedupe window ------------------
@pytest.fixture(scope="module")
def counted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("downloads")
    config = write_config(root / "moorage.toml", '[downloads]\nflush_interval = "0.2s"\n')
    server = start_server(root / "data", config=config)
    yield server
    server.stop()


def test_pip_download_is_counted_and_shown(counted: Server, unique: str, dists: Path, tmp_path: Path) -> None:
    name = f"counted-{unique}"
    publish(counted, make_wheel(dists, name, "1.0"), make_sdist(dists, name, "1.0"))
    assert info(counted, name)["downloads"] == ZERO
    assert info(counted, name)["critical"] is None

    result = clients.run([sys.executable, "-m", "pip", "download", "--isolated", "--no-cache-dir", "--no-deps",
                          "--disable-pip-version-check", "--index-url", counted.simple, "-d", str(tmp_path / "d"),
                          name])
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(list((tmp_path / "d").iterdir())) == 1
    found = wait_for(counted, name, lambda i: i["downloads"]["last_day"] >= 1)
    assert found["downloads"] == one(1)
    assert found["mirror_downloads"] == ZERO

    # pip install from the same (loopback) address within the hour: not a new download.
    venv = clients.fresh_venv(tmp_path / "venv")
    result = clients.pip_install(venv, counted.simple, name)
    assert result.returncode == 0, result.stdout + result.stderr
    settle(counted)
    assert info(counted, name)["downloads"] == one(1)

    page = project_page(counted, name)
    assert downloads_row(page, "Installers and people") == ["1", "1", "1"]
    assert downloads_row(page, "Mirrors") == ["0", "0", "0"]
    assert "once per client address within an hour" in page
    assert "shows here within a second" in page
    assert 'id="critical"' not in page
    # The release's JSON carries the same keys.
    status, _h, body = raw_request(f"{counted.url}pypi/{name}/1.0/json")
    assert status == 200 and json.loads(body)["info"]["downloads"] == one(1)


def test_mirrors_are_counted_apart(counted: Server, unique: str, dists: Path) -> None:
    name = f"mirrored-{unique}"
    wheel = make_wheel(dists, name, "1.0")
    publish(counted, wheel)
    url = file_urls(counted, name)[wheel.filename]
    assert get_file(url, "192.0.2.10", MIRROR) == 200
    assert get_file(url, "192.0.2.11", "devpi-server/6.10.0 (py3.11.7; linux)") == 200
    assert get_file(url, "192.0.2.12", PIP) == 200
    found = wait_for(counted, name, lambda i: i["mirror_downloads"]["last_day"] == 2
                     and i["downloads"]["last_day"] == 1)
    assert found["mirror_downloads"] == one(2) and found["downloads"] == one(1)
    page = project_page(counted, name)
    assert downloads_row(page, "Mirrors") == ["2", "2", "2"]


def test_one_address_counts_once_within_the_hour(counted: Server, unique: str, dists: Path) -> None:
    name = f"deduped-{unique}"
    wheel, sdist = make_wheel(dists, name, "1.0"), make_sdist(dists, name, "1.0")
    publish(counted, wheel, sdist)
    urls = file_urls(counted, name)
    assert get_file(urls[wheel.filename], "198.51.100.1") == 200
    assert get_file(urls[wheel.filename], "198.51.100.1") == 200
    assert get_file(urls[sdist.filename], "198.51.100.1") == 200  # another file of the same project
    assert get_file(urls[wheel.filename], "198.51.100.2") == 200
    wait_for(counted, name, lambda i: i["downloads"]["last_day"] >= 2)
    settle(counted)
    assert info(counted, name)["downloads"] == one(2)


def test_what_is_not_a_download(counted: Server, unique: str, dists: Path) -> None:
    name = f"notcounted-{unique}"
    wheel = make_wheel(dists, name, "1.0")
    publish(counted, wheel)
    url = file_urls(counted, name)[wheel.filename]
    size = len(wheel.path.read_bytes())
    other_sha = "0" * 64
    # Each from an address of its own, so the dedupe window cannot hide a wrong count.
    status, _h, body = raw_request(url, "HEAD", {"X-Forwarded-For": "203.0.113.1"})
    assert status == 200 and body == b""
    assert get_file(url + ".metadata", "203.0.113.2") == 200
    assert get_file(url.replace(wheel.sha256, other_sha), "203.0.113.3") == 404
    assert get_file(url + "x", "203.0.113.4") == 404
    assert get_file(url, "203.0.113.5", range="bytes=100-") == 206  # a resumed download
    assert get_file(url, "203.0.113.6", range="bytes=-22") == 206
    assert get_file(url, "203.0.113.7", range=f"bytes={size + 10}-") == 416
    settle(counted)
    assert info(counted, name)["downloads"] == ZERO
    # From byte 0 it is a download, and so is a GET through the pending root.
    assert get_file(url, "203.0.113.8", range="bytes=0-99") == 206
    pending = url.replace("/files/", "/pending/files/")
    assert get_file(pending, "203.0.113.9") == 200
    wait_for(counted, name, lambda i: i["downloads"]["last_day"] >= 2)
    settle(counted)
    assert info(counted, name)["downloads"] == one(2)


def test_critical_notice_on_the_page_and_in_the_json(counted: Server, unique: str, dists: Path) -> None:
    name = f"critical-{unique}"
    publish(counted, make_wheel(dists, name, "1.0"))
    since = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    ahead = datetime.now(UTC) + timedelta(days=20)
    db = database_of(counted)
    try:
        with db.write() as conn:
            pid = conn.execute(sa.select(projects.c.id).where(projects.c.normalized_name == name)).scalar_one()
            conn.execute(sa.insert(critical_projects).values(project_id=pid, since=since, grace_until=ahead,
                                                             rule="top 1% by 30-day downloads",
                                                             downloads_30d=4321))
        found = info(counted, name)["critical"]
        assert found == {"since": "2026-01-05T12:00:00.000000Z",
                         "grace_until": ahead.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                         "rule": "top 1% by 30-day downloads"}
        page = project_page(counted, name)
        notice = re.search(r'<div class="banner warn" role="note" id="critical">(.*?)</div>', page, re.S)
        assert notice, page
        text = re.sub(r"<[^>]+>", "", notice.group(1))
        assert text.startswith("Critical project since 05 Jan 2026 12:00 UTC (top 1% by 30-day downloads);")
        assert f"two-factor authentication from {ahead.strftime('%d %b %Y %H:%M UTC')}." in text
        status, _h, body = raw_request(f"{counted.url}project/{name}/1.0/", headers={"Accept": "text/html"})
        assert status == 200 and b'id="critical"' in body

        # Once the grace period is over: "since".
        passed = datetime(2026, 2, 4, 12, 0, tzinfo=UTC)
        with db.write() as conn:
            conn.execute(sa.update(critical_projects).where(critical_projects.c.project_id == pid)
                         .values(grace_until=passed))
        assert info(counted, name)["critical"]["grace_until"] == "2026-02-04T12:00:00.000000Z"
        assert "two-factor authentication since <time" in project_page(counted, name)
    finally:
        db.dispose()


# -- a clean restart --------------------------------------------------------------------------------
def test_a_clean_restart_loses_no_count(tmp_path: Path, unique: str, dists: Path) -> None:
    config = write_config(tmp_path / "moorage.toml", '[downloads]\nflush_interval = "60s"\n')
    server = start_server(tmp_path / "data", config=config)
    names = [f"restart-{unique}-{i}" for i in range(3)]
    try:
        urls = []
        for name in names:
            wheel = make_wheel(dists, name, "1.0")
            publish(server, wheel)
            urls.append(file_urls(server, name)[wheel.filename])
        for i, url in enumerate(urls):
            for address in range(i + 1):  # 1, 2 and 3 clients
                assert get_file(url, f"192.0.2.{address + 1}") == 200
        assert get_file(urls[0], "192.0.2.200", MIRROR) == 200
        # Nothing is written before the first flush interval (a minute) ...
        assert info(server, names[2])["downloads"] == ZERO
    finally:
        server.stop()  # SIGTERM, well within the flush interval
    # uvicorn shuts down (the lifespan's flush included), then re-raises the signal it caught.
    assert server.process.returncode in (0, -15), server.output.read_text()
    log = server.output.read_text()
    assert "lost" not in log and "Traceback" not in log, log
    again = start_server(tmp_path / "data", config=config)
    try:
        for i, name in enumerate(names):
            assert info(again, name)["downloads"] == one(i + 1)
        assert info(again, names[0])["mirror_downloads"] == one(1)
    finally:
        again.stop()


# -- counting switched off ------------------------------------------------------------------------
def test_counting_off_counts_nothing(tmp_path: Path, unique: str, dists: Path) -> None:
    config = write_config(tmp_path / "moorage.toml", '[downloads]\ncount = false\nflush_interval = "0.2s"\n')
    server = start_server(tmp_path / "data", config=config)
    try:
        name = f"uncounted-{unique}"
        wheel = make_wheel(dists, name, "1.0")
        publish(server, wheel)
        url = file_urls(server, name)[wheel.filename]
        for i in range(3):
            assert get_file(url, f"192.0.2.{i + 1}") == 200
        settle(server)
        assert info(server, name)["downloads"] == ZERO
        page = project_page(server, name)
        assert "Downloads are not being counted on this index." in page
    finally:
        server.stop()
    db = database_of(server)
    try:
        with db.read() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM download_counts")).scalar_one() == 0
    finally:
        db.dispose()


# -- the S3 store: streamed and redirected ------------------------------------------------------------
@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    started = moto_or_skip(tmp_path_factory.mktemp("moto"))
    yield started
    started.stop()


@pytest.mark.parametrize("mode", ["stream", "redirect"])
def test_downloads_from_the_s3_store_are_counted(moto: MotoServer, mode: str, tmp_path: Path, unique: str,
                                                 dists: Path) -> None:
    bucket = f"moorage-test-{secrets.token_hex(4)}"
    moto.client().create_bucket(Bucket=bucket)
    config = write_config(tmp_path / "moorage.toml",
                          f'[blobs]\nstore = "s3"\nbucket = "{bucket}"\nendpoint_url = "{moto.endpoint}"\n'
                          f'downloads = "{mode}"\n\n[downloads]\nflush_interval = "0.2s"\n')
    server = start_server(tmp_path / "data", config=config, extra_env=AWS_ENV)
    try:
        name = f"s3-{mode}-{unique}"
        wheel = make_wheel(dists, name, "1.0")
        publish(server, wheel)
        url = file_urls(server, name)[wheel.filename]
        expected = 302 if mode == "redirect" else 200
        assert get_file(url, "192.0.2.1") == expected
        assert get_file(url, "192.0.2.2", MIRROR) == expected
        assert get_file(url, "192.0.2.1") == expected  # the same address again
        status, _h, _b = raw_request(url, "HEAD", {"X-Forwarded-For": "192.0.2.3"})
        assert status == 200
        assert get_file(url, "192.0.2.4", range="bytes=10-") == (302 if mode == "redirect" else 206)
        assert get_file(url + ".metadata", "192.0.2.5") == expected
        found = wait_for(server, name, lambda i: i["downloads"]["last_day"] >= 1
                         and i["mirror_downloads"]["last_day"] >= 1)
        settle(server)
        found = info(server, name)
        assert (found["downloads"], found["mirror_downloads"]) == (one(1), one(1))
    finally:
        server.stop()
