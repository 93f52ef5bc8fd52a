"""`moorage verify`: check an index against its own log, needing only its URL and log key.

Steps: fetch and check the signed checkpoint; check it extends the checkpoint seen last time
(kept in a state file); rebuild the whole tree from the entry tiles; then check the index's
current state against the log. Every problem is a finding; none means the index kept its
promises as far as this client can see.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

from moorage.log.entry import decode_entry
from moorage.log.merkle import leaf_hash, root
from moorage.log.note import Checkpoint, NoteError, Verifier
from moorage.log.tiles import TILE_WIDTH, decode_bundle, tile_path

JSON_ACCEPT = "application/vnd.pypi.simple.v1+json"


@dataclass
class Report:
    index: str
    checkpoint: dict[str, Any] | None = None
    findings: list[dict[str, str]] = field(default_factory=list)
    checked_files: int = 0
    downloaded_files: int = 0

    def find(self, kind: str, detail: str) -> None:
        self.findings.append({"finding": kind, "detail": detail})

    @property
    def ok(self) -> bool:
        return not self.findings

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "ok": self.ok, "checkpoint": self.checkpoint, "findings": self.findings,
                "checked_files": self.checked_files, "downloaded_files": self.downloaded_files}


class IndexUnusable(Exception):
    """The index cannot be checked at all (unreachable, not a moorage index, a bad key or state
    file): `moorage verify` exits 2 with this one line, not 1 (findings)."""


# What a request can fail with: an HTTP status (HTTPError), no connection (URLError), a
# connection cut or a timeout mid-answer (OSError, http.client's exceptions).
FETCH_ERRORS = (urllib.error.URLError, OSError, http.client.HTTPException)


def _get(url: str, accept: str | None = None) -> bytes:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=60) as resp:
        return bytes(resp.read())


def failure_text(exc: BaseException) -> str:
    """What a request got instead of its answer, in a few words: "503 Service Unavailable",
    "no connection (Connection refused)", "the connection was cut (...)", "timed out"."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"{exc.code} {exc.reason}".rstrip()
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        why = reason.strerror if isinstance(reason, OSError) and reason.strerror else str(reason)
        return f"no connection ({why})"
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, http.client.HTTPException | ConnectionError):
        return f"the connection was cut ({type(exc).__name__})"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__


def index_base(url: str) -> str:
    """The index's root URL from what a user may give: the root, or its /simple/ URL (the one
    `moorage serve` prints for pip). Raises IndexUnusable for something that is no http(s) URL."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise IndexUnusable(f"--index {url!r} is not an http:// or https:// URL")
    path = re.sub(r"/simple/?$", "/", parts.path)
    if not path.endswith("/"):
        path += "/"
    return f"{parts.scheme}://{parts.netloc}{path}"


def _get_or_unusable(url: str, what: str) -> bytes:
    try:
        return _get(url)
    except FETCH_ERRORS as exc:
        hint = ("; is this the index's root URL?" if isinstance(exc, urllib.error.HTTPError) and exc.code == 404
                else "")
        raise IndexUnusable(f"cannot read {what} at {url}: {failure_text(exc)}{hint}") from None


@dataclass
class LoggedFile:
    project: str
    version: str | None
    sha256: str
    size: int
    upload_time: str
    deleted: bool = False


@dataclass
class LogModel:
    """What the log says the index should offer now."""

    files: dict[str, LoggedFile] = field(default_factory=dict)
    quarantined: set[str] = field(default_factory=set)
    quarantined_releases: set[tuple[str, str]] = field(default_factory=set)
    removal_at: dict[str, datetime] = field(default_factory=dict)
    conflicts: list[str] = field(default_factory=list)

    def apply(self, entry: dict[str, Any]) -> None:
        action, payload = entry["action"], entry.get("payload", {})
        project = str(entry.get("project") or "")
        if action == "file-added":
            name = payload["filename"]
            known = self.files.get(name)
            if known is not None and known.sha256 != payload["sha256"]:
                self.conflicts.append(f"{name} was logged with two different sha256")
            self.files[name] = LoggedFile(project, payload.get("version"), payload["sha256"], payload["size"],
                                          payload["upload-time"])
        elif action in ("file-deleted", "release-deleted", "project-deleted"):
            for f in payload.get("files", []):
                if f["filename"] in self.files:
                    self.files[f["filename"]].deleted = True
        elif action in ("file-restored", "release-restored", "project-restored"):
            for f in payload.get("files", []):
                if f["filename"] in self.files:
                    self.files[f["filename"]].deleted = False
        elif action == "status-changed":
            if payload.get("after", {}).get("status") == "quarantined":
                self.quarantined.add(project)
            else:
                self.quarantined.discard(project)
        elif action == "release-quarantined":
            self.quarantined_releases.add((project, str(payload.get("version"))))
        elif action == "release-unquarantined":
            self.quarantined_releases.discard((project, str(payload.get("version"))))
        elif action == "removal-announced":
            self.removal_at[project] = datetime.fromisoformat(payload["removal_at"])
        elif action == "removal-cancelled":
            self.removal_at.pop(project, None)

    def withheld(self, f: LoggedFile, now: datetime) -> str | None:
        """Why the index may leave this file out, or None if it must offer it."""
        if f.deleted:
            return "deleted"
        if f.project in self.quarantined or (f.project, str(f.version)) in self.quarantined_releases:
            return "quarantined"
        removal = self.removal_at.get(f.project)
        if removal is not None and now >= removal:
            return "pending removal"
        return None


def _read_state(state_file: Path) -> dict[str, Any]:
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise IndexUnusable(f"cannot read the state file {state_file}: {exc}") from None
    previous = state.get("checkpoint") if isinstance(state, dict) else None
    try:
        if not isinstance(state, dict) or (previous is not None and (
                int(previous["size"]) < 0 or len(bytes.fromhex(previous["root"])) != 32)):
            raise ValueError
    except (ValueError, TypeError, KeyError):
        raise IndexUnusable(f"the state file {state_file} is not what `moorage verify --state` writes") from None
    return state


def verify(index_url: str, *, key: str | None = None, state_file: Path | None = None,
           projects: list[str] | None = None, files: bool = False, now: datetime | None = None) -> Report:
    """Check the index at ``index_url`` (its root or its /simple/ URL) against its log.

    Raises IndexUnusable when it cannot be checked at all; everything else is a finding."""
    base = index_base(index_url)
    report = Report(base)
    state = _read_state(state_file) if state_file is not None else {}
    vkey = key or state.get("key")
    if vkey is None:  # trust on first use: remember the key for next time
        try:
            vkey = _get_or_unusable(base + "log/key", "the log's key").decode().strip()
        except UnicodeDecodeError:
            raise IndexUnusable(f"{base}log/key is not a log key: is this a moorage index?") from None
    try:
        verifier = Verifier.parse(str(vkey))
    except NoteError as exc:
        raise IndexUnusable(f"the log key is not a verifier key ({exc}); give the one `moorage log key` "
                            "prints") from None
    note = _get_or_unusable(base + "log/checkpoint", "the log's checkpoint")
    try:
        checkpoint = Checkpoint.parse(verifier.verify(note.decode()))
    except (NoteError, UnicodeDecodeError) as exc:
        report.find("checkpoint", f"the checkpoint does not verify with the log key: {exc}")
        return report
    report.checkpoint = {"origin": checkpoint.origin, "size": checkpoint.size,
                         "root": checkpoint.root.hex()}
    if checkpoint.origin != verifier.name:
        report.find("checkpoint", f"the checkpoint's origin {checkpoint.origin!r} is not the key's name")

    entries: list[bytes] = []
    try:
        for n in range(0, (checkpoint.size + TILE_WIDTH - 1) // TILE_WIDTH):
            width = min(TILE_WIDTH, checkpoint.size - n * TILE_WIDTH)
            url = base + "log/" + tile_path("entries", n, width)
            try:
                entries += decode_bundle(_get(url))
            except FETCH_ERRORS as exc:
                raise ValueError(f"{url} answered {failure_text(exc)}") from None
    except ValueError as exc:
        report.find("tiles", f"the entry tiles cannot be read: {exc}")
        return report
    leaves = [leaf_hash(e) for e in entries]
    if len(leaves) != checkpoint.size or root(leaves) != checkpoint.root:
        report.find("tree", "the entries served do not rebuild the signed tree: history was changed in storage")
        return report
    previous = state.get("checkpoint")
    if previous is not None:
        old_size, old_root = int(previous["size"]), bytes.fromhex(previous["root"])
        if old_size > checkpoint.size or root(leaves[:old_size]) != old_root:
            report.find("fork", f"the log no longer extends the checkpoint of size {old_size} seen before: "
                        "it was rewritten, or this client is shown a different log than before")
            return report

    model = LogModel()
    for number, raw in enumerate(entries):
        try:
            entry = decode_entry(raw)
        except ValueError as exc:
            report.find("entry", f"entry {number} does not decode: {exc}")
            continue
        if entry.get("index") != number:
            report.find("entry", f"entry {number} says it is entry {entry.get('index')}")
        model.apply(entry)
    for conflict in model.conflicts:
        report.find("filename-reused", conflict)
    wanted = None if projects is None else sorted({re.sub(r"[-_.]+", "-", p).lower() for p in projects})
    _check_index(base, model, report, wanted, files, now or datetime.now(UTC))

    if state_file is not None and report.ok:
        try:
            state_file.write_text(json.dumps({"key": verifier.vkey(), "checkpoint": report.checkpoint}, indent=2))
        except OSError as exc:
            raise IndexUnusable(f"cannot write the state file {state_file}: {exc.strerror or exc}") from None
    return report


def _check_index(base: str, model: LogModel, report: Report, projects: list[str] | None, download: bool,
                 now: datetime) -> None:
    logged_projects = {f.project for f in model.files.values()}
    if projects is None:
        names: set[str] = set()
        try:
            listed = json.loads(_get(base + "simple/", JSON_ACCEPT))
            names = {str(p["name"]) for p in listed.get("projects", [])}
        except FETCH_ERRORS as exc:
            report.find("index", f"the project list /simple/ could not be read ({failure_text(exc)}); only the "
                        "logged projects are checked")
        except (ValueError, TypeError, KeyError, AttributeError):
            report.find("index", "the project list /simple/ is not a PEP 691 JSON page; only the logged projects "
                        "are checked")
        projects = sorted({re.sub(r"[-_.]+", "-", n).lower() for n in names} | logged_projects)
    for project in projects:
        page_url = base + f"simple/{quote(project, safe='')}/"
        try:
            page = json.loads(_get(page_url, JSON_ACCEPT))
            offered = {str(f["filename"]): f for f in page.get("files", [])}
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                report.find("index", f"/simple/{project}/ answered {failure_text(exc)}")
                continue
            offered = {}
        except FETCH_ERRORS as exc:
            report.find("index", f"/simple/{project}/ could not be read: {failure_text(exc)}")
            continue
        except (ValueError, TypeError, KeyError, AttributeError):
            report.find("index", f"/simple/{project}/ is not a PEP 691 JSON page")
            continue
        for name, f in offered.items():
            report.checked_files += 1
            logged = model.files.get(name)
            if logged is None or logged.project != project:
                report.find("unlogged-file", f"{name} is offered but the log has no upload of it")
                continue
            hashes = f.get("hashes", {})
            if (hashes.get("sha256"), f.get("size"), f.get("upload-time")) != (
                    logged.sha256, logged.size, logged.upload_time):
                report.find("changed-file", f"{name} is offered with other sha256, size or upload-time than logged")
            why = model.withheld(logged, now)
            if why is not None:
                report.find("withheld-file-offered", f"{name} is offered although the log says it is {why}")
            if download:
                try:
                    data = _get(urljoin(page_url, str(f.get("url", ""))))
                except FETCH_ERRORS as exc:
                    report.find("unreachable-file", f"{name} could not be downloaded: {failure_text(exc)}")
                    continue
                report.downloaded_files += 1
                if hashlib.sha256(data).hexdigest() != logged.sha256 or len(data) != logged.size:
                    report.find("changed-bytes", f"the bytes served for {name} are not the logged ones")
        for name, logged in model.files.items():
            if logged.project == project and name not in offered and model.withheld(logged, now) is None:
                report.find("vanished-file", f"{name} is no longer offered and the log records no deletion, "
                            "quarantine or removal of it")
