"""The `moorage` command line, run as a real subprocess: users, tokens, db, serve, config."""

from __future__ import annotations

import base64
import hashlib
import http.client
import importlib.metadata
import json
import re
import sqlite3
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from moorage.config import load_settings
from moorage.services import accounts
from moorage.services.context import open_context
from tests.support.dists import Dist, make_wheel
from tests.support.server import TOKEN_LINE, Server, cli_env, run_cli, start_server

pytestmark = pytest.mark.slow

TOKEN = re.compile(r"^moorage-([0-9a-f]+)-(\S+)$")


def moorage(*args: str, env: dict[str, str], cwd: Path, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """`moorage ARGS` with exactly ``env`` (no inherited MOORAGE_*) in ``cwd``."""
    return subprocess.run([sys.executable, "-m", "moorage", *args], capture_output=True, text=True,
                          input=input, env=env, cwd=cwd, timeout=120)


def base_env() -> dict[str, str]:
    env = cli_env(Path("/nonexistent"))
    del env["MOORAGE_DATA_DIR"]
    return env


def upload_status(server: Server, token: str, dist: Dist) -> tuple[int, str]:
    """POST one file to /legacy/ as twine does; the HTTP status and body."""
    data = dist.path.read_bytes()
    boundary = uuid.uuid4().hex
    fields = {":action": "file_upload", "protocol_version": "1", "name": dist.name, "version": dist.version,
              "filetype": "bdist_wheel" if dist.filename.endswith(".whl") else "sdist",
              "pyversion": "py3" if dist.filename.endswith(".whl") else "source",
              "metadata_version": "2.1", "sha256_digest": hashlib.sha256(data).hexdigest()}
    body = b""
    for key, value in fields.items():
        body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{key}\"\r\n\r\n{value}\r\n").encode()
    body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"content\"; filename=\"{dist.filename}\"\r\n"
             "Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    auth = base64.b64encode(f"__token__:{token}".encode()).decode()
    parts = urlsplit(server.url)
    assert parts.hostname == "127.0.0.1"
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        conn.request("POST", "/legacy/", body=body, headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}", "Authorization": f"Basic {auth}"})
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    finally:
        conn.close()


def token_list_json(data_dir: Path, user: str) -> list[dict]:  # type: ignore[type-arg]
    out = run_cli(data_dir, "token", "list", user, "--json")
    return list(json.loads(out.stdout))


# -- --version ----------------------------------------------------------------------------
def test_version(tmp_path: Path) -> None:
    result = moorage("--version", env=base_env(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"moorage {importlib.metadata.version('moorage')}"
    assert not (tmp_path / "moorage-data").exists()  # asking for the version touches nothing


# -- db upgrade ---------------------------------------------------------------------------
def _tables(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {r[0] for r in conn.execute("select name from sqlite_master where type = 'table'")}


def _revision(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute("select version_num from alembic_version")]


@pytest.mark.embedded
def test_db_upgrade_on_a_fresh_data_dir_and_again(tmp_path: Path) -> None:
    data = tmp_path / "fresh" / "data"
    first = run_cli(data, "db", "upgrade")
    db = data / "moorage.db"
    assert db.exists()
    assert {"users", "tokens", "projects", "releases", "files", "events"} <= _tables(db)
    revision = _revision(db)
    assert len(revision) == 1
    assert revision[0] in first.stderr + first.stdout
    second = run_cli(data, "db", "upgrade")
    assert second.returncode == 0
    assert _revision(db) == revision
    assert revision[0] in second.stderr + second.stdout
    # The upgraded database is usable.
    run_cli(data, "user", "add", "someone")
    assert run_cli(data, "token", "list", "someone", "--json").stdout.strip() == "[]"


# -- users --------------------------------------------------------------------------------
@pytest.mark.embedded
def test_user_add_with_password_and_admin_flag(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    run_cli(data, "user", "add", "alice", "--admin", "--password-stdin", input="correct horse\n")
    run_cli(data, "user", "add", "bob", input="")
    ctx = open_context(load_settings(data_dir=data, environ={}))
    try:
        assert accounts.verify_password(ctx, "alice", "correct horse")
        assert not accounts.verify_password(ctx, "alice", "wrong")
        assert not accounts.verify_password(ctx, "bob", "")
    finally:
        ctx.close()
    with sqlite3.connect(data / "moorage.db") as conn:
        rows = dict(conn.execute("select name, is_admin from users").fetchall())
        hashes = [r[0] for r in conn.execute("select password_hash from users where name = 'alice'")]
    assert rows == {"alice": 1, "bob": 0}
    assert "correct horse" not in hashes[0]


@pytest.mark.embedded
def test_duplicate_user_exits_3_with_a_message(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    run_cli(data, "user", "add", "carol")
    again = run_cli(data, "user", "add", "carol", "--admin", check=False)
    assert again.returncode == 3, again
    assert "carol" in again.stderr and "already exists" in again.stderr, again.stderr
    assert "Traceback" not in again.stderr
    with sqlite3.connect(data / "moorage.db") as conn:
        assert conn.execute("select count(*), max(is_admin) from users where name = 'carol'").fetchone() == (1, 0)


def test_password_stdin_without_a_password_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = run_cli(data, "user", "add", "dave", "--password-stdin", input="", check=False)
    assert result.returncode == 2, result
    assert "password" in result.stderr
    assert "Traceback" not in result.stderr


# -- tokens -------------------------------------------------------------------------------
def test_token_create_prints_only_the_token(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    run_cli(data, "user", "add", "erin")
    result = run_cli(data, "token", "create", "erin", "--project", "Some_Project", "--project", "other.proj",
                     "--expires-days", "7", "--description", "ci [deploy]")
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and result.stdout == lines[0] + "\n", repr(result.stdout)
    token = lines[0]
    match = TOKEN.match(token)
    assert match, token
    assert token not in result.stderr
    (listed,) = token_list_json(data, "erin")
    assert listed["id"] == match.group(1)
    assert listed["projects"] == ["other-proj", "some-project"]
    assert listed["description"] == "ci [deploy]"
    expires = datetime.fromisoformat(listed["expires_at"])
    assert abs(expires - (datetime.now(UTC) + timedelta(days=7))) < timedelta(minutes=5)
    assert listed["revoked_at"] is None
    # A plain token: no scope, no expiry.
    plain = run_cli(data, "token", "create", "erin").stdout
    assert len(plain.splitlines()) == 1 and TOKEN.match(plain.strip())
    newest = token_list_json(data, "erin")[-1]
    assert newest["projects"] == [] and newest["expires_at"] is None


def test_token_create_refusals(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    run_cli(data, "user", "add", "frank")
    zero = run_cli(data, "token", "create", "frank", "--expires-days", "0", check=False)
    assert zero.returncode == 3 and zero.stdout == "", zero
    nobody = run_cli(data, "token", "create", "nobody", check=False)
    assert nobody.returncode == 4 and nobody.stdout == "" and "nobody" in nobody.stderr, nobody
    assert token_list_json(data, "frank") == []


def test_token_list_never_shows_secrets(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    run_cli(data, "user", "add", "grace")
    tokens = [run_cli(data, "token", "create", "grace", *extra).stdout.strip()
              for extra in ([], ["--project", "a-very-long-project-name-for-the-table", "--description", "x [y] z"])]
    table = run_cli(data, "token", "list", "grace")
    as_json = run_cli(data, "token", "list", "grace", "--json")
    for token in tokens:
        token_id, secret = TOKEN.match(token).groups()  # type: ignore[union-attr]
        for out in (table, as_json):
            shown = out.stdout + out.stderr
            assert secret not in shown and token not in shown
            assert accounts.hash_token(token) not in shown
            # Only the id, whole, so that `token revoke` can be given it.
            assert token_id in out.stdout, out.stdout
    assert "[y]" in table.stdout, table.stdout  # user text is shown, not read as markup
    docs = json.loads(as_json.stdout)
    assert len(docs) == 2
    allowed = {"id", "user", "description", "projects", "created_at", "expires_at", "revoked_at", "last_used_at",
               "last_used_address", "with_second_factor"}
    for doc in docs:
        assert set(doc) <= allowed, set(doc) - allowed


def test_token_revoke_refuses_uploads(server: Server, unique: str, dists: Path) -> None:
    user = f"rev{unique}"
    server.cli("user", "add", user)
    token = server.cli("token", "create", user).stdout.strip()
    token_id = TOKEN.match(token).group(1)  # type: ignore[union-attr]
    name = f"revoked-{unique}"
    status, body = upload_status(server, token, make_wheel(dists, name, "1.0"))
    assert status == 200, body
    revoked = server.cli("token", "revoke", token_id)
    assert token not in revoked.stdout + revoked.stderr
    status, body = upload_status(server, token, make_wheel(dists, name, "1.1"))
    assert status == 403, (status, body)
    (listed,) = token_list_json(server.data_dir, user)
    assert listed["revoked_at"] is not None
    table = server.cli("token", "list", user).stdout
    assert "revoked" in table
    # Revoking again is harmless; an unknown id is an error of its own.
    assert server.cli("token", "revoke", token_id).returncode == 0
    unknown = server.cli("token", "revoke", "000000000000", check=False)
    assert unknown.returncode == 4 and "000000000000" in unknown.stderr


# -- where the data lives: MOORAGE_DATA_DIR, MOORAGE_CONFIG, --data-dir --------------------
@pytest.mark.embedded
def test_moorage_data_dir_is_honoured(tmp_path: Path) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    chosen = tmp_path / "chosen"
    env = base_env() | {"MOORAGE_DATA_DIR": str(chosen)}
    missing = moorage("user", "add", "heidi", env=env, cwd=cwd)  # not made on the fly: named
    assert missing.returncode == 2 and str(chosen) in missing.stderr and "MOORAGE_DATA_DIR" in missing.stderr
    assert not chosen.exists() and not (cwd / "moorage-data").exists()
    chosen.mkdir()
    assert moorage("user", "add", "heidi", env=env, cwd=cwd).returncode == 0
    assert (chosen / "moorage.db").exists()
    assert not (cwd / "moorage-data").exists()
    listed = moorage("token", "list", "heidi", "--json", env=env, cwd=cwd)
    assert listed.returncode == 0 and json.loads(listed.stdout) == []
    # --data-dir beats the environment.
    flagged = tmp_path / "flagged"
    flagged.mkdir()
    assert moorage("user", "add", "ivan", "--data-dir", str(flagged), env=env, cwd=cwd).returncode == 0
    assert (flagged / "moorage.db").exists()
    assert moorage("token", "list", "ivan", env=env, cwd=cwd).returncode == 4


@pytest.mark.embedded
def test_moorage_config_is_honoured(tmp_path: Path) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    from_config = tmp_path / "from-config"
    config = tmp_path / "moorage.toml"
    config.write_text(f'data_dir = "{from_config}"\n[upload]\nmax_file_size = "1 MiB"\n')
    from_config.mkdir()
    env = base_env() | {"MOORAGE_CONFIG": str(config)}
    result = moorage("user", "add", "judy", env=env, cwd=cwd)
    assert result.returncode == 0, result.stderr
    assert (from_config / "moorage.db").exists()
    assert not (cwd / "moorage-data").exists()
    assert moorage("token", "create", "judy", env=env, cwd=cwd).returncode == 0
    # MOORAGE_DATA_DIR beats the file's data_dir.
    override = tmp_path / "override"
    override.mkdir()
    both = moorage("user", "add", "kim", env=env | {"MOORAGE_DATA_DIR": str(override)}, cwd=cwd)
    assert both.returncode == 0 and (override / "moorage.db").exists()
    # A MOORAGE_CONFIG that names a missing file is an error, so the variable is read.
    missing = moorage("token", "list", "judy", env=base_env() | {"MOORAGE_CONFIG": str(tmp_path / "nope.toml")},
                      cwd=cwd)
    assert missing.returncode == 2 and "nope.toml" in missing.stderr, missing


@pytest.mark.parametrize(("text", "mentions"), [
    pytest.param("[server\nport = 1\n", ["moorage.toml"], id="toml-syntax"),
    pytest.param("colour = 'blue'\n", ["colour"], id="unknown-top-level-key"),
    pytest.param("[upload]\nmax_files = 3\n", ["[upload]", "max_files"], id="unknown-upload-key"),
    pytest.param("[server]\nthreads = 3\n", ["[server]", "threads"], id="unknown-server-key"),
    pytest.param("[server]\nport = 'eighty'\n", ["server.port", "eighty"], id="port-not-a-number"),
    pytest.param("[server]\nport = 70000\n", ["server.port"], id="port-out-of-range"),
    pytest.param("[server]\nworkers = 'many'\n", ["server.workers"], id="workers-not-a-number"),
    pytest.param("[server]\ncache_check_interval = 'often'\n", ["cache_check_interval"], id="interval-not-a-number"),
    pytest.param("server = 8080\n", ["server"], id="server-not-a-table"),
    pytest.param("[upload]\nmax_file_size = 'huge'\n", ["upload.max_file_size", "huge"], id="bad-size"),
    pytest.param("[upload]\nmax_compression_ratio = 'high'\n", ["max_compression_ratio"], id="ratio-not-a-number"),
    pytest.param("data_dir = 5\n", ["data_dir"], id="data-dir-not-a-string"),
])
def test_invalid_config_exits_2_with_a_clear_message(tmp_path: Path, text: str, mentions: list[str]) -> None:
    config = tmp_path / "moorage.toml"
    config.write_text(text)
    env = base_env() | {"MOORAGE_DATA_DIR": str(tmp_path / "d")}
    result = moorage("db", "upgrade", "--config", str(config), env=env, cwd=tmp_path)
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message  # one line, not wrapped at the terminal width
    assert "configuration" in message
    for word in mentions:
        assert word in message, (word, message)
    assert not (tmp_path / "d" / "moorage.db").exists()


def test_serve_with_an_invalid_config_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "moorage.toml"
    config.write_text("[server]\nport = 'x'\n")
    result = moorage("serve", "--config", str(config), env=base_env() | {"MOORAGE_DATA_DIR": str(tmp_path / "d")},
                     cwd=tmp_path)
    assert result.returncode == 2, result
    assert "server.port" in result.stderr and "Traceback" not in result.stderr
    via_env = moorage("serve", env=base_env() | {"MOORAGE_DATA_DIR": str(tmp_path / "d"),
                                                 "MOORAGE_CONFIG": str(config)}, cwd=tmp_path)
    assert via_env.returncode == 2 and "server.port" in via_env.stderr, via_env


# -- serve: the first start and the next --------------------------------------------------
@pytest.mark.embedded
def test_serve_prints_the_admin_token_only_on_the_first_start(tmp_path: Path, dists: Path, unique: str) -> None:
    data = tmp_path / "index" / "data"
    first = start_server(data)
    try:
        output = first.output.read_text()
        token = first.admin_token
        assert TOKEN.match(token), output
        base = first.url.rstrip("/")
        assert f"pip install --index-url {base}/simple/ " in output, output
        assert f"uv pip install --index-url {base}/simple/ " in output, output
        assert f"twine upload --repository-url {base}/legacy/ -u __token__ -p {token} " in output, output
        assert f"uv publish --publish-url {base}/legacy/ --token {token}" in output, output
        status, body = upload_status(first, token, make_wheel(dists, f"boot-{unique}", "1.0"))
        assert status == 200, body
    finally:
        first.stop()
    tokens = token_list_json(data, "admin")
    assert len(tokens) == 1 and tokens[0]["id"] == TOKEN.match(token).group(1)  # type: ignore[union-attr]

    second = start_server(data)
    try:
        output = second.output.read_text()
        assert second.admin_token == ""
        assert not TOKEN_LINE.search(output), output
        assert not re.search(r"moorage-[0-9a-f]+-\S+", output), output
        assert "password" not in output.lower(), output
        assert "serving" in output
        # The first token still works.
        status, body = upload_status(second, token, make_wheel(dists, f"boot-{unique}", "1.1"))
        assert status == 200, body
    finally:
        second.stop()
    assert len(token_list_json(data, "admin")) == 1
    with sqlite3.connect(data / "moorage.db") as conn:
        assert conn.execute("select count(*) from users").fetchone() == (1,)


def test_role_commands_let_a_maintainer_upload(server: Server, unique: str, dists: Path) -> None:
    name = f"team-{unique}"
    status, body = upload_status(server, server.admin_token, make_wheel(dists, name, "1.0"))
    assert status == 200, body
    user = f"maint{unique}"
    server.cli("user", "add", user)
    token = server.cli("token", "create", user).stdout.strip()
    status, body = upload_status(server, token, make_wheel(dists, name, "1.1"))
    assert status == 403 and "not an owner or maintainer" in body, (status, body)
    server.cli("role", "set", name, user, "--role", "maintainer")
    assert server.cli("role", "list", name).stdout.splitlines() == ["owner\tadmin", f"maintainer\t{user}"]
    status, body = upload_status(server, token, make_wheel(dists, name, "1.1"))
    assert status == 200, body
    last_owner = server.cli("role", "remove", name, "admin", check=False)
    assert last_owner.returncode == 3 and "only owner" in last_owner.stderr
    server.cli("role", "remove", name, user)
    status, body = upload_status(server, token, make_wheel(dists, name, "1.2"))
    assert status == 403, (status, body)


# -- events: whole payloads, one actor for the operator, a closed pipe ----------------------
def _details(table: str, serial: int) -> str:
    """The details cell of one event's row in `moorage events`' table, its folded lines joined."""
    cells: list[str] = []
    inside = False
    for line in table.splitlines():
        if not line.startswith("│"):
            continue
        parts = line.split("│")
        first = parts[1].strip()
        if first:
            inside = first == str(serial)
        if inside:
            cells.append(parts[-2].strip())
    return "".join(cells)


def test_events_show_payloads_whole_and_the_operator_by_one_name(server: Server, unique: str, dists: Path) -> None:
    name = f"evt-{unique}"
    status, body = upload_status(server, server.admin_token, make_wheel(dists, name, "1.0"))
    assert status == 200, body
    reason = "a reason long enough to be folded over several lines of the table: " + " ".join(
        f"word{n:03d}" for n in range(40)) + ' with "quotes", commas, and = signs'
    user = f"evu{unique}"
    server.cli("yank", name, "1.0", "--reason", reason)
    server.cli("user", "add", user)
    server.cli("role", "set", name, user, "--role", "maintainer")
    token_id = TOKEN.match(server.cli("token", "create", user).stdout.strip()).group(1)  # type: ignore[union-attr]
    server.cli("token", "revoke", token_id)
    server.cli("role", "remove", name, user)
    everything = json.loads(server.cli("events", "--json").stdout)
    mine = [e for e in everything if e["project"] == name or e["subject"] in (f"user:{user}", f"token:{token_id}")]
    by_cli = [e for e in mine if e["action"] not in ("project-created", "role-added", "release-created",
                                                     "file-added") or e["actor"] != "admin"]
    assert {e["action"] for e in by_cli} >= {"release-yanked", "user-created", "role-added", "token-created",
                                             "token-revoked", "role-removed"}, by_cli
    assert {e["actor"] for e in by_cli} == {"operator"}, [(e["action"], e["actor"]) for e in by_cli]

    table = server.cli("events", "--project", name)
    assert "…" not in table.stdout and "Traceback" not in table.stdout + table.stderr
    (yank,) = [e for e in mine if e["action"] == "release-yanked"]
    shown = _details(table.stdout, yank["serial"])
    expected = "".join(f"{k}={v if isinstance(v, str) else json.dumps(v, separators=(',', ':'))}"
                       for k, v in yank["payload"].items() if k != "project")
    assert shown.replace(" ", "") == expected.replace(" ", ""), (shown, expected)
    assert reason.replace(" ", "") in shown.replace(" ", "")


def test_a_closed_pipe_ends_a_command_quietly(tmp_path: Path) -> None:
    data = tmp_path / "data"
    run_cli(data, "db", "upgrade")
    ctx = open_context(load_settings(environ=cli_env(data)))
    try:
        for n in range(600):  # more output than a pipe holds
            accounts.add_user(ctx, f"user{n:04d}", password=None, actor="operator")
    finally:
        ctx.close()
    for command in ("events --json", "events", "policy show --json"):
        shell = f"{sys.executable} -m moorage {command} | head -n 3; echo \"status=${{PIPESTATUS[0]}}\""
        proc = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, env=cli_env(data), timeout=120)
        assert proc.stderr == "", (command, proc.stderr)
        assert len(proc.stdout.splitlines()) == 4, proc.stdout
        status = proc.stdout.splitlines()[-1]
        assert status in ("status=0", "status=141"), (command, status)  # 0: all of it fit in the pipe
    big = subprocess.run(["bash", "-c", f"{sys.executable} -m moorage events --json | head -n 1; "
                          "echo \"status=${PIPESTATUS[0]}\""], capture_output=True, text=True, env=cli_env(data),
                         timeout=120)
    assert big.stderr == "" and big.stdout.splitlines() == ["[", "status=141"], big
