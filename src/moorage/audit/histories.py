"""Where upload histories come from, for `moorage policy simulate`.

A history is a sequence of PEP 691 project pages (with PEP 700 ``upload-time``): a JSON-lines
file (gzip accepted), a directory of saved pages, or pages read live from an index. Each is
read one project at a time, so a large history is never held in memory whole.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from moorage.audit import fetch
from moorage.domain.names import normalize
from moorage.domain.simulation import ProjectHistory, UploadRecord

# Called with the number of units done since the last call (bytes of a file, or pages).
Advance = Callable[[int], None]


class HistoryError(Exception):
    """A history that cannot be read: the message says where and why."""


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        instant = datetime.fromisoformat(value)
    except ValueError:
        return None
    return instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant.astimezone(UTC)


def project_history(page: Any, where: str) -> ProjectHistory:
    """A PEP 691 project page as a history; files without a usable upload-time keep None."""
    if not isinstance(page, dict):
        raise HistoryError(f"{where}: expected a PEP 691 project page (a JSON object), got {type(page).__name__}")
    name, files = page.get("name"), page.get("files")
    if not isinstance(name, str) or not name:
        raise HistoryError(f"{where}: the page has no project name (\"name\")")
    if not isinstance(files, list):
        raise HistoryError(f"{where}: the page of {name} has no \"files\" list")
    records = []
    for index, entry in enumerate(files):
        if not isinstance(entry, dict) or not isinstance(entry.get("filename"), str):
            raise HistoryError(f"{where}: file {index} of {name} has no \"filename\"")
        records.append(UploadRecord(entry["filename"], parse_time(entry.get("upload-time"))))
    return ProjectHistory(normalize(name), records)


class _Seen:
    """Each project once: a history that repeats a project would replay its files twice."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def check(self, history: ProjectHistory, where: str) -> ProjectHistory:
        if history.name in self.names:
            raise HistoryError(f"{where}: project {history.name} appears a second time in the history")
        self.names.add(history.name)
        return history


def read_json_lines(path: Path, advance: Advance | None = None) -> Iterator[ProjectHistory]:
    """One PEP 691 project page per line; `advance` gets the bytes read from the (compressed) file."""
    with path.open("rb") as raw:
        stream: Iterable[bytes] = gzip.GzipFile(fileobj=raw) if raw.peek(2)[:2] == b"\x1f\x8b" else raw
        try:
            yield from _pages(stream, raw, path.name, advance)
        except (EOFError, OSError) as exc:  # a truncated or corrupt gzip stream
            raise HistoryError(f"{path.name}: cannot be read to its end ({exc})") from None


def _pages(stream: Iterable[bytes], raw: IO[bytes], name: str, advance: Advance | None) -> Iterator[ProjectHistory]:
    seen = _Seen()
    done = 0
    for number, line in enumerate(stream, start=1):
        if advance is not None:
            position = raw.tell()
            advance(position - done)
            done = position
        if not line.strip():
            continue
        where = f"{name}, line {number}"
        try:
            page = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise HistoryError(f"{where}: not JSON ({exc})") from None
        yield seen.check(project_history(page, where), where)


def read_directory(path: Path, advance: Advance | None = None) -> Iterator[ProjectHistory]:
    """Saved pages, one project per file (*.json, *.json.gz), in name order."""
    seen = _Seen()
    pages = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith((".json", ".json.gz")))
    if not pages:
        raise HistoryError(f"{path}: no saved pages (*.json or *.json.gz) in this directory")
    for page_path in pages:
        opener = gzip.open if page_path.name.endswith(".gz") else open
        try:
            with opener(page_path, "rt", encoding="utf-8") as handle:
                page = json.load(handle)
        except (json.JSONDecodeError, UnicodeDecodeError, OSError, EOFError) as exc:
            raise HistoryError(f"{page_path.name}: not a JSON page ({exc})") from None
        yield seen.check(project_history(page, page_path.name), page_path.name)
        if advance is not None:
            advance(1)


def read_path(path: Path, advance: Advance | None = None) -> Iterator[ProjectHistory]:
    if path.is_dir():
        return read_directory(path, advance)
    if not path.is_file():
        raise HistoryError(f"{path}: no such file or directory")
    return read_json_lines(path, advance)


def fetch_page(index_url: str, project: str) -> Any:
    """One project page from a PEP 691 index, through the same client `moorage audit` uses."""
    try:
        page = fetch.fetch_page(fetch.project_url(index_url, project))
    except fetch.FetchError as exc:
        raise HistoryError(str(exc)) from None
    if page.gone is not None:
        raise HistoryError(f"{page.url}: the index answered {page.gone}: it has no project {normalize(project)}")
    return page.doc


def read_index(index_url: str, projects: list[str], advance: Advance | None = None,
               workers: int = 8) -> Iterator[ProjectHistory]:
    """Pages read live from any PEP 691 index, several at a time, yielded in the order asked."""
    seen = _Seen()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for project, page in zip(projects, pool.map(lambda p: fetch_page(index_url, p), projects), strict=True):
            yield seen.check(project_history(page, f"{index_url} {project}"), project)
            if advance is not None:
                advance(1)
