"""Build tests/corpus/real.tsv from projects.txt, install.txt and an index's PEP 691 pages.

    python tests/corpus/select.py --index URL [--cutoff 2026-12-04T16:00:00Z] [--work DIR]

URL is the index root whose ``/simple/<project>/`` pages are read (there is no default). The
selection, per project of projects.txt:

- the newest final release, and releases from some of the years 2019-2025 (each project gets
  ``--years`` of them, in rotation, so every year is covered across the corpus; the last release
  uploaded in that year, judged by the upload time of the release's first file);
- for each chosen release: the sdist if any, and one wheel: ``py3-none-any`` if there is one, else
  the platform wheel that installs on CPython 3.11 on manylinux x86_64 (abi3 included), else the
  nearest such wheel for another CPython; in every other release also a wheel for another
  platform (macOS, Windows, musllinux, aarch64, in rotation);
- yanked files, pre-releases (unless a project has nothing else), files over 20 MB and files
  uploaded after the cut-off are left out;
  year releases are dropped, largest first, until the corpus is at most ``--budget-mb``.

Then the install set: for each project of install.txt, ``uv pip compile`` (CPython 3.11,
x86_64-manylinux_2_28, ``--exclude-newer`` the cut-off, ``--index-url`` URL) gives the closure of
its newest release; the installable wheel of every pinned version is added.

Every chosen file is then fetched with tests.corpus.fetch (so the list holds only what pip can
fetch exactly): an sdist whose metadata pip cannot prepare here, or not within
``--sdist-timeout`` seconds, is left out (its wheels stay) and reported. The backend and
metadata version come from the fetched files.
"""

from __future__ import annotations

import os
import sys

# This file's name shadows the standard library's select module for anything that imports it
# (subprocess does) while the script's own directory is first on sys.path: take it off.
_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]
sys.path.insert(0, os.path.dirname(os.path.dirname(_here)))

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from collections import Counter  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from dataclasses import dataclass, replace  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402

from packaging.tags import Tag, compatible_tags, cpython_tags  # noqa: E402
from packaging.utils import (  # noqa: E402
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version  # noqa: E402

from tests.corpus import fetch as corpus  # noqa: E402

HERE = Path(_here)
YEARS = range(2019, 2026)
PEP691 = "application/vnd.pypi.simple.v1+json"


def _install_platforms() -> list[str]:
    out = []
    for minor in range(28, 4, -1):
        out.append(f"manylinux_2_{minor}_x86_64")
        legacy = {17: "manylinux2014_x86_64", 12: "manylinux2010_x86_64", 5: "manylinux1_x86_64"}.get(minor)
        if legacy:
            out.append(legacy)
    return out


def _tag_ranks(minor: int) -> dict[Tag, int]:
    """Tag -> rank (lower is better) for CPython 3.<minor> on manylinux (glibc <= 2.28) x86_64."""
    platforms = _install_platforms()
    tags = list(cpython_tags((3, minor), [f"cp3{minor}"], platforms))
    tags += list(compatible_tags((3, minor), f"cp3{minor}", platforms))
    return {t: i for i, t in reversed(list(enumerate(tags)))}


# CPython 3.11 first (what installs here), then the nearest other versions.
_RANK_TABLES = [(m, _tag_ranks(m)) for m in (11, 12, 10, 13, 9, 14, 8, 7, 6)]
INSTALL_RANKS = _RANK_TABLES[0][1]
OTHER_KINDS = ("macos", "windows", "musllinux", "aarch64")


@dataclass(frozen=True)
class Candidate:
    project: str
    version: Version
    filename: str
    sha256: str
    size: int
    upload_time: datetime
    requires_python: str
    packagetype: str
    why: str  # newest | year:<Y> | install

    def as_corpus_file(self) -> corpus.CorpusFile:
        return corpus.CorpusFile(
            project=self.project,
            version=str(self.version),
            filename=self.filename,
            sha256=self.sha256,
            size=self.size,
            upload_time=self.upload_time,
            packagetype=self.packagetype,
            backend="",
            metadata_version="",
            expected="accept",
        )


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def file_version(filename: str) -> tuple[str, Version] | None:
    """(packagetype, version) of a wheel or sdist filename, None for anything else."""
    try:
        if filename.endswith(".whl"):
            return "bdist_wheel", parse_wheel_filename(filename)[1]
        if filename.endswith((".tar.gz", ".zip")):
            try:
                return "sdist", parse_sdist_filename(filename)[1]
            except InvalidSdistFilename:
                stem = filename.removesuffix(".tar.gz").removesuffix(".zip")
                return "sdist", Version(stem.rpartition("-")[2])
    except (InvalidWheelFilename, InvalidVersion):
        return None
    return None


def releases_of(project: str, page: dict, cutoff: datetime) -> dict[Version, list[Candidate]]:
    """Final releases -> their eligible files (not yanked, at most 20 MB, uploaded by the cut-off)."""
    releases: dict[Version, list[Candidate]] = {}
    finals = _has_final_release(page, cutoff)
    for f in page.get("files", []):
        if f.get("yanked") or not f.get("upload-time") or "sha256" not in f.get("hashes", {}):
            continue
        parsed = file_version(f["filename"])
        if parsed is None:
            continue
        packagetype, version = parsed
        uploaded = parse_time(f["upload-time"])
        if (finals and (version.is_prerelease or version.is_devrelease)) or uploaded > cutoff:
            continue
        if f.get("size", 0) > corpus.MAX_FILE_SIZE:
            continue
        releases.setdefault(version, []).append(
            Candidate(
                project,
                version,
                f["filename"],
                f["hashes"]["sha256"],
                int(f["size"]),
                uploaded,
                f.get("requires-python") or "",
                packagetype,
                "",
            )
        )
    return releases


def _has_final_release(page: dict, cutoff: datetime) -> bool:
    """Some projects publish only pre-releases (0.50b0, ...): then those count as releases."""
    for f in page.get("files", []):
        parsed = file_version(f["filename"])
        if not parsed or f.get("yanked") or not f.get("upload-time") or parse_time(f["upload-time"]) > cutoff:
            continue
        if not (parsed[1].is_prerelease or parsed[1].is_devrelease):
            return True
    return False


def wheel_rank(filename: str, ranks: dict[Tag, int]) -> int | None:
    tags = parse_wheel_filename(filename)[3]
    found = [ranks[t] for t in tags if t in ranks]
    return min(found) if found else None


def is_pure(filename: str) -> bool:
    tags = parse_wheel_filename(filename)[3]
    return all(t.abi == "none" and t.platform == "any" and t.interpreter.startswith("py3") for t in tags) or any(
        t.interpreter == "py3" and t.abi == "none" and t.platform == "any" for t in tags
    )


def platform_kind(filename: str) -> str:
    platforms = {t.platform for t in parse_wheel_filename(filename)[3]}
    text = " ".join(platforms)
    if "macosx" in text:
        return "macos"
    if "win" in text:
        return "windows"
    if "musllinux" in text:
        return "musllinux"
    if "aarch64" in text:
        return "aarch64"
    return "linux" if "linux" in text else "any"


def best_installable(wheels: list[Candidate]) -> Candidate | None:
    """The wheel pip would take on CPython 3.11, manylinux x86_64 (glibc <= 2.28); None if none installs."""
    ranked = [(r, w.filename, w) for w in wheels if (r := wheel_rank(w.filename, INSTALL_RANKS)) is not None]
    return min(ranked)[2] if ranked else None


def best_wheel(wheels: list[Candidate]) -> Candidate | None:
    """py3-none-any if any; else the installable one; else the nearest CPython's manylinux x86_64 one."""
    pure = sorted((w for w in wheels if is_pure(w.filename)), key=lambda w: w.filename)
    if pure:
        return pure[0]
    for _, ranks in _RANK_TABLES:
        ranked = [(r, w.filename, w) for w in wheels if (r := wheel_rank(w.filename, ranks)) is not None]
        if ranked:
            return min(ranked)[2]
    return sorted(wheels, key=lambda w: w.filename)[0] if wheels else None


def other_platform(wheels: list[Candidate], taken: set[str], start: int) -> Candidate | None:
    """A wheel for another platform, the kinds in rotation from ``start``."""
    for k in range(len(OTHER_KINDS)):
        kind = OTHER_KINDS[(start + k) % len(OTHER_KINDS)]
        of_kind = [w for w in wheels if platform_kind(w.filename) == kind and w.filename not in taken]
        if of_kind:
            cp311 = [w for w in of_kind if any(t.interpreter == "cp311" for t in parse_wheel_filename(w.filename)[3])]
            abi3 = [w for w in of_kind if any(t.abi == "abi3" for t in parse_wheel_filename(w.filename)[3])]
            return sorted(cp311 or abi3 or of_kind, key=lambda w: w.filename)[-1]
    return None


def pick_release(files: list[Candidate], why: str, variety: int | None) -> list[Candidate]:
    """The sdist, the best wheel and (when ``variety`` is not None) one wheel for another platform."""
    picked: list[Candidate] = []
    sdists = sorted(
        (f for f in files if f.packagetype == "sdist"), key=lambda f: (not f.filename.endswith(".tar.gz"), f.filename)
    )
    if sdists:
        picked.append(sdists[0])
    wheels = [f for f in files if f.packagetype == "bdist_wheel"]
    best = best_wheel(wheels)
    if best is not None:
        picked.append(best)
        if variety is not None and not is_pure(best.filename):
            other = other_platform(wheels, {best.filename}, variety)
            if other is not None:
                picked.append(other)
        elif variety is not None:
            # A release with a pure wheel and platform wheels too: take its installable platform wheel.
            platform = best_installable([w for w in wheels if not is_pure(w.filename)])
            if platform is not None:
                picked.append(platform)
    return [replace(p, why=why) for p in picked]


def first_upload(files: list[Candidate]) -> datetime:
    return min(f.upload_time for f in files)


def select_project(i: int, project: str, releases: dict[Version, list[Candidate]], years: int) -> list[Candidate]:
    if not releases:
        return []
    chosen: list[Candidate] = []
    newest = max(releases)
    chosen += pick_release(releases[newest], "newest", variety=i if i % 2 else None)
    wanted_years = sorted({YEARS[(i + k * 3) % len(YEARS)] for k in range(years)})
    for year in wanted_years:
        in_year = [v for v, fs in releases.items() if first_upload(fs).year == year and v != newest]
        if not in_year:
            continue
        version = max(in_year, key=lambda v: (first_upload(releases[v]), v))
        chosen += pick_release(releases[version], f"year:{year}", variety=i + year if (i + year) % 3 == 0 else None)
    return chosen


# --- the index ---------------------------------------------------------------------------------


def get_page(index: str, project: str, work: Path) -> dict:
    path = work / "pages" / f"{canonicalize_name(project)}.json"
    if path.exists():
        return json.loads(path.read_text())
    url = f"{index.rstrip('/')}/simple/{canonicalize_name(project)}/"
    request = urllib.request.Request(url, headers={"Accept": PEP691, "User-Agent": "moorage-corpus-select"})
    for attempt in range(4):
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                data = response.read()
            break
        except OSError:
            if attempt == 3:
                raise
            time.sleep(2 * (attempt + 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return json.loads(data)


def uv_closure(index: str, cutoff: datetime, requirements: list[str]) -> dict[str, Version]:
    """``uv pip compile`` of the requirements for CPython 3.11 on x86_64-manylinux_2_28: name -> version."""
    uv = Path(sys.executable).with_name("uv")
    cmd = [
        str(uv) if uv.exists() else "uv",
        "pip",
        "compile",
        "-",
        "--no-config",
        "--quiet",
        "--no-header",
        "--no-annotate",
        "--python-version",
        "3.11",
        "--python-platform",
        "x86_64-manylinux_2_28",
        "--index-url",
        f"{index.rstrip('/')}/simple/",
        "--exclude-newer",
        cutoff.strftime("%Y-%m-%dT%H:%M:%SZ"),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PIP_"))}
    proc = subprocess.run(cmd, input="\n".join(requirements) + "\n", capture_output=True, text=True, env=env)
    if proc.returncode:
        raise SystemExit(f"uv pip compile {requirements} failed:\n{proc.stderr}")
    out = proc.stdout
    pins: dict[str, Version] = {}
    for line in out.splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, _, version = line.partition("==")
            pins[str(canonicalize_name(name.split("[")[0]))] = Version(version.split(";")[0].strip())
    return pins


# Files pinned whatever the selection picks: the expected outcome of each. Refused ones are real
# files the public index took once and refuses today, and moorage refuses for the same reason
# (a resolver cannot read them); accepted ones are Metadata-Version 2.0 wheels, which moorage
# takes on purpose (docs/api.md).
PINNED: dict[str, str] = {
    "fastapi-0.1.17-py3-none-any.whl": "refuse:invalid-metadata:'.none' is invalid for 'provides-extra'",
    "jmespath-0.9.4-py2.py3-none-any.whl": "accept",
    "pathspec-0.7.0-py2.py3-none-any.whl": "accept",
}


def read_lines(path: Path) -> list[str]:
    return [s for line in path.read_text().splitlines() if (s := line.split("#")[0].strip())]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tests/corpus/select.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", required=True, help="index root URL (its /simple/<project>/ pages are read)")
    parser.add_argument("--cutoff", default=None, help="snapshot cut-off, ISO 8601 (default: now)")
    parser.add_argument(
        "--work",
        type=Path,
        default=Path.home() / ".cache" / "moorage" / "corpus-select",
        help="saved pages and fetched candidates (default ~/.cache/moorage/corpus-select)",
    )
    parser.add_argument("--years", type=int, default=2, help="year releases per project (default 2)")
    parser.add_argument("--budget-mb", type=float, default=650.0, help="total size at most (default 650)")
    parser.add_argument("--max-files", type=int, default=820, help="files at most, before fetching (default 820)")
    parser.add_argument("--sdist-timeout", type=float, default=15.0, help="seconds pip may take for an sdist")
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--dry-run", action="store_true", help="select and report; fetch nothing, write nothing")
    parser.add_argument("--out", type=Path, default=corpus.LIST_PATH)
    args = parser.parse_args(argv)

    cutoff = parse_time(args.cutoff) if args.cutoff else datetime.now(UTC).replace(microsecond=0)
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    projects = read_lines(HERE / "projects.txt")
    install = read_lines(HERE / "install.txt")

    # The install set's closures: each project alone, and all of them together.
    pins: dict[str, set[Version]] = {}
    for reqs in [[p] for p in install] + [install]:
        for name, version in uv_closure(args.index, cutoff, reqs).items():
            pins.setdefault(name, set()).add(version)
    print(f"install closure: {len(pins)} projects, {sum(map(len, pins.values()))} pins", file=sys.stderr)

    pinned_projects = sorted({str(canonicalize_name(name.split("-", 1)[0])) for name in PINNED})
    names = list(dict.fromkeys([*projects, *sorted(pins), *pinned_projects]))
    with ThreadPoolExecutor(8) as pool:
        pages = dict(zip(names, pool.map(lambda n: get_page(args.index, n, work), names), strict=True))

    chosen: dict[str, Candidate] = {}
    required: set[str] = set()
    for name, versions in pins.items():
        releases = releases_of(name, pages[name], cutoff)
        for version in versions:
            files = releases.get(version, [])
            wheel = best_installable([f for f in files if f.packagetype == "bdist_wheel"])
            if wheel is None:
                sdists = [f for f in files if f.packagetype == "sdist"]
                if not sdists:
                    print(f"WARNING: no installable file for {name}=={version}", file=sys.stderr)
                    continue
                wheel = sdists[0]
                print(f"note: {name}=={version} installs from its sdist", file=sys.stderr)
            chosen[wheel.filename] = replace(wheel, why="install")
            required.add(wheel.filename)
    for name in pinned_projects:
        for files in releases_of(name, pages[name], cutoff).values():
            for c in files:
                if c.filename in PINNED:
                    chosen[c.filename] = replace(c, why="pinned")
                    required.add(c.filename)
    for i, project in enumerate(projects):
        for c in select_project(i, project, releases_of(project, pages[project], cutoff), args.years):
            chosen.setdefault(c.filename, c)
    # Projects that are only in the closure get their newest release's sdist too.
    for name in sorted(set(pins) - {str(canonicalize_name(p)) for p in projects}):
        releases = releases_of(name, pages[name], cutoff)
        if releases:
            for c in pick_release(releases[max(releases)], "newest", None):
                chosen.setdefault(c.filename, c)

    # The budget: drop year releases' files, largest first.
    budget = int(args.budget_mb * 1e6)
    total = sum(c.size for c in chosen.values())
    for c in sorted(chosen.values(), key=lambda c: -c.size):
        if total <= budget:
            break
        if c.why.startswith("year") and c.filename not in required:
            del chosen[c.filename]
            total -= c.size
    # The file count: drop year releases' extra platform wheels, then their pure wheels (the
    # release's sdist stays), spread over the projects, until at most --max-files are left.
    for rank in (0, 1):
        for c in sorted(chosen.values(), key=lambda c: c.sha256):
            if len(chosen) <= args.max_files:
                break
            if c.why.startswith("year") and c.filename not in required and _drop_rank(c, chosen) == rank:
                del chosen[c.filename]
    report_selection(list(chosen.values()), required)
    if args.dry_run:
        return 0

    files = [c.as_corpus_file() for c in chosen.values()]
    cache = work / "files"
    paths, problems = corpus.fetch_available(files, cache, jobs=args.jobs, sdist_timeout=args.sdist_timeout)
    slow = [f for f in files if f.filename in problems and "took" in problems[f.filename]]
    if slow:
        print(f"retrying {len(slow)} slow sdists one at a time", file=sys.stderr)
        for f in slow:
            del problems[f.filename]
        more, again = corpus.fetch_available(slow, cache, jobs=1, sdist_timeout=args.sdist_timeout)
        paths.update(more)
        problems.update(again)
    final: list[corpus.CorpusFile] = []
    backends: dict[str, str] = {}
    for f in files:
        if f.filename in problems:
            continue
        facts = corpus.read_file_facts(paths[f.filename])
        backends[f.filename] = facts.raw
        expected = PINNED.get(f.filename, "accept")
        final.append(replace(f, backend=facts.backend, metadata_version=facts.metadata_version, expected=expected))
    final.sort(key=lambda f: (str(canonicalize_name(f.project)), Version(f.version), f.filename))
    (work / "problems.json").write_text(json.dumps(problems, indent=1, sort_keys=True))
    (work / "raw-backends.json").write_text(json.dumps(backends, indent=1, sort_keys=True))
    for name, why in sorted(problems.items()):
        print(f"left out {name}: {why}", file=sys.stderr)
    bad_wheels = [n for n in problems if n.endswith(".whl")]
    if bad_wheels or any(n in required for n in problems):
        print(
            f"ERROR: wheels or install files failed: {sorted(set(bad_wheels) | (set(problems) & required))}",
            file=sys.stderr,
        )
        return 1
    comments = [
        "The real-distribution corpus: real files as the public index publishes them (tests/corpus/fetch.py",
        "fetches them). Made by tests/corpus/select.py from projects.txt and install.txt.",
        f"snapshot cut-off: {cutoff.strftime('%Y-%m-%dT%H:%M:%SZ')} (nothing uploaded after it was considered;",
        "the install set's closures were resolved with uv's --exclude-newer set to it)",
        "expected: accept, or refuse:<rule>:<words of the reason> for a file moorage refuses, and the",
        "public index too, for that reason (select.py's PINNED; docs/api.md has the rules)",
    ]
    corpus.write_list(final, args.out, comments)
    print(f"wrote {len(final)} files to {args.out}", file=sys.stderr)
    return 0


def _drop_rank(c: Candidate, chosen: dict[str, Candidate]) -> int | None:
    """0 for a year release's extra platform wheel, 1 for its pure wheel beside its sdist, else None."""
    if c.packagetype != "bdist_wheel":
        return None
    same = [o for o in chosen.values() if o.project == c.project and o.version == c.version]
    wheels = [o for o in same if o.packagetype == "bdist_wheel"]
    if len(wheels) > 1 and c is not best_wheel(wheels):
        return 0
    if is_pure(c.filename) and any(o.packagetype == "sdist" for o in same):
        return 1
    return None


def report_selection(chosen: list[Candidate], required: set[str]) -> None:
    sdists = sum(c.packagetype == "sdist" for c in chosen)
    projects = len({canonicalize_name(c.project) for c in chosen})
    whys = Counter(c.why.split(":")[0] for c in chosen)
    years = Counter(c.upload_time.year for c in chosen)
    print(
        f"selected {len(chosen)} files ({sdists} sdists) from {projects} projects, "
        f"{sum(c.size for c in chosen) / 1e6:.1f} MB; {len(required)} for the install set; {dict(whys)}; "
        f"by year {dict(sorted(years.items()))}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    sys.exit(main())
