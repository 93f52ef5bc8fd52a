"""`moorage verify`: check an index against its own log, needing only its URL and log key.

Steps: fetch and check the signed checkpoint; check it extends the checkpoint seen last time
(kept in a state file); rebuild the whole tree from the entry tiles; then check the index's
current state against the log. Every problem is a finding; none means the index kept its
promises as far as this client can see.
"""

from __future__ import annotations

import hashlib
import json
import re
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

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


def _get(url: str, accept: str | None = None) -> bytes:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=60) as resp:
        return bytes(resp.read())


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


def verify(index_url: str, *, key: str | None = None, state_file: Path | None = None,
           projects: list[str] | None = None, files: bool = False, now: datetime | None = None) -> Report:
    base = index_url if index_url.endswith("/") else index_url + "/"
    report = Report(base)
    state: dict[str, Any] = {}
    if state_file is not None and state_file.exists():
        state = json.loads(state_file.read_text(encoding="utf-8"))
    vkey = key or state.get("key")
    if vkey is None:  # trust on first use: remember the key for next time
        vkey = _get(base + "log/key").decode().strip()
    try:
        verifier = Verifier.parse(vkey)
        note = _get(base + "log/checkpoint").decode()
        checkpoint = Checkpoint.parse(verifier.verify(note))
    except (NoteError, urllib.error.URLError, UnicodeDecodeError) as exc:
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
            entries += decode_bundle(_get(base + "log/" + tile_path("entries", n, width)))
    except (urllib.error.URLError, ValueError) as exc:
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
    _check_index(base, model, report, projects, files, now or datetime.now(UTC))

    if state_file is not None and report.ok:
        state_file.write_text(json.dumps({"key": verifier.vkey(), "checkpoint": report.checkpoint}, indent=2))
    return report


def _check_index(base: str, model: LogModel, report: Report, projects: list[str] | None, download: bool,
                 now: datetime) -> None:
    logged_projects = {f.project for f in model.files.values()}
    if projects is None:
        listed = json.loads(_get(base + "simple/", JSON_ACCEPT))
        names = {p["name"] for p in listed.get("projects", [])}
        projects = sorted({re.sub(r"[-_.]+", "-", n).lower() for n in names} | logged_projects)
    for project in projects:
        try:
            page = json.loads(_get(base + f"simple/{project}/", JSON_ACCEPT))
            offered = {f["filename"]: f for f in page.get("files", [])}
            page_url = base + f"simple/{project}/"
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                report.find("index", f"/simple/{project}/ answered {exc.code}")
                continue
            offered, page_url = {}, ""
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
                data = _get(urljoin(page_url, f["url"]))
                report.downloaded_files += 1
                if hashlib.sha256(data).hexdigest() != logged.sha256 or len(data) != logged.size:
                    report.find("changed-bytes", f"the bytes served for {name} are not the logged ones")
        for name, logged in model.files.items():
            if logged.project == project and name not in offered and model.withheld(logged, now) is None:
                report.find("vanished-file", f"{name} is no longer offered and the log records no deletion, "
                            "quarantine or removal of it")
