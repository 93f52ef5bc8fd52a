"""What the index writes for people says the same thing everywhere: a duration in the unit the
configuration used, singular or plural as it must be; the home page counts what it lists."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import pytest

from tests.support.dists import make_wheel
from tests.support.server import Server, cli_env, run_cli, start_server
from tests.support.upload import post_upload

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(("configured", "read"), [('"3d"', "3 days"), ('"72h"', "72 hours"), ('"1s"', "1 second"),
                                                  ("1", "1 second"), ('"1m"', "1 minute")])
def test_policy_show_and_the_refusal_say_the_same_duration(server: Server, unique: str, dists: Path,
                                                           tmp_path: Path, configured: str, read: str) -> None:
    name = f"words-{unique}"
    wheel = make_wheel(dists, name, "1.0")
    assert post_upload(server.legacy, server.admin_token, wheel.path)[0] == 200
    owner = f"own{unique}"
    server.cli("user", "add", owner)
    server.cli("role", "set", name, owner, "--role", "owner")
    config = tmp_path / "moorage.toml"
    config.write_text(f"[policy]\ndeletion_window = {configured}\n")
    offset = tmp_path / "offset"
    offset.write_text(str(4 * 86400))  # four days on: past every window above
    env = cli_env(server.data_dir) | {"MOORAGE_CLOCK_OFFSET_FILE": str(offset)}

    shown = json.loads(run_cli(server.data_dir, "policy", "show", "--json", "--config", str(config), env=env).stdout)
    (rule,) = [r for r in shown if r["key"] == "policy.deletion_window"]
    assert rule["value"] == read
    table = run_cli(server.data_dir, "policy", "show", "--config", str(config), env=env).stdout
    assert re.search(rf"policy\.deletion_window\s+│\s+{read}\s+│", table), table

    check = run_cli(server.data_dir, "policy", "check", "delete", name, "1.0", wheel.filename, "--as", owner,
                    "--config", str(config), "--json", env=env, check=False)
    assert check.returncode == 3, check
    decision = json.loads(check.stdout)
    assert decision["rule"] == "deletion-window"
    assert f"files may be deleted within {read} of upload" in decision["reason"], decision
    refused = run_cli(server.data_dir, "delete", name, "1.0", wheel.filename, "--as", owner, "--config", str(config),
                      env=env, check=False)
    assert refused.returncode == 3 and f"within {read} of upload" in refused.stderr, refused
    assert "Traceback" not in check.stderr + refused.stderr


def test_the_home_page_counts_what_it_lists(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data")
    try:
        wheels = {name: make_wheel(tmp_path / "dist", name, "1.0") for name in ("one", "two", "three")}
        for wheel in wheels.values():
            assert post_upload(server.legacy, server.admin_token, wheel.path)[0] == 200
        server.cli("delete", "two", "1.0", wheels["two"].filename, "--reason", "a mistake")  # its only file

        def lead() -> str:
            with urllib.request.urlopen(server.url, timeout=10) as resp:
                page = resp.read().decode()
            return re.search(r'<p class="lead">([^.]*)\.', page).group(1)  # type: ignore[union-attr]

        def listed(query: str) -> list[str]:
            with urllib.request.urlopen(server.url + f"search/?q={query}", timeout=10) as resp:
                return re.findall(r'href="/project/([^/"]+)/"', resp.read().decode())

        assert lead() == "2 projects, 2 releases, 2 files"
        assert sorted(set(listed("o")) | set(listed("t"))) == ["one", "three"]
        server.cli("delete", "three", "1.0", wheels["three"].filename, "--reason", "another")
        assert lead() == "1 project, 1 release, 1 file"
    finally:
        server.stop()
