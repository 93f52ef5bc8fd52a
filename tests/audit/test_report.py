"""The outputs: JSON, the GitHub workflow commands (levels, lines, escaping), the table."""

from __future__ import annotations

import io
import json

from rich.console import Console

from moorage.audit.findings import Finding, Kind
from moorage.audit.report import Report, github_level, print_table, render_github, render_json, summary

FINDINGS = [
    Finding("demo", "1.0", "demo-1.0.tar.gz", Kind.HASH_MISMATCH, "the index serves 90 bytes, the lock has 100", 12),
    Finding("demo", "1.0", "demo-1.0-py3-none-any.whl", Kind.YANKED, "yanked: 100% broken,\nsee: #12", 11),
    Finding("demo", "1.0", None, Kind.ARCHIVED, "archived: done", 4),
    Finding("demo", "1.0", None, Kind.NEWER_RELEASE, "2.0 is available (the lock pins 1.0)", 4),
]
REPORT = Report("locks/pylock.toml", "http://127.0.0.1:8080/simple/", 3, FINDINGS)


def test_json_has_the_documented_shape() -> None:
    doc = json.loads(render_json(REPORT))
    assert list(doc) == ["lockfile", "index", "checked_files", "findings"]
    assert (doc["lockfile"], doc["index"], doc["checked_files"]) == ("locks/pylock.toml",
                                                                     "http://127.0.0.1:8080/simple/", 3)
    assert doc["findings"][0] == {"project": "demo", "version": "1.0", "filename": "demo-1.0.tar.gz",
                                  "kind": "hash-mismatch", "severity": "critical",
                                  "detail": "the index serves 90 bytes, the lock has 100"}
    assert [f["kind"] for f in doc["findings"]] == ["hash-mismatch", "yanked", "archived", "newer-release"]
    assert doc["findings"][2]["filename"] is None


def test_github_levels_follow_the_threshold() -> None:
    assert github_level(Kind.YANKED, Kind.YANKED) == "error"
    assert github_level(Kind.ARCHIVED, Kind.YANKED) == "warning"
    assert github_level(Kind.NEWER_RELEASE, Kind.YANKED) == "notice"
    assert github_level(Kind.YANKED, Kind.HASH_MISMATCH) == "warning"
    assert github_level(Kind.HASH_MISMATCH, None) == "warning"  # --fail-on none: nothing fails the run
    assert github_level(Kind.NEWER_RELEASE, Kind.NEWER_RELEASE) == "error"


def test_github_lines_point_at_the_lock_file_and_escape_as_documented() -> None:
    assert render_github(REPORT, Kind.YANKED) == [
        "::error file=locks/pylock.toml,line=12,title=moorage audit%3A hash-mismatch::"
        "demo 1.0 demo-1.0.tar.gz: the index serves 90 bytes, the lock has 100",
        "::error file=locks/pylock.toml,line=11,title=moorage audit%3A yanked::"
        "demo 1.0 demo-1.0-py3-none-any.whl: yanked: 100%25 broken,%0Asee: #12",
        "::warning file=locks/pylock.toml,line=4,title=moorage audit%3A archived::demo 1.0: archived: done",
        "::notice file=locks/pylock.toml,line=4,title=moorage audit%3A newer-release::"
        "demo 1.0: 2.0 is available (the lock pins 1.0)",
    ]


def test_github_properties_escape_commas_and_colons_and_an_unknown_line_is_left_out() -> None:
    report = Report("C:\\locks,a/requirements.txt", "http://127.0.0.1:8080/simple/", 1,
                    [Finding("demo", "1.0", None, Kind.MISSING, "gone", 0)])
    assert render_github(report, None) == [
        "::warning file=C%3A\\locks%2Ca/requirements.txt,title=moorage audit%3A missing::demo 1.0: gone"]


def test_the_table_lists_findings_most_severe_first_then_a_summary() -> None:
    out = io.StringIO()
    print_table(REPORT, Console(file=out, width=200, color_system=None))
    lines = out.getvalue().splitlines()
    rows = [line for line in lines if "demo" in line and "│" in line]
    assert [row.split("│")[1].strip() for row in rows] == ["hash-mismatch", "yanked", "archived", "newer-release"]
    assert lines[-1] == ("4 finding(s) (1 critical, 1 medium, 1 low, 1 info): 3 locked file(s) in "
                         "locks/pylock.toml checked against http://127.0.0.1:8080/simple/")


def test_no_findings_is_one_line() -> None:
    out = io.StringIO()
    clean = Report("uv.lock", ["http://127.0.0.1:8080/simple/", "http://127.0.0.1:8081/simple/"], 2, [])
    print_table(clean, Console(file=out, width=200, color_system=None))
    assert out.getvalue() == ("no findings: 2 locked file(s) in uv.lock checked against "
                              "http://127.0.0.1:8080/simple/, http://127.0.0.1:8081/simple/\n")
    assert summary(clean) == out.getvalue().strip()
