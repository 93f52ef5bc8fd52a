"""`moorage policy simulate` over a real history: a local moorage filled with twine while its
clock moves, its PEP 691 pages saved to disk, then replayed through a proposed policy from
saved pages, a JSON-lines file, the live index and the local database."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support import clients
from tests.support.dists import make_sdist, make_wheel
from tests.support.server import Server, cli_env, start_server

pytestmark = pytest.mark.slow
JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}
PER_PATTERN = 9  # projects of each shape below: 36 pages in all
DAY = 86400.0


@dataclass
class History:
    server: Server
    names: list[str]
    pages: Path  # a directory of saved PEP 691 pages, one per project
    lines: Path  # the same pages as gzipped JSON lines
    last_upload: datetime


def _move_clock(offset_file: Path, days: float) -> None:
    tmp = offset_file.with_suffix(".tmp")
    tmp.write_text(str(days * DAY))
    tmp.replace(offset_file)


def _page(server: Server, name: str) -> dict:  # type: ignore[type-arg]
    request = urllib.request.Request(server.simple + name + "/", headers=JSON)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[History]:
    """36 projects in four shapes, uploaded at day 0, 1, 10 and 20 of the server's clock:

    A  1.0 sdist at day 0, its wheel at day 10
    B  1.0 sdist at day 0, 1.1 sdist at day 1, a 1.0 wheel at day 10
    C  1.0 sdist and wheel at day 0; 2.0 sdist and wheel at day 20
    D  1.0 sdist at day 0, its wheel at day 1
    The server runs the default policy (14 days, not closing on a newer release): it takes all.
    """
    root = tmp_path_factory.mktemp("simulate")
    offset_file = root / "clock-offset"
    server = start_server(root / "data", extra_env={"MOORAGE_CLOCK_OFFSET_FILE": str(offset_file)})
    dists = root / "dists"
    token = os.getpid()
    names = {shape: [f"sim{shape.lower()}{n}-{token}" for n in range(PER_PATTERN)] for shape in "ABCD"}
    at: dict[float, list[Path]] = {0: [], 1: [], 10: [], 20: []}
    for name in names["A"]:
        at[0].append(make_sdist(dists, name, "1.0").path)
        at[10].append(make_wheel(dists, name, "1.0").path)
    for name in names["B"]:
        at[0].append(make_sdist(dists, name, "1.0").path)
        at[1].append(make_sdist(dists, name, "1.1").path)
        at[10].append(make_wheel(dists, name, "1.0").path)
    for name in names["C"]:
        at[0] += [make_sdist(dists, name, "1.0").path, make_wheel(dists, name, "1.0").path]
        at[20] += [make_sdist(dists, name, "2.0").path, make_wheel(dists, name, "2.0").path]
    for name in names["D"]:
        at[0].append(make_sdist(dists, name, "1.0").path)
        at[1].append(make_wheel(dists, name, "1.0").path)
    try:
        for day, files in at.items():
            _move_clock(offset_file, day)
            result = clients.twine_upload(server.legacy, server.admin_token, *files)
            assert result.returncode == 0, result.stdout + result.stderr
        everyone = [n for shape in "ABCD" for n in names[shape]]
        pages_dir = root / "pages"
        pages_dir.mkdir()
        lines = root / "history.jsonl.gz"
        with gzip.open(lines, "wt", encoding="utf-8") as out:
            for name in everyone:
                page = _page(server, name)
                (pages_dir / f"{name}.json").write_text(json.dumps(page))
                out.write(json.dumps(page) + "\n")
        last = max(datetime.fromisoformat(f["upload-time"]) for n in names["C"] for f in _page(server, n)["files"])
        yield History(server, everyone, pages_dir, lines, last)
    finally:
        server.stop()


def simulate(history: History, *args: str, data_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = cli_env(data_dir or history.server.data_dir)
    env.pop("MOORAGE_CLOCK_OFFSET_FILE", None)
    return subprocess.run([sys.executable, "-m", "moorage", "policy", "simulate", *args], capture_output=True,
                          text=True, env=env, timeout=120)


def simulated(history: History, *args: str) -> dict:  # type: ignore[type-arg]
    proc = simulate(history, *args, "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


PROPOSED = ("--upload-window", "7d", "--close-on-newer-release")


def test_a_proposed_policy_replayed_over_saved_pages(history: History) -> None:
    report = simulated(history, "--history", str(history.pages), *PROPOSED)
    # Worked out from the shapes: 36 projects; releases A 9, B 18, C 18, D 9; files A 18, B 27, C 36, D 18.
    assert (report["projects"], report["releases"], report["files"]) == (36, 54, 99)
    # A's wheel (day 10 > 7 days) and B's 1.0 wheel (1.1 had a file on day 1) are refused.
    assert (report["refused_files"], report["refused_releases"], report["refused_projects"]) == (18, 18, 18)
    assert report["unparsed_files"] == 0
    refused = {(r["project"], r["version"], r["rule"]) for r in report["refused"]}
    assert refused == {(n, "1.0", "upload-window") for n in history.names[:2 * PER_PATTERN]}
    for r in report["refused"]:
        assert r["filename"].endswith("-py3-none-any.whl")
        assert round(r["delay_seconds"] / 3600) == 240  # 10 days after the release's first file
        shape_a = r["project"] in history.names[:PER_PATTERN]
        # A closed after 7 days (late by 3 days), B when 1.1 arrived on day 1 (late by 9 days).
        assert round(r["late_seconds"] / 3600) == (72 if shape_a else 216)
    # Gaps, sorted: 27 releases of about 0 s (B's 1.1, C's 1.0 and 2.0), 9 of 1 day (D), 18 of 10 days.
    # Median of 54: between the 27th and 28th, about half a day; p90 (49th) and max: 10 days.
    gaps = report["gap_seconds"]
    assert round(gaps["median"] / 3600) == 12
    assert round(gaps["p90"] / 3600) == round(gaps["p99"] / 3600) == round(gaps["max"] / 3600) == 240


def test_the_same_history_from_json_lines_the_live_index_and_the_local_database(history: History) -> None:
    from_pages = simulated(history, "--history", str(history.pages), *PROPOSED)
    from_lines = simulated(history, "--history", str(history.lines), *PROPOSED)
    live = simulated(history, "--index", history.server.simple, "--project", *history.names, *PROPOSED)
    local = simulated(history, *PROPOSED)  # the server's own database: the same 36 projects
    for report in (from_lines, live, local):
        for key in ("projects", "releases", "files", "refused_files", "refused_releases", "refused_projects",
                    "unparsed_files"):
            assert report[key] == from_pages[key], key
        assert sorted(r["filename"] for r in report["refused"]) == sorted(r["filename"] for r in from_pages["refused"])


def test_each_rule_alone_and_the_policy_in_force(history: History, tmp_path: Path) -> None:
    window = simulated(history, "--history", str(history.lines), "--upload-window", "7d")
    assert window["refused_files"] == 18  # A and B: both wheels came 10 days after the sdist
    closing = simulated(history, "--history", str(history.lines), "--close-on-newer-release")
    assert closing["refused_files"] == 9  # only B: 10 days is inside the default 14
    assert {r["project"] for r in closing["refused"]} == set(history.names[PER_PATTERN:2 * PER_PATTERN])
    # The policy the server ran with accepted everything: replaying it refuses nothing.
    assert simulated(history)["refused_files"] == 0
    config = tmp_path / "proposed.toml"
    config.write_text('[policy]\nupload_window = "7d"\nclose_on_newer_release = true\n')
    from_config = simulated(history, "--history", str(history.pages), "--config", str(config))
    assert from_config["policy"] == {"upload_window_seconds": 7 * DAY, "close_on_newer_release": True,
                                     "deletion_window_seconds": 3 * DAY, "prereleases_deletable": True}
    assert from_config["refused_files"] == 18


def test_files_deletable_at_an_instant(history: History) -> None:
    instant = (history.last_upload + timedelta(hours=1)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    report = simulated(history, "--history", str(history.pages), "--at", instant)
    # An hour after day 20 only C's 2.0 files (18) are inside the 72-hour deletion window.
    assert report["deletable"]["files"] == 18
    assert report["deletable"]["by_rule"] == {"deletion-window": 18}


def test_the_readable_report(history: History) -> None:
    proc = simulate(history, "--history", str(history.pages), *PROPOSED, "--top", "3")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "upload window 7d, closes on a newer release; deletion window 3d" in out
    for label, value in (("projects with a refused upload", 18), ("files refused", 18), ("releases", 54)):
        assert any(label in line and line.rstrip(" │|").split()[-1] == str(value) for line in out.splitlines()), label
    assert "The 3 longest-open releases" in out and "Refused files (3 of 18" in out


def test_unreadable_histories_are_refused_with_the_reason(history: History, tmp_path: Path) -> None:
    missing = simulate(history, "--history", str(tmp_path / "nothing.jsonl"))
    assert missing.returncode == 2 and "no such file or directory" in missing.stderr
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps(_page(history.server, history.names[0])) + "\n{not json\n")
    bad = simulate(history, "--history", str(broken))
    assert bad.returncode == 2 and "broken.jsonl, line 2: not JSON" in bad.stderr
    twice = tmp_path / "twice.jsonl"
    twice.write_text((json.dumps(_page(history.server, history.names[0])) + "\n") * 2)
    repeated = simulate(history, "--history", str(twice))
    assert repeated.returncode == 2 and "appears a second time" in repeated.stderr
    absent = simulate(history, "--index", history.server.simple, "--project", "no-such-project-here")
    assert absent.returncode == 2 and "the index answered 404" in absent.stderr
    flags = simulate(history, "--history", str(history.pages), "--upload-window", "soon")
    assert flags.returncode == 2 and "--upload-window: expected a duration" in flags.stderr
    for proc in (missing, bad, repeated, absent, flags):
        assert "Traceback" not in proc.stderr
