"""The real-distribution corpus: the pinned list (real.tsv) and a fetcher for its files.

The list names real files published on the public package index; this module fetches them at
test time with the test environment's own pip (``sys.executable -m pip download --no-deps``)
into a cache, and checks each file's sha256 and size against the list. pip uses its own default
index; an index URL is only ever given explicitly (``index_url=`` / ``--index-url``).

API::

    load_list(path=LIST_PATH) -> list[CorpusFile]     # the pinned files, in list order
    fetch(files, cache_dir=None, *, jobs=4, index_url=None, progress=True) -> dict[str, Path]
    fetch_available(...) -> tuple[dict[str, Path], dict[str, str]]  # failures returned, not raised
    default_cache_dir() -> Path                          # $MOORAGE_CORPUS_CACHE or ~/.cache/moorage/corpus
    read_file_facts(path) -> FileFacts                   # backend and metadata version of a wheel or sdist

The cache is a flat directory of the files under their own names. A process holds an exclusive
``fcntl`` lock on ``<cache>/.lock`` while it fetches, so two pytest-xdist workers never download
the same file twice: the second waits, then finds everything in place. pip downloads into a
temporary directory inside the cache and each checked file is renamed into place, so no reader
ever sees half a file. ``<cache>/.verified`` remembers the (size, mtime) of files already hashed,
so a warm run does not hash every file again.

Every pip subprocess runs with ``PIP_CONFIG_FILE=/dev/null`` and without the PIP_* variables that
would add indexes, find-links, constraints or binary/source preferences, so the machine's own pip
configuration cannot change which file is picked.

Run ``python -m tests.corpus.fetch`` to warm the cache (``--help`` for the options). In a test::

    from tests.corpus.fetch import fetch, load_list

    files = load_list()
    paths = fetch(files)  # filename -> Path in the cache; FetchError if any file is missing or wrong
    for f in files:
        data = paths[f.filename].read_bytes()  # f.expected says whether an index should take it

A cold fetch costs minutes (pip prepares every sdist's metadata in a build environment of its
own, a few seconds each); a warm one a second or two.
"""

from __future__ import annotations

import argparse
import configparser
import contextlib
import email.parser
import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
import zipfile
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from threading import Lock

from packaging.utils import canonicalize_name, parse_wheel_filename

HERE = Path(__file__).resolve().parent
LIST_PATH = HERE / "real.tsv"
CACHE_ENV = "MOORAGE_CORPUS_CACHE"
MAX_FILE_SIZE = 20 * 1024 * 1024
COLUMNS = (
    "project",
    "version",
    "filename",
    "sha256",
    "size",
    "upload_time",
    "packagetype",
    "backend",
    "metadata_version",
    "expected",
)

# PIP_* variables a pip subprocess keeps; every other PIP_* variable is dropped (PIP_FIND_LINKS,
# PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, PIP_CONSTRAINT, PIP_NO_BINARY, PIP_ONLY_BINARY, ...).
_PIP_ENV_KEPT = {
    "PIP_CERT",
    "PIP_CLIENT_CERT",
    "PIP_PROXY",
    "PIP_TIMEOUT",
    "PIP_DEFAULT_TIMEOUT",
    "PIP_RETRIES",
    "PIP_CACHE_DIR",
    "PIP_NO_CACHE_DIR",
    "PIP_DISABLE_PIP_VERSION_CHECK",
    "PIP_TRUSTED_HOST",
}


@dataclass(frozen=True)
class CorpusFile:
    """One line of real.tsv: a real file as the registry publishes it.

    ``packagetype`` is ``sdist`` or ``bdist_wheel``. ``backend`` is the build backend as the file
    itself tells it (see ``read_file_facts``), ``metadata_version`` its core metadata's
    ``Metadata-Version``. ``expected`` is ``accept``, or ``refuse:<rule>:<words of the reason>`` for
    a file moorage refuses, as the public index does today, for that reason.
    """

    project: str
    version: str
    filename: str
    sha256: str
    size: int
    upload_time: datetime
    packagetype: str
    backend: str
    metadata_version: str
    expected: str

    @property
    def is_wheel(self) -> bool:
        return self.packagetype == "bdist_wheel"

    @property
    def is_sdist(self) -> bool:
        return self.packagetype == "sdist"

    @property
    def accepted(self) -> bool:
        """True when an index should accept this file."""
        return self.expected == "accept"

    @property
    def refusal_reason(self) -> str | None:
        """``invalid-metadata:<words>`` for ``refuse:invalid-metadata:<words>``."""
        if self.accepted:
            return None
        return self.expected.partition(":")[2]

    def to_row(self) -> list[str]:
        row = []
        for f in fields(self):
            value = getattr(self, f.name)
            row.append(value.isoformat().replace("+00:00", "Z") if isinstance(value, datetime) else str(value))
        return row

    @classmethod
    def from_row(cls, row: list[str]) -> CorpusFile:
        if len(row) != len(COLUMNS):
            raise ValueError(f"expected {len(COLUMNS)} columns, got {len(row)}: {row!r}")
        values = dict(zip(COLUMNS, row, strict=True))
        return cls(
            project=values["project"],
            version=values["version"],
            filename=values["filename"],
            sha256=values["sha256"],
            size=int(values["size"]),
            upload_time=datetime.fromisoformat(values["upload_time"].replace("Z", "+00:00")),
            packagetype=values["packagetype"],
            backend=values["backend"],
            metadata_version=values["metadata_version"],
            expected=values["expected"],
        )


class FetchError(RuntimeError):
    """One or more files could not be fetched or did not match the list; ``problems`` names each."""

    def __init__(self, problems: dict[str, str]) -> None:
        self.problems = problems
        lines = [f"{name}: {why}" for name, why in sorted(problems.items())]
        super().__init__(f"{len(problems)} corpus file(s) failed:\n" + "\n".join(lines))


def load_list(path: Path = LIST_PATH) -> list[CorpusFile]:
    """The pinned files of real.tsv (comment lines start with ``#``; the first other line is the header)."""
    files: list[CorpusFile] = []
    header_seen = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        row = line.split("\t")
        if not header_seen:
            if tuple(row) != COLUMNS:
                raise ValueError(f"{path}: unexpected header {row!r}")
            header_seen = True
            continue
        files.append(CorpusFile.from_row(row))
    return files


def write_list(files: Iterable[CorpusFile], path: Path, comments: Iterable[str] = ()) -> None:
    """Write a list in real.tsv's format: ``# `` comment lines, the header, one line per file."""
    out = [f"# {c}".rstrip() for c in comments]
    out.append("\t".join(COLUMNS))
    out.extend("\t".join(f.to_row()) for f in files)
    path.write_text("\n".join(out) + "\n", encoding="utf-8")


def default_cache_dir() -> Path:
    """``$MOORAGE_CORPUS_CACHE`` if set, else ``~/.cache/moorage/corpus``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "moorage" / "corpus"


# --- what a file says about itself -------------------------------------------------------------


@dataclass(frozen=True)
class FileFacts:
    """What a wheel or sdist tells about itself.

    ``backend`` is one word for the tool that made the file:

    - wheels, from ``*.dist-info/WHEEL``'s ``Generator:`` line: ``bdist_wheel`` (setuptools with
      the wheel package's command, also pbr, setuptools-rust), ``setuptools`` (setuptools >= 70.1,
      which writes its own name), ``hatchling``, ``flit``, ``poetry-core`` (also old ``poetry``),
      ``pdm-backend`` (also ``pdm-pep517``), ``maturin``, ``scikit-build-core``, ``scikit-build``
      (``skbuild``), ``meson`` (meson-python), ``whey``, ``enscons``, ``uv-build`` (``uv``), else
      the generator's first word (``pyqtbuild``, ``bazel-wheelmaker``, ``distlib``, ...);
      ``none`` when the WHEEL file has no Generator line.
    - sdists, from ``pyproject.toml``'s ``[build-system] build-backend``: ``setuptools``
      (``setuptools.build_meta``), ``setuptools-legacy`` (``setuptools.build_meta:__legacy__``, or
      no build-backend: setup.py), ``hatchling``, ``flit`` (flit_core), ``poetry-core``,
      ``pdm-backend``, ``pdm-pep517``, ``maturin``, ``scikit-build-core``, ``meson-python``,
      ``whey``, ``enscons``, ``pbr``, ``sip``, ``uv-build``, ...; an unknown backend that the sdist
      carries itself (``backend-path``) is ``in-tree:<build-backend>`` (PyYAML, aiohttp, ninja ...),
      any other unknown one the build-backend string itself.

    ``raw`` is the Generator line or build-backend string as found (``setup.py`` when none).
    """

    backend: str
    raw: str
    metadata_version: str


_WHEEL_GENERATORS = {
    "bdist_wheel": "bdist_wheel",
    "setuptools": "setuptools",
    "hatchling": "hatchling",
    "hatch": "hatchling",
    "flit": "flit",
    "flit_core": "flit",
    "poetry": "poetry-core",
    "poetry-core": "poetry-core",
    "pdm-backend": "pdm-backend",
    "pdm-pep517": "pdm-pep517",
    "pdm": "pdm-backend",
    "maturin": "maturin",
    "scikit-build-core": "scikit-build-core",
    "meson": "meson",
    "whey": "whey",
    "enscons": "enscons",
    "skbuild": "scikit-build",
    "uv": "uv-build",
}

_SDIST_BACKENDS = {
    "setuptools.build_meta": "setuptools",
    "setuptools.build_meta:__legacy__": "setuptools-legacy",
    "hatchling.build": "hatchling",
    "hatchling.ouroboros": "hatchling",
    "flit_core.buildapi": "flit",
    "flit.buildapi": "flit",
    "poetry.core.masonry.api": "poetry-core",
    "poetry.masonry.api": "poetry-core",
    "pdm.backend": "pdm-backend",
    "pdm.pep517.api": "pdm-pep517",
    "maturin": "maturin",
    "scikit_build_core.build": "scikit-build-core",
    "mesonpy": "meson-python",
    "whey": "whey",
    "enscons.api": "enscons",
    "pbr.build": "pbr",
    "sipbuild.api": "sip",
    "uv_build": "uv-build",
    "flit_scm:buildapi": "flit-scm",
}


def _generator_family(generator: str) -> str:
    word = generator.split()[0].strip("()").lower() if generator.split() else ""
    return _WHEEL_GENERATORS.get(word, word or "none")


def _headers(data: bytes) -> email.message.Message:
    return email.parser.BytesParser().parsebytes(data, headersonly=True)


def read_file_facts(path: Path) -> FileFacts:
    """The backend and the core metadata version a wheel or an sdist carries (see FileFacts)."""
    name = path.name
    if name.endswith(".whl"):
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            dist_infos = sorted({n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info")})
            if not dist_infos:
                raise ValueError(f"{name}: no .dist-info directory")
            info = dist_infos[0]
            wheel = _headers(zf.read(f"{info}/WHEEL"))
            metadata = _headers(zf.read(f"{info}/METADATA"))
        generator = (wheel.get("Generator") or "").strip()
        return FileFacts(_generator_family(generator), generator or "none", str(metadata.get("Metadata-Version", "")))
    members = _sdist_top_members(path, ("PKG-INFO", "pyproject.toml", "setup.py", "setup.cfg"))
    if "PKG-INFO" not in members:
        raise ValueError(f"{name}: no top-level PKG-INFO")
    metadata_version = str(_headers(members["PKG-INFO"]).get("Metadata-Version", ""))
    backend_string, in_tree = "", False
    if "pyproject.toml" in members:
        try:
            build_system = tomllib.loads(members["pyproject.toml"].decode("utf-8")).get("build-system", {})
            backend_string = str(build_system.get("build-backend", "") or "")
            in_tree = bool(build_system.get("backend-path"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError):
            backend_string = ""
    uses_pbr = _uses_pbr(members)
    if backend_string:
        family = _SDIST_BACKENDS.get(backend_string) or (f"in-tree:{backend_string}" if in_tree else backend_string)
        if uses_pbr and family in ("setuptools", "setuptools-legacy"):
            family = "pbr"
        return FileFacts(family, backend_string, metadata_version)
    if uses_pbr:
        return FileFacts("pbr", "setup.py (pbr)", metadata_version)
    return FileFacts("setuptools-legacy", "setup.py" if "setup.py" in members else "none", metadata_version)


def _uses_pbr(members: dict[str, bytes]) -> bool:
    """pbr projects call ``setup(pbr=True)`` in setup.py (their metadata lives in setup.cfg)."""
    setup_py = members.get("setup.py", b"").replace(b" ", b"")
    return b"pbr=True" in setup_py or "pbr" in _setup_cfg_sections(members)


def _setup_cfg_sections(members: dict[str, bytes]) -> set[str]:
    if "setup.cfg" not in members:
        return set()
    parser = configparser.RawConfigParser(strict=False)
    try:
        parser.read_string(members["setup.cfg"].decode("utf-8", "replace"))
    except configparser.Error:
        return set()
    return set(parser.sections())


def _sdist_top_members(path: Path, wanted: tuple[str, ...]) -> dict[str, bytes]:
    """The members ``<top>/<name>`` for each wanted name (the first top directory that has PKG-INFO)."""
    found: dict[str, bytes] = {}

    def take(member: str, read: object) -> None:
        parts = member.strip("/").split("/")
        if len(parts) == 2 and parts[1] in wanted and parts[1] not in found:
            found[parts[1]] = read()  # type: ignore[operator]

    if path.name.endswith(".zip"):
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                take(info.filename, lambda info=info: zf.read(info))
    else:
        with tarfile.open(path) as tf:
            for member in tf:
                if member.isfile():
                    take(member.name, lambda member=member: tf.extractfile(member).read())  # type: ignore[union-attr]
    return found


# --- pip requests ------------------------------------------------------------------------------


def pip_environment() -> dict[str, str]:
    """The environment of every pip subprocess: no machine-wide configuration, no extra indexes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") or k in _PIP_ENV_KEPT}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.pop("PYTHONPATH", None)
    return env


def wheel_flags(filename: str) -> tuple[str, ...]:
    """pip download flags that select exactly this wheel among its release's files.

    Derived from the wheel's own tags: ``--implementation`` and ``--python-version`` from its
    interpreter tag, every ``--abi`` and every ``--platform`` it names. A pure wheel
    (``py3-none-any``) gets ``--implementation py --python-version 3 --abi none --platform any``,
    which no platform wheel of the same release matches.
    """
    _, _, _, tags = parse_wheel_filename(filename)
    interpreters = sorted({t.interpreter for t in tags})

    # One interpreter tag picks implementation and version: the newest Python 3 one.
    def key(interp: str) -> tuple[int, int, str]:
        digits = interp.lstrip("abcdefghijklmnopqrstuvwxyz")
        major = int(digits[0]) if digits else 0
        minor = int(digits[1:]) if len(digits) > 1 else -1
        return (major == 3, minor, interp)

    interp = max(interpreters, key=key)
    impl = interp.rstrip("0123456789")
    version = interp[len(impl) :] or "3"
    abis = sorted({t.abi for t in tags if t.interpreter == interp})
    # The newest platform first: pip ranks a wheel by its best tag, so a wheel that adds a newer
    # manylinux tag to another wheel's tags (regex does this) then ranks above that other wheel.
    platforms = sorted({t.platform for t in tags if t.interpreter == interp}, key=_platform_key, reverse=True)
    flags = ["--only-binary", ":all:", "--implementation", impl, "--python-version", version]
    for abi in abis:
        flags += ["--abi", abi]
    for platform in platforms:
        flags += ["--platform", platform]
    return tuple(flags)


_LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}


def _platform_key(platform: str) -> tuple[int, int, str]:
    """(major, minor) of a manylinux / musllinux / macosx platform tag, for ordering; (0, 0) for others."""
    parts = platform.split("_")
    if parts[0] in _LEGACY_MANYLINUX:
        return (*_LEGACY_MANYLINUX[parts[0]], platform)
    if parts[0] in ("manylinux", "musllinux", "macosx") and len(parts) > 2 and parts[1].isdigit():
        return (int(parts[1]), int(parts[2]) if parts[2].isdigit() else 0, platform)
    return (0, 0, platform)


def _requirement(f: CorpusFile) -> str:
    return f"{f.project}=={f.version}"


@dataclass(frozen=True)
class _Request:
    flags: tuple[str, ...]
    files: tuple[CorpusFile, ...]


def plan_requests(files: Iterable[CorpusFile], chunk: int = 40) -> list[_Request]:
    """pip calls for the files: one per sdist; wheels grouped by their flags, one file per project a call."""
    requests: list[_Request] = []
    groups: dict[tuple[str, ...], list[CorpusFile]] = {}
    for f in files:
        if f.is_sdist:
            requests.append(_Request(("--no-binary", str(canonicalize_name(f.project))), (f,)))
        else:
            groups.setdefault(wheel_flags(f.filename), []).append(f)
    for flags, members in groups.items():
        batches: list[list[CorpusFile]] = []
        for f in members:
            name = canonicalize_name(f.project)
            for batch in batches:
                if len(batch) < chunk and all(canonicalize_name(b.project) != name for b in batch):
                    batch.append(f)
                    break
            else:
                batches.append([f])
        requests.extend(_Request(flags, tuple(b)) for b in batches)
    # Sdists first: they are slow (pip prepares their metadata), so they start early.
    requests.sort(key=lambda r: (not r.files[0].is_sdist, -sum(f.size for f in r.files)))
    return requests


def pip_command(request: _Request, dest: Path, index_url: str | None = None) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-input",
        "--progress-bar",
        "off",
        "-q",
        "--ignore-requires-python",
        "--dest",
        str(dest),
    ]
    if index_url:
        cmd += ["--index-url", index_url]
    cmd += list(request.flags)
    cmd += [_requirement(f) for f in request.files]
    return cmd


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _run(cmd: list[str], timeout: float | None) -> tuple[int | None, str]:
    """Run pip in a session of its own; on timeout kill the whole group (its build subprocesses too)."""
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=pip_environment(),
        start_new_session=True,
        text=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return None, out


def _tail(text: str, lines: int = 6) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])


# --- the cache ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _locked(cache_dir: Path) -> Iterator[None]:
    cache_dir.mkdir(parents=True, exist_ok=True)
    with (cache_dir / ".lock").open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _read_stamps(cache_dir: Path) -> dict[str, tuple[int, int, str]]:
    stamps: dict[str, tuple[int, int, str]] = {}
    with contextlib.suppress(FileNotFoundError):
        for line in (cache_dir / ".verified").read_text().splitlines():
            parts = line.split("\t")
            if len(parts) == 4:
                stamps[parts[0]] = (int(parts[1]), int(parts[2]), parts[3])
    return stamps


def _write_stamps(cache_dir: Path, stamps: dict[str, tuple[int, int, str]]) -> None:
    tmp = cache_dir / f".verified.{os.getpid()}"
    tmp.write_text("".join(f"{n}\t{s}\t{m}\t{h}\n" for n, (s, m, h) in sorted(stamps.items())))
    os.replace(tmp, cache_dir / ".verified")


def _cached_ok(path: Path, f: CorpusFile, stamps: dict[str, tuple[int, int, str]]) -> bool:
    try:
        st = path.stat()
    except FileNotFoundError:
        return False
    if st.st_size != f.size:
        return False
    stamp = stamps.get(f.filename)
    if stamp == (st.st_size, st.st_mtime_ns, f.sha256):
        return True
    if _sha256(path) != f.sha256:
        return False
    stamps[f.filename] = (st.st_size, st.st_mtime_ns, f.sha256)
    return True


class _Progress:
    def __init__(self, total_files: int, total_bytes: int, cached: int, enabled: bool) -> None:
        self.total_files, self.total_bytes, self.enabled = total_files, total_bytes, enabled
        self.done_files, self.done_bytes, self.started = 0, 0, time.monotonic()
        self.cached = cached
        self.lock = Lock()

    def add(self, files: int, nbytes: int, note: str = "") -> None:
        with self.lock:
            self.done_files += files
            self.done_bytes += nbytes
            if self.enabled:
                print(
                    f"corpus: {self.done_files}/{self.total_files} files, "
                    f"{self.done_bytes / 1e6:.1f}/{self.total_bytes / 1e6:.1f} MB fetched "
                    f"({self.cached} cached), {time.monotonic() - self.started:.0f} s{note}",
                    file=sys.stderr,
                    flush=True,
                )


def fetch_available(
    files: Iterable[CorpusFile],
    cache_dir: Path | None = None,
    *,
    jobs: int = 4,
    index_url: str | None = None,
    progress: bool = True,
    sdist_timeout: float | None = None,
) -> tuple[dict[str, Path], dict[str, str]]:
    """Like ``fetch``, but returns ``(paths, problems)`` instead of raising.

    ``problems`` maps a filename to why it is missing (pip failed, took longer than
    ``sdist_timeout`` seconds for an sdist, saved another filename, wrong sha256 or size).
    """
    wanted = list(files)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    names = [f.filename for f in wanted]
    if len(set(names)) != len(names):
        raise ValueError("the same filename is listed twice")
    paths: dict[str, Path] = {}
    problems: dict[str, str] = {}
    with _locked(cache):
        for stale in cache.glob(".tmp-*"):  # left by a process killed mid-fetch; the lock is ours now
            shutil.rmtree(stale, ignore_errors=True)
        stamps = _read_stamps(cache)
        missing = []
        for f in wanted:
            path = cache / f.filename
            if _cached_ok(path, f, stamps):
                paths[f.filename] = path
            else:
                missing.append(f)
        bar = _Progress(len(missing), sum(f.size for f in missing), len(paths), progress and bool(missing))
        if missing:
            scratch = Path(tempfile.mkdtemp(prefix=".tmp-", dir=cache))
            try:
                requests = plan_requests(missing)
                with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
                    futures = [
                        pool.submit(_fetch_one, r, scratch / str(i), cache, index_url, sdist_timeout)
                        for i, r in enumerate(requests)
                    ]
                    for future in as_completed(futures):
                        got, failed = future.result()
                        for f, path in got:
                            st = path.stat()
                            stamps[f.filename] = (st.st_size, st.st_mtime_ns, f.sha256)
                            paths[f.filename] = path
                        problems.update(failed)
                        bar.add(
                            len(got) + len(failed),
                            sum(p.stat().st_size for _, p in got),
                            f", {len(failed)} failed" if failed else "",
                        )
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
        _write_stamps(cache, stamps)
    return paths, problems


def _fetch_one(
    request: _Request, dest: Path, cache: Path, index_url: str | None, sdist_timeout: float | None
) -> tuple[list[tuple[CorpusFile, Path]], dict[str, str]]:
    dest.mkdir(parents=True)
    timeout = sdist_timeout if request.files[0].is_sdist and sdist_timeout else 1800.0
    started = time.monotonic()
    code, output = _run(pip_command(request, dest, index_url), timeout)
    elapsed = time.monotonic() - started
    failed: dict[str, str] = {}
    got: list[tuple[CorpusFile, Path]] = []
    if code is None:
        for f in request.files:
            failed[f.filename] = f"pip took more than {timeout:.0f} s"
        return got, failed
    saved = {p.name: p for p in dest.iterdir() if p.is_file()}
    for f in request.files:
        path = saved.pop(f.filename, None)
        if path is None:
            others = [n for n in saved if _same_release(n, f)]
            if others:
                failed[f.filename] = f"pip saved {others[0]} instead of {f.filename}"
                continue
            failed[f.filename] = f"pip exited {code} without it: {_tail(output)}"
            continue
        size = path.stat().st_size
        digest = _sha256(path)
        if size != f.size or digest != f.sha256:
            failed[f.filename] = (
                f"{f.filename} does not match the list: size {size} (listed {f.size}), "
                f"sha256 {digest} (listed {f.sha256})"
            )
            continue
        target = cache / f.filename
        os.replace(path, target)
        got.append((f, target))
    if elapsed and request.files[0].is_sdist and sdist_timeout and elapsed > sdist_timeout:
        for f, _ in got:
            failed[f.filename] = f"pip took {elapsed:.1f} s"
    return got, failed


def _same_release(filename: str, f: CorpusFile) -> bool:
    prefix = str(canonicalize_name(f.project)).replace("-", "_")
    return filename.lower().replace("-", "_").replace(".", "_").startswith(prefix.replace(".", "_"))


def fetch(
    files: Iterable[CorpusFile],
    cache_dir: Path | None = None,
    *,
    jobs: int = 4,
    index_url: str | None = None,
    progress: bool = True,
) -> dict[str, Path]:
    """Every file in the cache, checked; returns filename -> path.

    Missing files are downloaded with ``pip download --no-deps`` (``jobs`` pip processes at once)
    and renamed into ``cache_dir`` (default: ``default_cache_dir()``) once their sha256 and size
    match the list. Raises ``FetchError`` naming each file that could not be had or did not match.
    """
    paths, problems = fetch_available(files, cache_dir, jobs=jobs, index_url=index_url, progress=progress)
    if problems:
        raise FetchError(problems)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.corpus.fetch", description="Warm the corpus cache.")
    parser.add_argument(
        "--cache", type=Path, default=None, help=f"cache directory (default: ${CACHE_ENV} or ~/.cache/moorage/corpus)"
    )
    parser.add_argument("--list", type=Path, default=LIST_PATH, help="the list (default: real.tsv beside this file)")
    parser.add_argument("--jobs", type=int, default=4, help="pip processes at once (default 4)")
    parser.add_argument("--index-url", default=None, help="an index for pip instead of its own default")
    args = parser.parse_args(argv)
    files = load_list(args.list)
    started = time.monotonic()
    try:
        paths = fetch(files, args.cache, jobs=args.jobs, index_url=args.index_url)
    except FetchError as exc:
        print(exc, file=sys.stderr)
        return 1
    total = sum(p.stat().st_size for p in paths.values())
    print(
        f"corpus: {len(paths)} files, {total / 1e6:.1f} MB in {args.cache or default_cache_dir()}, "
        f"{time.monotonic() - started:.1f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
