"""Real distributions, as the package registry publishes them, through twine and uv publish.

Every file of ``real.tsv`` is fetched with ``pip download`` into a cache (``fetch.py``), checked
against its pinned sha256 and size, then uploaded to a moorage of its own by each client:
accepted unless the list says the public index refuses it too, and then refused for that reason.
What the index serves is compared with the archives themselves (the ``.metadata`` file, the
simple pages, the JSON API), and the projects of ``install.txt`` are installed with their
dependencies from moorage alone: by pip with ``--require-hashes``, and by uv.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.metadata import parse_email
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.corpus.fetch import HERE, CorpusFile, fetch, load_list
from tests.support import clients
from tests.support.server import Server, start_server
from tests.support.upload import post_upload

pytestmark = pytest.mark.slow

JSON_V1 = "application/vnd.pypi.simple.v1+json"
CHUNK = 120  # files per client invocation: one process start for many files


@dataclass(frozen=True)
class Corpus:
    files: list[CorpusFile]
    paths: dict[str, Path]

    @property
    def accepted(self) -> list[CorpusFile]:
        return [f for f in self.files if f.expected == "accept"]

    @property
    def refused(self) -> list[CorpusFile]:
        return [f for f in self.files if f.expected != "accept"]


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    files = load_list()
    started = time.monotonic()
    paths = fetch(files)
    print(
        f"\ncorpus: {len(files)} files, {sum(f.size for f in files) / 1e6:.0f} MB, "
        f"ready in {time.monotonic() - started:.1f} s",
        file=sys.stderr,
    )
    return Corpus(files, paths)


@pytest.fixture
def index(tmp_path: Path) -> Iterator[Server]:
    srv = start_server(tmp_path / "data", timeout=120)
    yield srv
    srv.stop()


def expected_refusal(f: CorpusFile) -> tuple[str, str]:
    """``refuse:<rule>:<what the reason says>`` -> (rule, fragment)."""
    _, rule, fragment = f.expected.split(":", 2)
    return rule, fragment


# -- the archives themselves ------------------------------------------------------------------
def archive_metadata(path: Path) -> bytes:
    """The METADATA of a wheel or the top-level PKG-INFO of an sdist, read here independently."""
    if path.name.endswith(".whl"):
        with zipfile.ZipFile(path) as zf:
            [member] = [n for n in zf.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)]
            return zf.read(member)
    if path.name.endswith(".zip"):
        with zipfile.ZipFile(path) as zf:
            [member] = [n for n in zf.namelist() if re.fullmatch(r"[^/]+/PKG-INFO", n)]
            return zf.read(member)
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:
            if re.fullmatch(r"(\./)?[^/]+/PKG-INFO", member.name) and member.isfile():
                extracted = tar.extractfile(member)
                assert extracted is not None
                return extracted.read()
    raise AssertionError(f"{path.name} has no PKG-INFO")


def serves_metadata(f: CorpusFile, raw: bytes) -> bool:
    """A wheel's METADATA always; an sdist's PKG-INFO from 2.2 when its dependencies are not dynamic."""
    if f.packagetype == "bdist_wheel":
        return True
    fields, _ = parse_email(raw)
    if Version(fields.get("metadata_version", "1.0")) < Version("2.2"):
        return False
    dynamic = {d.lower() for d in fields.get("dynamic", [])}
    return not ({"requires-dist", "requires-python"} & dynamic)


# -- talking to the index ---------------------------------------------------------------------
def get(url: str, accept: str | None = None) -> tuple[int, bytes]:
    assert url.startswith("http://127.0.0.1:")
    req = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def twine_refuses_itself(path: Path) -> str | None:
    """twine validates the metadata with packaging before it sends anything, and refuses what
    moorage takes on purpose (Metadata-Version 2.0, License-Expression before 2.4)."""
    from twine.exceptions import InvalidDistribution
    from twine.package import PackageFile

    try:
        PackageFile.from_filename(str(path), comment=None)
    except InvalidDistribution as exc:
        return str(exc)
    return None


_UV_SKIPS = re.compile(r"`([^`]+)` has a non-normalized filename .*?, skipping")
_UV_FAILS = re.compile(r"Failed to publish: (\S+)\s+cause: (.+?)(?:\n\S|\Z)", re.S)


def upload_accepted(server: Server, corpus: Corpus, client: str) -> dict[str, str]:
    """Uploads every file expected to be accepted; returns the files sent by moorage's own
    form client because the named client will not send them, with the client's reason."""
    by_form: dict[str, str] = {}
    todo = [corpus.paths[f.filename] for f in corpus.accepted]
    if client == "twine":
        for path in list(todo):
            reason = twine_refuses_itself(path)
            if reason is not None:
                by_form[path.name] = reason
                todo.remove(path)
    for start in range(0, len(todo), CHUNK):
        chunk = todo[start:start + CHUNK]
        while chunk:
            if client == "twine":
                result = clients.twine_upload(server.legacy, server.admin_token, *chunk)
            else:
                result = clients.run([clients.uv_bin(), "publish", "--no-config", "--publish-url", server.legacy,
                                      "--token", server.admin_token, *map(str, chunk)], timeout=900)
            said = result.stdout + result.stderr
            if client == "uv":
                # uv skips older sdist names and refuses .zip sdists before sending them: those
                # are the client's own rules (moorage takes both, docs/api.md).
                for name in _UV_SKIPS.findall(said):
                    by_form[name] = "uv skips a non-normalized filename"
                failed = _UV_FAILS.search(said)
                if result.returncode != 0 and failed and "status code" not in failed.group(2):
                    name = Path(failed.group(1)).name
                    by_form[name] = " ".join(failed.group(2).split())
                    chunk = [p for p in chunk if p.name != name]
                    continue
            assert result.returncode == 0, f"{client} refused a file of the corpus:\n{said[-4000:]}"
            break
    for name in by_form:
        status, phrase, body = post_upload(server.legacy, server.admin_token, corpus.paths[name], timeout=300,
                                           fields_override=_form_name_version(corpus, name))
        assert status == 200, (name, status, body)
    return by_form


def _form_name_version(corpus: Corpus, filename: str) -> dict[str, object]:
    f = next(f for f in corpus.files if f.filename == filename)
    return {"name": f.project, "version": f.version}


def check_refused(server: Server, corpus: Corpus, client: str) -> None:
    for f in corpus.refused:
        rule, fragment = expected_refusal(f)
        path = corpus.paths[f.filename]
        if client == "twine":
            result = clients.twine_upload(server.legacy, server.admin_token, path)
        else:
            result = clients.run(
                [
                    clients.uv_bin(),
                    "publish",
                    "--no-config",
                    "--publish-url",
                    server.legacy,
                    "--token",
                    server.admin_token,
                    str(path),
                ]
            )
        said = " ".join((result.stdout + result.stderr).split())
        assert result.returncode != 0, (f.filename, said)
        status, _phrase, body = post_upload(
            server.legacy, server.admin_token, path, fields_override=_form_name_version(corpus, f.filename)
        )
        assert status == 400 and fragment in body, (f.filename, status, body)
        if "InvalidDistribution" not in said:  # the client sent it: the server's reason reached the user
            assert fragment in said, (f.filename, said)


def check_served(server: Server, corpus: Corpus) -> int:
    """The index offers exactly the accepted files, and what it says of each is the archive's."""
    by_project: dict[str, list[CorpusFile]] = defaultdict(list)
    for f in corpus.accepted:
        by_project[str(canonicalize_name(f.project))].append(f)
    checked = 0
    for project, expected in sorted(by_project.items()):
        status, body = get(f"{server.simple}{project}/", JSON_V1)
        assert status == 200, (project, status)
        page = json.loads(body)
        listed = {entry["filename"]: entry for entry in page["files"]}
        assert set(listed) == {f.filename for f in expected}, project
        status, html = get(f"{server.simple}{project}/", "text/html")
        assert status == 200
        status, api = get(f"{server.url}pypi/{project}/json")
        assert status == 200, (project, status)
        api_files = {u["filename"]: u for files in json.loads(api)["releases"].values() for u in files}
        assert set(api_files) == set(listed), project
        for f in expected:
            entry, path = listed[f.filename], corpus.paths[f.filename]
            raw = archive_metadata(path)
            fields, _ = parse_email(raw)
            assert entry["hashes"]["sha256"] == f.sha256 and entry["size"] == f.size, f.filename
            assert f.sha256.encode() in html and f.filename.encode() in html
            requires_python = (fields.get("requires_python") or "").strip() or None
            assert entry["requires-python"] == requires_python, f.filename
            url = urllib.parse.urljoin(f"{server.simple}{project}/", entry["url"])
            if serves_metadata(f, raw):
                assert entry["core-metadata"] == {"sha256": hashlib.sha256(raw).hexdigest()}, f.filename
                status, served = get(url + ".metadata")
                assert status == 200 and served == raw, f.filename  # byte for byte
            else:
                assert entry.get("core-metadata") in (None, False), f.filename
                assert get(url + ".metadata")[0] == 404
            u = api_files[f.filename]
            assert (u["digests"]["sha256"], u["size"], u["packagetype"]) == (f.sha256, f.size, f.packagetype)
            checked += 1
        # A release's info is the metadata of one of its files, field by field as the file has it.
        for version, files in _by_version(expected).items():
            status, body = get(f"{server.url}pypi/{project}/{version}/json")
            assert status == 200, (project, version, status)
            info = json.loads(body)["info"]
            candidates = [parse_email(archive_metadata(corpus.paths[f.filename]))[0] for f in files]
            assert Version(info["version"]) == Version(version)
            assert any(
                info["summary"] == c.get("summary")
                and info["requires_dist"] == c.get("requires_dist", [])
                and info["requires_python"] == c.get("requires_python")
                for c in candidates
            ), (project, version, info["summary"], info["requires_dist"], info["requires_python"])
    return checked


def _by_version(files: list[CorpusFile]) -> dict[str, list[CorpusFile]]:
    out: dict[str, list[CorpusFile]] = defaultdict(list)
    for f in files:
        out[f.version].append(f)
    return out


def install_targets(corpus: Corpus) -> dict[str, Version]:
    """The projects of install.txt and the newest version of each in the corpus."""
    names = [
        line.strip()
        for line in (HERE / "install.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    newest: dict[str, Version] = {}
    for f in corpus.accepted:
        key = str(canonicalize_name(f.project))
        version = Version(f.version)
        if not version.is_prerelease and (key not in newest or version > newest[key]):
            newest[key] = version
    return {str(canonicalize_name(n)): newest[str(canonicalize_name(n))] for n in names}


def check_installed(python: Path, targets: dict[str, Version]) -> None:
    installed = clients.installed(python)
    for name, version in targets.items():
        assert Version(installed[name]) == version, (name, installed.get(name), version)
    check = clients.run([clients.uv_bin(), "pip", "check", "--no-config", "--python", str(python)])
    assert check.returncode == 0, check.stdout + check.stderr


# -- the tests: one index per client, so the two run side by side under xdist -----------------
def test_twine_uploads_the_corpus_and_pip_installs_from_it_with_hashes(
    corpus: Corpus, index: Server, tmp_path: Path
) -> None:
    started = time.monotonic()
    by_form = upload_accepted(index, corpus, "twine")
    uploaded = time.monotonic()
    check_refused(index, corpus, "twine")
    checked = check_served(index, corpus)

    targets = install_targets(corpus)
    requirements = tmp_path / "requirements.txt"
    compiled = _compile(index, targets, requirements)
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    python = clients.fresh_venv(tmp_path / "pip-venv")
    result = clients.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--isolated",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--require-hashes",
            "--only-binary",
            ":all:",
            "--index-url",
            index.simple,
            "-r",
            str(requirements),
        ],
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    check_installed(python, targets)
    print(
        f"\ntwine: {len(corpus.accepted) - len(by_form)} files by twine, {len(by_form)} refused by twine "
        f"itself and sent by the form client ({_reasons(by_form)}), {len(corpus.refused)} refused as listed; "
        f"{checked} checked against their archives; upload {uploaded - started:.0f} s, "
        f"all {time.monotonic() - started:.0f} s; pip installed {len(targets)} projects "
        f"({len(requirements.read_text().split('==')) - 1} pins with hashes)",
        file=sys.stderr,
    )


def test_uv_publishes_the_corpus_and_uv_installs_from_it(corpus: Corpus, index: Server, tmp_path: Path) -> None:
    started = time.monotonic()
    by_form = upload_accepted(index, corpus, "uv")
    uploaded = time.monotonic()
    check_refused(index, corpus, "uv")
    checked = check_served(index, corpus)

    targets = install_targets(corpus)
    python = clients.fresh_venv(tmp_path / "uv-venv")
    result = clients.run(
        [
            clients.uv_bin(),
            "pip",
            "install",
            "--no-cache",
            "--no-config",
            "--python",
            str(python),
            "--index-url",
            index.simple,
            *(f"{name}" for name in targets),
        ],
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    check_installed(python, targets)
    print(
        f"\nuv: {len(corpus.accepted) - len(by_form)} files by uv publish, {len(by_form)} not sent by uv "
        f"itself and sent by the form client ({_reasons(by_form)}), {len(corpus.refused)} refused as listed; "
        f"{checked} checked against their archives; upload {uploaded - started:.0f} s, "
        f"all {time.monotonic() - started:.0f} s; uv installed {len(targets)} projects",
        file=sys.stderr,
    )


def _compile(index: Server, targets: dict[str, Version], out: Path) -> subprocess.CompletedProcess[str]:
    """A requirements file with every pin's hashes, resolved by uv from moorage alone."""
    source = out.with_suffix(".in")
    source.write_text("".join(f"{name}\n" for name in targets))
    return clients.run(
        [
            clients.uv_bin(),
            "pip",
            "compile",
            "--no-config",
            "--no-cache",
            "--generate-hashes",
            "--python-version",
            "3.11",
            "--python-platform",
            "x86_64-manylinux_2_28",
            "--index-url",
            index.simple,
            "-o",
            str(out),
            str(source),
        ],
        timeout=600,
    )


def _reasons(by_form: dict[str, str]) -> str:
    kinds: dict[str, int] = defaultdict(int)
    for reason in by_form.values():
        kinds[" ".join(reason.split())[:90]] += 1
    return "; ".join(f"{n}: {r}" for r, n in sorted(kinds.items(), key=lambda kv: -kv[1]))
