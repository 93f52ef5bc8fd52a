"""The outputs of `moorage audit`: a table for people, JSON for programs, and GitHub Actions
workflow commands (one annotation per finding, on the lock file's line)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table
from rich.text import Text

from moorage.audit.findings import ORDER, SEVERITY, Finding, Kind, at_or_above

FORMATS = ("table", "json", "github")
_STYLES = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan", "info": "dim"}


@dataclass(frozen=True, slots=True)
class Report:
    lockfile: str  # as given on the command line: annotations point at it
    index: str | list[str]  # the index asked (a list when the lock records several)
    checked_files: int
    findings: Sequence[Finding]  # most severe first

    def as_dict(self) -> dict[str, object]:
        return {"lockfile": self.lockfile, "index": self.index, "checked_files": self.checked_files,
                "findings": [f.as_dict() for f in self.findings]}

    @property
    def index_text(self) -> str:
        return self.index if isinstance(self.index, str) else ", ".join(self.index)


def render_json(report: Report) -> str:
    return json.dumps(report.as_dict(), indent=2)


def summary(report: Report) -> str:
    where = f"{report.checked_files} locked file(s) in {report.lockfile} checked against {report.index_text}"
    if not report.findings:
        return f"no findings: {where}"
    counts = Counter(f.severity for f in report.findings)
    severities = list(dict.fromkeys(SEVERITY[k] for k in ORDER))
    by_severity = ", ".join(f"{counts[s]} {s}" for s in severities if counts[s])
    return f"{len(report.findings)} finding(s) ({by_severity}): {where}"


def print_table(report: Report, console: Console) -> None:
    if report.findings:
        table = Table(show_edge=False, pad_edge=False, expand=False)
        for column in ("severity", "kind", "project", "version", "file", "detail"):
            table.add_column(column, overflow="fold")
        for f in report.findings:
            # Text cells: names, reasons and URLs come from the index and are never markup.
            table.add_row(Text(f.severity, style=_STYLES[f.severity]), Text(f.kind.value), Text(f.project),
                          Text(f.version), Text(f.filename or "-"), Text(f.detail))
        console.print(table)
    console.print(Text(summary(report)))


def _escape_data(text: str) -> str:
    # https://docs.github.com/actions/reference/workflow-commands-for-github-actions
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_level(kind: Kind, threshold: Kind | None) -> str:
    """error: the finding fails the run (--fail-on); notice: information; warning: the rest."""
    if at_or_above(kind, threshold):
        return "error"
    return "notice" if SEVERITY[kind] == "info" else "warning"


def render_github(report: Report, threshold: Kind | None) -> list[str]:
    lines = []
    for f in report.findings:
        properties = [f"file={_escape_property(report.lockfile)}"]
        if f.line:
            properties.append(f"line={f.line}")
        properties.append(f"title={_escape_property(f'moorage audit: {f.kind.value}')}")
        subject = " ".join(part for part in (f.project, f.version, f.filename) if part)
        lines.append(f"::{github_level(f.kind, threshold)} {','.join(properties)}::"
                     f"{_escape_data(f'{subject}: {f.detail}')}")
    return lines
