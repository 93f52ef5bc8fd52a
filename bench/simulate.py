"""Times `moorage policy simulate` on a generated history of a million file records.

    python bench/simulate.py [--files 1000000] [--files-per-release 10] [--repeat 3] [--workdir DIR]

Run it with the Python of a virtual environment that has moorage installed. It writes a
history (JSON lines, one PEP 691 project page per line, every file with the keys an index
serves: url, hashes, requires-python, core-metadata, size, upload-time, yanked) into --workdir
(a temporary directory unless given; nothing is kept in the repository), then runs
`moorage policy simulate --history FILE --json --upload-window 7d --close-on-newer-release`
--repeat times as a subprocess, and reports the median wall time and the median peak RSS of
those runs (from wait4's rusage of each run). The generated history is seeded, so every run of
this script replays the same uploads.

The history's shape: projects of 1 to 40 releases (about 1 in 10 a pre-release), each release
with files uploaded mostly within minutes of the first, some days later and a few weeks later,
and one file in 200 an old format whose version cannot be read (.egg, .exe).

To show that memory follows releases and not files, --shapes also runs the same number of
releases with half the files, and twice the releases with the same files.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

START = datetime(2015, 1, 1, tzinfo=UTC)
TAGS = ["py3-none-any", "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64", "cp311-cp311-win_amd64",
        "cp312-cp312-macosx_11_0_arm64", "cp310-cp310-musllinux_1_1_x86_64", "cp39-cp39-win32"]


def generate(path: Path, files: int, per_release: int, seed: int = 7) -> dict[str, int]:
    """Write about `files` file records, `per_release` per release on average; return the counts."""
    rng = random.Random(seed)
    written = releases = projects = 0
    with path.open("w", encoding="utf-8") as out:
        while written < files:
            name = f"project-{projects:06d}"
            stem = name.replace("-", "_")
            entries = []
            opened = START + timedelta(days=rng.uniform(0, 3000))
            for r in range(rng.randint(1, 40)):
                if written + len(entries) >= files:
                    break
                version = f"{r // 10}.{r % 10}.{rng.randint(0, 3)}"
                if rng.random() < 0.1:
                    version += f"rc{rng.randint(1, 3)}"
                opened += timedelta(days=rng.expovariate(1 / 30))
                count = max(1, min(2 * per_release - 1, round(rng.gauss(per_release, per_release / 3))))
                for n in range(count):
                    roll = rng.random()
                    late = (0 if n == 0 else rng.uniform(0, 600) if roll < 0.88
                            else rng.uniform(86400, 10 * 86400) if roll < 0.98 else rng.uniform(14, 60) * 86400)
                    when = opened + timedelta(seconds=late)
                    if n == 0:
                        filename = f"{stem}-{version}.tar.gz"
                    elif rng.random() < 0.005:
                        old = "-py2.7.egg" if rng.random() < 0.5 else ".win32.exe"
                        filename = f"{stem}-{version}{old}"
                    else:
                        filename = f"{stem}-{version}-{n}-{TAGS[n % len(TAGS)]}.whl"
                    digest = f"{rng.getrandbits(256):064x}"
                    entries.append({
                        "filename": filename, "url": f"../../files/{digest}/{filename}", "hashes": {"sha256": digest},
                        "requires-python": ">=3.9", "core-metadata": {"sha256": digest}, "yanked": False,
                        "size": rng.randint(2_000, 40_000_000),
                        "upload-time": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                    })
                releases += 1
            page = {"meta": {"api-version": "1.4"}, "name": name, "project-status": {"status": "active"},
                    "versions": [], "files": entries}
            out.write(json.dumps(page, separators=(",", ":")) + "\n")
            written += len(entries)
            projects += 1
    return {"files": written, "releases": releases, "projects": projects, "bytes": path.stat().st_size}


def run_once(history: Path) -> tuple[float, int, dict[str, object]]:
    """One simulate run: (wall seconds, peak RSS in KiB, its JSON report)."""
    command = [sys.executable, "-m", "moorage", "policy", "simulate", "--history", str(history), "--json",
               "--upload-window", "7d", "--close-on-newer-release", "--at", "2026-01-01T00:00:00Z", "--top", "5"]
    env = dict(os.environ, MOORAGE_DATA_DIR=str(history.parent / "unused-data"))
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.PIPE, env=env)
        _pid, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            why = proc.stderr.read().decode() if proc.stderr else ""
            raise SystemExit(f"simulate failed ({proc.returncode}): {why}")
        # Only the summary that precedes the long lists is parsed: on Linux a child's peak RSS
        # includes its parent's until exec, so this process must stay small between runs.
        out.seek(0)
        head = []
        for line in out:
            if line.startswith(b'  "refused": ['):
                break
            head.append(line)
        report = json.loads(b"".join(head).rstrip().rstrip(b",") + b"\n}")
    return elapsed, usage.ru_maxrss, report


def measure(label: str, history: Path, counts: dict[str, int], repeat: int) -> dict[str, object]:
    runs = [run_once(history) for _ in range(repeat)]
    report = runs[-1][2]
    assert report["files"] == counts["files"] and report["releases"] <= counts["releases"]
    row = {
        "shape": label, **counts,
        "seconds_median": round(statistics.median(r[0] for r in runs), 2),
        "seconds_all": [round(r[0], 2) for r in runs],
        "peak_rss_mib_median": round(statistics.median(r[1] for r in runs) / 1024, 1),
        "refused_files": report["refused_files"], "unparsed_files": report["unparsed_files"],
        "replayed_releases": report["releases"],
    }
    print(f"{label}: {counts['files']:,} files, {report['releases']:,} releases, {counts['projects']:,} projects, "
          f"{counts['bytes'] / 1e6:,.0f} MB: median {row['seconds_median']} s {row['seconds_all']}, "
          f"peak RSS {row['peak_rss_mib_median']} MiB; refused {report['refused_files']:,}, "
          f"unparsed {report['unparsed_files']:,}", flush=True)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=1_000_000)
    parser.add_argument("--files-per-release", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--shapes", action="store_true", help="also half the files, and twice the releases")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "simulate.json")
    parser.add_argument("--generate", type=Path, help=argparse.SUPPRESS)  # internal: write one history, print counts
    args = parser.parse_args()
    if args.generate:
        print(json.dumps(generate(args.generate, args.files, args.files_per_release)))
        return 0
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="simulate-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    shapes = [("main", args.files, args.files_per_release)]
    if args.shapes:
        shapes += [("half the files", args.files // 2, args.files_per_release // 2),
                   ("twice the releases", args.files, args.files_per_release // 2)]
    rows = []
    # A history of one small project: the peak RSS of the interpreter and its imports alone.
    shapes.insert(0, ("one project (start-up)", 10, 10))
    for label, files, per_release in shapes:
        history = workdir / f"history-{files}-{per_release}.jsonl"
        started = time.perf_counter()
        # In a child process: on Linux a child's peak RSS counts its parent's pages until exec, so
        # the parent must stay small for wait4's figure to be the simulation's own.
        counts = json.loads(subprocess.run(
            [sys.executable, __file__, "--generate", str(history), "--files", str(files),
             "--files-per-release", str(per_release)], check=True, capture_output=True, text=True).stdout)
        print(f"generated {history.name} in {time.perf_counter() - started:.1f} s", flush=True)
        rows.append(measure(label, history, counts, args.repeat))
    result = {"when": datetime.now(UTC).isoformat(timespec="seconds"), "machine": platform.machine(),
              "cpus": os.cpu_count(), "python": platform.python_version(), "runs": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
