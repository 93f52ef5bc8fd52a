"""Yanks and the upload window, seen through the real server and real clients."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import pytest

from tests.support import clients
from tests.support.dists import make_sdist, make_wheel
from tests.support.server import Server, http_status, start_server

pytestmark = pytest.mark.slow
JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}


def _get(url: str, headers: dict[str, str] | None = None) -> bytes:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as resp:
        return bytes(resp.read())


def _wait_for(check, timeout: float = 1.0) -> None:  # type: ignore[no-untyped-def]
    """A CLI change reaches a running server's pages within a second."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the change did not reach the server's pages within a second"
        time.sleep(0.01)


def test_a_yanked_pinned_version_installs_and_an_unpinned_install_skips_it(
        server: Server, unique: str, dists: Path, tmp_path: Path) -> None:
    name = f"yanky-{unique}"
    files = [make_wheel(dists, name, "1.0"), make_wheel(dists, name, "2.0"), make_sdist(dists, name, "2.0")]
    assert clients.twine_upload(server.legacy, server.admin_token, *(f.path for f in files)).returncode == 0
    server.cli("yank", name, "2.0", "--reason", "2.0 corrupts data")
    _wait_for(lambda: b"data-yanked" in _get(server.simple + name + "/"))

    html = _get(server.simple + name + "/").decode()
    assert html.count('data-yanked="2.0 corrupts data"') == 2
    page = json.loads(_get(server.simple + name + "/", JSON))
    assert {f["filename"]: f["yanked"] for f in page["files"]} == {
        files[0].filename: False, files[1].filename: "2.0 corrupts data", files[2].filename: "2.0 corrupts data"}
    api = json.loads(_get(server.url + f"pypi/{name}/json"))
    assert api["info"]["version"] == "1.0"  # the latest version that is not yanked
    assert all(f["yanked"] and f["yanked_reason"] == "2.0 corrupts data" for f in api["releases"]["2.0"])
    release = json.loads(_get(server.url + f"pypi/{name}/2.0/json"))
    assert release["info"]["yanked"] is True and release["info"]["yanked_reason"] == "2.0 corrupts data"

    for installer in (clients.pip_install, clients.uv_pip_install):
        unpinned = clients.fresh_venv(tmp_path / f"unpinned-{installer.__name__}")
        result = installer(unpinned, server.simple, name)
        assert result.returncode == 0, result.stdout + result.stderr
        assert clients.installed(unpinned)[name] == "1.0"
        pinned = clients.fresh_venv(tmp_path / f"pinned-{installer.__name__}")
        result = installer(pinned, server.simple, f"{name}==2.0")
        assert result.returncode == 0, result.stdout + result.stderr
        assert clients.installed(pinned)[name] == "2.0"

    server.cli("unyank", name, "2.0")
    _wait_for(lambda: b"data-yanked" not in _get(server.simple + name + "/"))


def test_only_an_owner_may_yank_through_the_cli(server: Server, unique: str, dists: Path) -> None:
    name = f"guarded-{unique}"
    assert clients.twine_upload(server.legacy, server.admin_token, make_wheel(dists, name, "1.0").path).returncode == 0
    server.cli("user", "add", f"eve{unique}")
    refused = server.cli("yank", name, "1.0", "--as", f"eve{unique}", check=False)
    assert refused.returncode == 3
    assert "not-an-owner" in refused.stderr and f"only an owner of {name}" in refused.stderr
    assert b"data-yanked" not in _get(server.simple + name + "/")


@pytest.fixture(scope="module")
def closing_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A release closes as soon as its first file is in (upload_window = 0s): no waiting."""
    root = tmp_path_factory.mktemp("closing")
    config = root / "moorage.toml"
    config.write_text('[policy]\nupload_window = "0s"\n')
    srv = start_server(root / "data", config=config)
    yield srv
    srv.stop()


def test_twine_upload_to_a_closed_release_fails_with_the_rule(closing_server: Server, tmp_path: Path) -> None:
    srv = closing_server
    first = make_wheel(tmp_path, "closing", "1.0")
    assert clients.twine_upload(srv.legacy, srv.admin_token, first.path).returncode == 0
    late = make_wheel(tmp_path, "closing", "1.0", tag="py2-none-any")
    refused = clients.twine_upload(srv.legacy, srv.admin_token, late.path)
    assert refused.returncode != 0
    said = " ".join((refused.stdout + refused.stderr).split())
    assert "release 1.0 of closing stopped accepting new files" in said, said
    # The identical file again still succeeds, after the window closed.
    again = clients.twine_upload(srv.legacy, srv.admin_token, first.path)
    assert again.returncode == 0, again.stdout + again.stderr
    # Reopened (recorded, with a reason), the release takes the file.
    srv.cli("reopen", "closing", "1.0", "--days", "1", "--reason", "the py2 wheel was forgotten")
    accepted = clients.twine_upload(srv.legacy, srv.admin_token, late.path)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    api = json.loads(_get(srv.url + "pypi/closing/1.0/json"))
    assert api["info"]["accepts_uploads"] is True and api["info"]["reopened_until"]



def test_archived_deprecated_and_quarantined_through_the_server(server: Server, unique: str, dists: Path) -> None:
    name = f"status-{unique}"
    wheel = make_wheel(dists, name, "1.0")
    assert clients.twine_upload(server.legacy, server.admin_token, wheel.path).returncode == 0
    page_url = server.simple + name + "/"
    file_url = urljoin(page_url, json.loads(_get(page_url, JSON))["files"][0]["url"])
    assert http_status(file_url) == 200  # cached as downloadable before the quarantine below

    server.cli("archive", name, "--reason", "no longer maintained")
    _wait_for(lambda: b'content="archived"' in _get(page_url))
    html = _get(page_url).decode()
    assert '<meta name="pypi:project-status-reason" content="no longer maintained">' in html
    assert json.loads(_get(page_url, JSON))["project-status"] == {"status": "archived",
                                                                  "reason": "no longer maintained"}
    refused = clients.twine_upload(server.legacy, server.admin_token, make_wheel(dists, name, "1.1").path)
    said = " ".join((refused.stdout + refused.stderr).split())
    assert refused.returncode != 0 and f"{name} is archived and accepts no new uploads" in said, said

    server.cli("deprecate", name, "--reason", "superseded")
    _wait_for(lambda: json.loads(_get(page_url, JSON))["project-status"]["status"] == "deprecated")
    assert http_status(file_url) == 200

    server.cli("quarantine", name, "--reason", "malware report")
    _wait_for(lambda: json.loads(_get(page_url, JSON))["project-status"]["status"] == "quarantined")
    quarantined = json.loads(_get(page_url, JSON))
    assert quarantined["files"] == [] and quarantined["versions"] == []
    assert name not in _get(server.simple).decode()
    assert http_status(file_url) == 404
    assert http_status(server.url + f"pypi/{name}/json") == 404

    server.cli("unquarantine", name, "--reason", "report was wrong")
    _wait_for(lambda: http_status(file_url) == 200)
    assert name in _get(server.simple).decode()


def test_a_project_history_is_public_and_complete_for_admins(server: Server, unique: str, dists: Path) -> None:
    name = f"history-{unique}"
    wheel = make_wheel(dists, name, "1.0")
    assert clients.twine_upload(server.legacy, server.admin_token, wheel.path).returncode == 0
    server.cli("yank", name, "1.0", "--reason", "oops")
    server.cli("unyank", name, "1.0")
    anonymous = json.loads(_get(server.url + f"api/projects/{name}/events"))
    actions = [e["action"] for e in anonymous["events"]]
    assert actions == ["project-created", "role-added", "release-created", "file-added",
                       "release-yanked", "release-unyanked"]
    assert anonymous["all"] is False
    serials = [e["serial"] for e in anonymous["events"]]
    assert serials == sorted(serials) and len(set(serials)) == len(serials)
    added = anonymous["events"][3]["payload"]
    assert (added["filename"], added["sha256"], added["size"]) == (wheel.filename, wheel.sha256,
                                                                   wheel.path.stat().st_size)
    admin = json.loads(_get(server.url + f"api/projects/{name}/events",
                            {"Authorization": f"Bearer {server.admin_token}"}))
    assert admin["all"] is True and [e["action"] for e in admin["events"]] == actions
    later = json.loads(_get(server.url + f"api/projects/{name}/events?after={serials[3]}"))
    assert [e["serial"] for e in later["events"]] == serials[4:]
    assert http_status(server.url + "api/projects/no-such-project-here/events") == 404
    cli = json.loads(server.cli("events", "--project", name, "--json").stdout)
    assert [e["action"] for e in cli] == actions and cli[4]["payload"]["reason"] == "oops"


def test_delete_and_restore_through_the_cli_and_the_server(server: Server, unique: str, dists: Path) -> None:
    name = f"mistake-{unique}"
    wheel, sdist = make_wheel(dists, name, "1.0"), make_sdist(dists, name, "1.0")
    assert clients.twine_upload(server.legacy, server.admin_token, wheel.path, sdist.path).returncode == 0
    page_url = server.simple + name + "/"
    file_url = urljoin(page_url, json.loads(_get(page_url, JSON))["files"][0]["url"])
    assert http_status(file_url) == 200

    server.cli("user", "add", f"own{unique}")
    server.cli("role", "set", name, f"own{unique}", "--role", "owner")
    server.cli("delete", name, "1.0", wheel.filename, "--as", f"own{unique}")
    _wait_for(lambda: wheel.filename.encode() not in _get(page_url))
    assert http_status(file_url) == 404
    again = clients.twine_upload(server.legacy, server.admin_token, wheel.path)
    said = " ".join((again.stdout + again.stderr).split())
    assert again.returncode != 0 and "never uploaded again" in said, said

    operator = server.cli("delete", name, check=False)
    assert operator.returncode == 3 and "reason-required" in operator.stderr
    server.cli("delete", name, "--reason", "published by mistake")
    _wait_for(lambda: http_status(page_url) == 404)
    assert name not in _get(server.simple).decode()

    server.cli("admin", "restore", name, "--reason", "it was needed after all")
    _wait_for(lambda: http_status(page_url) == 200)
    assert [f["filename"] for f in json.loads(_get(page_url, JSON))["files"]] == [sdist.filename]
    server.cli("admin", "restore", name, "1.0", wheel.filename, "--reason", "this one too")
    _wait_for(lambda: http_status(file_url) == 200)
    assert _get(file_url) == wheel.path.read_bytes()


def test_after_a_removal_only_the_opt_in_root_installs_the_project(server: Server, unique: str, dists: Path,
                                                                  tmp_path: Path) -> None:
    name = f"retiring-{unique}"
    wheel = make_wheel(dists, name, "1.0")
    assert clients.twine_upload(server.legacy, server.admin_token, wheel.path).returncode == 0
    # The operator (an admin) may choose a short grace period: here about half a second.
    server.cli("announce-removal", name, "--days", "0.000005", "--reason", "retired")
    page = server.simple + name + "/"
    _wait_for(lambda: wheel.filename.encode() not in _get(page), timeout=5.0)
    pending = server.url + "pending/simple/"
    assert wheel.filename.encode() in _get(pending + name + "/")
    assert json.loads(_get(page, JSON))["project-status"]["status"] == "deprecated"

    for installer in (clients.pip_install, clients.uv_pip_install):
        default = clients.fresh_venv(tmp_path / f"default-{installer.__name__}")
        refused = installer(default, server.simple, name)
        assert refused.returncode != 0
        opted_in = clients.fresh_venv(tmp_path / f"pending-{installer.__name__}")
        result = installer(opted_in, pending, name)
        assert result.returncode == 0, result.stdout + result.stderr
        assert clients.installed(opted_in)[name] == "1.0"
