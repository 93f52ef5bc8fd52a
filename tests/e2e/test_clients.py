"""Real clients against the real server: twine, uv publish, poetry publish, pip and uv installs."""

from __future__ import annotations

import hashlib
import json
import urllib.request
from pathlib import Path
from urllib.parse import urljoin

import pytest

from tests.support import clients
from tests.support.dists import Dist, make_sdist, make_wheel
from tests.support.server import Server

pytestmark = pytest.mark.slow


def _chain(out: Path, u: str) -> dict[str, list[Dist]]:
    """top -> middle -> base, each with an sdist and a wheel; base has two versions."""
    base, middle, top = f"base-{u}", f"Middle_{u}", f"top.{u}"
    return {
        base: [make_wheel(out, base, "1.0"), make_sdist(out, base, "1.0"),
               make_wheel(out, base, "1.1"), make_sdist(out, base, "1.1")],
        middle: [make_wheel(out, middle, "2.0", requires=[f"{base}>=1.1"]),
                 make_sdist(out, middle, "2.0", requires=[f"{base}>=1.1"])],
        top: [make_wheel(out, top, "3.0", requires=[f"{middle}~=2.0"]),
              make_sdist(out, top, "3.0", requires=[f"{middle}~=2.0"])],
    }


def _requirements(tmp: Path, chain: dict[str, list[Dist]], pins: dict[str, str]) -> Path:
    lines = []
    for name, version in pins.items():
        hashes = " ".join(f"--hash=sha256:{d.sha256}" for d in chain[name] if d.version == version)
        lines.append(f"{name}=={version} {hashes}")
    req = tmp / "requirements.txt"
    req.write_text("\n".join(lines) + "\n")
    return req


def test_twine_upload_then_pip_and_uv_install_the_chain(server: Server, unique: str, dists: Path,
                                                         tmp_path: Path) -> None:
    chain = _chain(dists, unique)
    files = [d.path for ds in chain.values() for d in ds]
    first = clients.twine_upload(server.legacy, server.admin_token, *files)
    assert first.returncode == 0, first.stdout + first.stderr
    again = clients.twine_upload(server.legacy, server.admin_token, *files)
    assert again.returncode == 0, again.stdout + again.stderr

    base, middle, top = list(chain)
    pins = {top: "3.0", middle: "2.0", base: "1.1"}
    for installer in (clients.pip_install, clients.uv_pip_install):
        python = clients.fresh_venv(tmp_path / f"env-{installer.__name__}")
        result = installer(python, server.simple, top)
        assert result.returncode == 0, result.stdout + result.stderr
        got = clients.installed(python)
        for name, version in pins.items():
            assert got[clients_norm(name)] == version, got

        # The same install with every hash pinned: the client checks the bytes it receives.
        python = clients.fresh_venv(tmp_path / f"env-hashes-{installer.__name__}")
        req = _requirements(tmp_path, chain, pins)
        result = installer(python, server.simple, "--require-hashes", "-r", str(req))
        assert result.returncode == 0, result.stdout + result.stderr
        assert {clients_norm(n) for n in pins} <= set(clients.installed(python))

    # Every file is downloadable under its URL with exactly the uploaded bytes.
    page = json.loads(urllib.request.urlopen(urllib.request.Request(
        server.simple + clients_norm(base) + "/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})).read())
    by_name = {d.filename: d for d in chain[base]}
    assert {f["filename"] for f in page["files"]} == set(by_name)
    for f in page["files"]:
        data = urllib.request.urlopen(urljoin(server.simple + clients_norm(base) + "/", f["url"])).read()
        assert hashlib.sha256(data).hexdigest() == f["hashes"]["sha256"] == by_name[f["filename"]].sha256


def clients_norm(name: str) -> str:
    import re

    return re.sub(r"[-_.]+", "-", name).lower()


def test_uv_publish_and_check_url(server: Server, unique: str, dists: Path) -> None:
    name = f"uvpub-{unique}"
    files = [make_wheel(dists, name, "0.1").path, make_sdist(dists, name, "0.1").path]
    args = [clients.uv_bin(), "publish", "--no-config", "--publish-url", server.legacy, "--token",
            server.admin_token, *map(str, files)]
    first = clients.run(args)
    assert first.returncode == 0, first.stdout + first.stderr
    again = clients.run([*args[:-2], "--check-url", server.simple, *map(str, files)])
    assert again.returncode == 0, again.stdout + again.stderr
    said = (again.stdout + again.stderr).lower()
    assert "already exists" in said or "skipping" in said, said
    plain_again = clients.run(args)
    assert plain_again.returncode == 0, plain_again.stdout + plain_again.stderr
    page = urllib.request.urlopen(server.simple + name + "/").read().decode()
    assert all(f.name in page for f in files)


def test_poetry_publish_to_a_configured_repository(server: Server, unique: str, tmp_path: Path) -> None:
    name = f"poetry-{unique}"
    project = tmp_path / "proj"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        f'[project]\nname = "{name}"\nversion = "0.3.0"\ndescription = "x"\nrequires-python = ">=3.8"\n'
        '[build-system]\nrequires = ["poetry-core>=2"]\nbuild-backend = "poetry.core.masonry.api"\n'
    )
    wheel = make_wheel(project / "dist", name, "0.3.0")
    env = clients.clean_env(
        POETRY_CONFIG_DIR=str(tmp_path / "poetry-config"),
        POETRY_CACHE_DIR=str(tmp_path / "poetry-cache"),
        POETRY_REPOSITORIES_MOORAGE_URL=server.legacy,
        POETRY_HTTP_BASIC_MOORAGE_USERNAME="__token__",
        POETRY_HTTP_BASIC_MOORAGE_PASSWORD=server.admin_token,
    )
    poetry = clients.venv_bin("poetry")
    result = clients.run([poetry, "publish", "--repository", "moorage", "--no-interaction"], env=env, cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr
    page = urllib.request.urlopen(server.simple + name + "/").read().decode()
    assert wheel.filename in page


def test_hatch_publish(server: Server, unique: str, tmp_path: Path) -> None:
    name = f"hatch-{unique}"
    project = tmp_path / "proj"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        f'[project]\nname = "{name}"\nversion = "0.4.0"\n'
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
    )
    files = [make_wheel(project / "dist", name, "0.4.0").path, make_sdist(project / "dist", name, "0.4.0").path]
    (tmp_path / "hatch-config.toml").write_text("")  # an empty config: nothing from the machine's
    env = clients.clean_env(HATCH_DATA_DIR=str(tmp_path / "hatch-data"), HATCH_CACHE_DIR=str(tmp_path / "hatch-cache"),
                            HATCH_CONFIG=str(tmp_path / "hatch-config.toml"))
    hatch = clients.venv_bin("hatch")
    args = [hatch, "publish", "--repo", server.legacy, "--user", "__token__", "--auth", server.admin_token,
            "--no-prompt", *map(str, files)]
    result = clients.run(args, env=env, cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr
    page = urllib.request.urlopen(server.simple + name + "/").read().decode()
    assert all(f.name in page for f in files)
