"""Runs the real clients (twine, uv, poetry, pip) in subprocesses, isolated from user config."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import uv


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIP_", "UV_", "TWINE_", "POETRY_", "MOORAGE_"))}
    env["NO_COLOR"] = "1"
    env.update(extra)
    return env


def run(args: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, env=env or clean_env(), cwd=cwd, timeout=timeout)


def uv_bin() -> str:
    return uv.find_uv_bin()


def venv_bin(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} is not installed next to {sys.executable}")
    return found


def twine_upload(repository_url: str, token: str, *files: Path, extra: list[str] | None = None
                 ) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "twine", "upload", "--non-interactive", "--disable-progress-bar",
                "--repository-url", repository_url, "-u", "__token__", "-p", token,
                *(extra or []), *map(str, files)])


def fresh_venv(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=120)
    return path / "bin" / "python"


def pip_install(python: Path, index_url: str, *requirements: str) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "pip", "--python", str(python), "install", "--isolated",
                "--no-cache-dir", "--disable-pip-version-check", "--index-url", index_url, *requirements])


def uv_pip_install(python: Path, index_url: str, *requirements: str) -> subprocess.CompletedProcess[str]:
    return run([uv_bin(), "pip", "install", "--no-cache", "--no-config", "--python", str(python),
                "--index-url", index_url, *requirements])


def installed(python: Path) -> dict[str, str]:
    """name -> version of what is installed in that environment."""
    code = ("import importlib.metadata as m, json; "
            "import re; print(json.dumps({re.sub(r'[-_.]+', '-', d.metadata['Name']).lower(): d.version "
            "for d in m.distributions()}))")
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True, timeout=60)
    import json

    return dict(json.loads(out.stdout))
