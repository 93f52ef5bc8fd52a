"""What a lock file's pins look like on the index now: the kinds of findings, their severity and
order, and the comparison of locked packages with project pages (PEP 691 JSON as dicts).

Pure: the pages and what the index served for each file (`Served`) are passed in, so every
rule here is tested with hand-made dicts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urljoin

from packaging.version import InvalidVersion, Version

from moorage.audit.lockfiles import LockedFile, LockedPackage
from moorage.domain.filenames import version_of


class Kind(StrEnum):
    """Most severe first: the declaration order is the severity order."""

    HASH_MISMATCH = "hash-mismatch"  # the bytes are not the ones locked: the most serious
    MISSING = "missing"  # the install will fail
    QUARANTINED = "quarantined"  # withheld by the index's admins (PEP 792): it will fail too
    PENDING_REMOVAL = "pending-removal"  # will fail after a known date
    YANKED = "yanked"  # installs when pinned, but its authors say do not use it (PEP 592)
    ARCHIVED = "archived"  # no more releases, no fixes
    DEPRECATED = "deprecated"  # move on (maybe to a successor)
    NEWER_RELEASE = "newer-release"  # information only


ORDER: tuple[Kind, ...] = tuple(Kind)
SEVERITY: dict[Kind, str] = {
    Kind.HASH_MISMATCH: "critical",
    Kind.MISSING: "high",
    Kind.QUARANTINED: "high",
    Kind.PENDING_REMOVAL: "medium",
    Kind.YANKED: "medium",
    Kind.ARCHIVED: "low",
    Kind.DEPRECATED: "low",
    Kind.NEWER_RELEASE: "info",
}
# Reported once per project, with no filename.
PROJECT_LEVEL = frozenset({Kind.QUARANTINED, Kind.PENDING_REMOVAL, Kind.ARCHIVED, Kind.DEPRECATED,
                           Kind.NEWER_RELEASE})
NEVER = "none"  # --fail-on none


@dataclass(frozen=True, slots=True)
class Finding:
    project: str
    version: str
    filename: str | None
    kind: Kind
    detail: str
    line: int = 0  # where the lock file names it (the GitHub format points there)

    @property
    def severity(self) -> str:
        return SEVERITY[self.kind]

    def as_dict(self) -> dict[str, str | None]:
        return {"project": self.project, "version": self.version, "filename": self.filename,
                "kind": self.kind.value, "severity": self.severity, "detail": self.detail}


def parse_fail_on(text: str) -> Kind | None:
    """A --fail-on value: a kind, or `none` (never fail)."""
    if text == NEVER:
        return None
    try:
        return Kind(text)
    except ValueError:
        raise ValueError(f"expected one of {', '.join([*(k.value for k in ORDER), NEVER])}; got {text!r}") from None


def at_or_above(kind: Kind, threshold: Kind | None) -> bool:
    return threshold is not None and ORDER.index(kind) <= ORDER.index(threshold)


def fails(findings: Iterable[Finding], threshold: Kind | None) -> bool:
    """--fail-on: any finding of the threshold's kind or a more severe one."""
    return any(at_or_above(f.kind, threshold) for f in findings)


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (ORDER.index(f.kind), f.project, f.version, f.filename or "", f.detail))


# -- the index's side -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Page:
    """A project page as fetched: its final URL (file URLs are relative to it) and its JSON."""

    url: str
    doc: Mapping[str, Any]
    gone: int | None = None  # the status (404, 410) when the index has no such project

    @property
    def files(self) -> list[Mapping[str, Any]]:
        files = self.doc.get("files", [])
        return [f for f in files if isinstance(f, dict)] if isinstance(files, list) else []

    def file_url(self, file: Mapping[str, Any]) -> str:
        return urljoin(self.url, str(file.get("url", "")))

    @property
    def status(self) -> tuple[str, str | None]:
        status = self.doc.get("project-status")
        if not isinstance(status, dict):
            return "active", None
        reason = status.get("reason")
        return str(status.get("status", "active")), reason if isinstance(reason, str) and reason else None


@dataclass(frozen=True, slots=True)
class Served:
    """What the index served at a file's URL: a HEAD (size only) or a download (size and hash)."""

    status: int
    size: int | None = None
    sha256: str | None = None


def _sha256(file: Mapping[str, Any]) -> str | None:
    hashes = file.get("hashes")
    value = hashes.get("sha256") if isinstance(hashes, dict) else None
    return value.lower() if isinstance(value, str) else None


def _size(file: Mapping[str, Any]) -> int | None:
    size = file.get("size")
    return size if isinstance(size, int) and not isinstance(size, bool) else None


def _yanked(file: Mapping[str, Any]) -> str | None:
    """None when not yanked, else the reason ("" when none was given)."""
    yanked = file.get("yanked", False)
    if yanked is False or yanked is None:
        return None
    return yanked if isinstance(yanked, str) else ""


def _version_of(filename: str) -> Version | None:
    try:
        return version_of(filename)
    except ValueError:
        return None  # a legacy name (.egg, .tar.bz2): it takes no part in version checks


def _parse_version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def _same_version(a: str, b: Version | None) -> bool:
    va = _parse_version(a)
    return va is not None and va == b


def _release_files(page: Page, version: str) -> list[Mapping[str, Any]]:
    return [f for f in page.files if _same_version(version, _version_of(str(f.get("filename", ""))))]


# -- which files to look at the bytes of ------------------------------------------------------
def _match(package: LockedPackage, page: Page) -> list[tuple[LockedFile, Mapping[str, Any] | None]]:
    """Each locked file with the page's file it pins: by filename, or (a requirements.txt,
    whose hashes name no file) by hash."""
    by_name = {str(f.get("filename")): f for f in page.files}
    by_hash = {h: f for f in page.files if (h := _sha256(f)) is not None}
    out: list[tuple[LockedFile, Mapping[str, Any] | None]] = []
    for locked in package.files:
        if locked.filename is not None:
            out.append((locked, by_name.get(locked.filename)))
        elif locked.sha256 is not None:
            out.append((locked, by_hash.get(locked.sha256)))
    return out


def probe_urls(package: LockedPackage, page: Page) -> list[str]:
    """The URLs of the index's files this package pins: their bytes are checked (HEAD or
    download) because the JSON still advertises the original hash when bytes were replaced."""
    if page.status[0] == "quarantined":
        return []
    return [page.file_url(offered) for _locked, offered in _match(package, page) if offered is not None]


# -- the comparison ---------------------------------------------------------------------------
def _file_findings(package: LockedPackage, locked: LockedFile, offered: Mapping[str, Any],
                   served: Served | None) -> list[Finding]:
    filename = str(offered.get("filename"))
    line = locked.line or package.line
    found: list[Finding] = []
    differences: list[str] = []
    advertised_hash, advertised_size = _sha256(offered), _size(offered)
    if locked.sha256 is not None and advertised_hash is not None and advertised_hash != locked.sha256:
        differences.append(f"the index advertises sha256 {advertised_hash}, the lock has {locked.sha256}")
    if locked.size is not None and advertised_size is not None and advertised_size != locked.size:
        differences.append(f"the index advertises {advertised_size} bytes, the lock has {locked.size}")
    if served is not None:
        if served.status in (404, 410):
            found.append(Finding(package.name, package.version, filename, Kind.MISSING,
                                 f"listed on the project page, but its URL answers {served.status}", line))
        # A lock without sizes (poetry, requirements) is compared with the size the index advertises.
        expected_size, said = (locked.size, "the lock has") if locked.size is not None else (advertised_size,
                                                                                             "the index advertises")
        if served.size is not None and expected_size is not None and served.size != expected_size:
            differences.append(f"the index serves {served.size} bytes, {said} {expected_size}")
        expected_hash, said = (locked.sha256, "the lock has") if locked.sha256 is not None else (advertised_hash,
                                                                                                 "the index advertises")
        if served.sha256 is not None and expected_hash is not None and served.sha256 != expected_hash:
            differences.append(f"the served bytes have sha256 {served.sha256}, {said} {expected_hash}")
    if differences:
        found.append(Finding(package.name, package.version, filename, Kind.HASH_MISMATCH,
                             "; ".join(differences), line))
    reason = _yanked(offered)
    if reason is not None:
        found.append(Finding(package.name, package.version, filename, Kind.YANKED,
                             f"yanked: {reason}" if reason else "yanked (no reason given)", line))
    return found


def _missing_detail(package: LockedPackage, page: Page, what: str | None) -> str:
    versions = page.doc.get("versions")
    known = (any(_same_version(package.version, _parse_version(str(v))) for v in versions)
             if isinstance(versions, list) else bool(_release_files(page, package.version)))
    if not known:
        detail = f"version {package.version} is not on the index"
    elif what is not None:
        detail = f"{what} is not offered by the index"
    else:
        detail = f"no file of version {package.version} is offered by the index"
    removal_at = page.doc.get("_removal-at")
    if isinstance(removal_at, str):
        detail += f"; the project's removal from the default index was announced for {removal_at}"
    return detail


def _unmatched_hash(package: LockedPackage, locked: LockedFile, page: Page) -> Finding:
    """A requirements.txt hash no file of the index has: replaced bytes when the release has a
    file the lock does not know, else the file is gone."""
    hashes = {f.sha256 for f in package.files if f.sha256 is not None}
    unknown = [f for f in _release_files(page, package.version) if _sha256(f) not in hashes]
    line = locked.line or package.line
    if unknown:
        others = ", ".join(f"{f.get('filename')} (sha256 {_sha256(f)})" for f in unknown)
        return Finding(package.name, package.version, str(unknown[0].get("filename")) if len(unknown) == 1 else None,
                       Kind.HASH_MISMATCH, f"no file of {package.name} {package.version} has the locked sha256 "
                       f"{locked.sha256}; the index offers {others}, not in the lock: the bytes were replaced", line)
    return Finding(package.name, package.version, None, Kind.MISSING,
                   _missing_detail(package, page, f"the file with sha256 {locked.sha256}"), line)


def _release_findings(package: LockedPackage, page: Page) -> list[Finding]:
    """A pin without hashes (a requirements.txt without --hash): the release as a whole."""
    files = _release_files(page, package.version)
    if not files:
        return [Finding(package.name, package.version, None, Kind.MISSING,
                        _missing_detail(package, page, None), package.line)]
    reasons = [_yanked(f) for f in files]
    if all(r is not None for r in reasons):  # PEP 592: a release is yanked when all its files are
        reason = next((r for r in reasons if r), "")
        return [Finding(package.name, package.version, None, Kind.YANKED,
                        f"yanked: {reason}" if reason else "yanked (no reason given)", package.line)]
    return []


def _newer(pinned: Sequence[str], page: Page) -> str | None:
    """The newest version above every pin that installs without a pin: not a pre-release
    (unless a pin is one), not with all its files yanked (a version without files is no choice)."""
    parsed = [v for p in pinned if (v := _parse_version(p)) is not None]
    if not parsed:
        return None
    highest = max(parsed)
    by_version: dict[Version, list[Mapping[str, Any]]] = defaultdict(list)
    for f in page.files:
        version = _version_of(str(f.get("filename", "")))
        if version is not None:
            by_version[version].append(f)
    listed = page.doc.get("versions")
    candidates = ([v for text in listed if (v := _parse_version(str(text))) is not None]
                  if isinstance(listed, list) else list(by_version))
    usable = [v for v in candidates
              if v > highest and (not v.is_prerelease or highest.is_prerelease)
              and any(_yanked(f) is None for f in by_version.get(v, []))]
    return str(max(usable)) if usable else None


def _project_findings(packages: Sequence[LockedPackage], page: Page) -> list[Finding]:
    first = packages[0]
    versions = sorted({p.version for p in packages}, key=lambda v: (_parse_version(v) or Version("0"), v))
    pinned = ", ".join(versions)
    status, reason = page.status
    found: list[Finding] = []
    removal_at = page.doc.get("_removal-at")
    successor = page.doc.get("_successor")
    successor_text = f"; successor: {successor}" if isinstance(successor, str) and successor else ""
    if status == "quarantined":
        found.append(Finding(first.name, pinned, None, Kind.QUARANTINED,
                             f"quarantined: {reason}" if reason else "quarantined by the index's admins "
                             "(no reason given); its files are not offered", first.line))
        return found  # nothing else matters while nothing is offered
    if isinstance(removal_at, str):
        # moorage announces a removal as status deprecated with a reason that names the date;
        # a later status change replaces that reason, but the instant stays in _removal-at.
        if reason and reason.startswith("pending removal:"):
            detail = reason
        else:
            detail = f"its files leave the default index at {removal_at}" + (f"; {status}: {reason}" if reason else "")
        found.append(Finding(first.name, pinned, None, Kind.PENDING_REMOVAL, detail + successor_text, first.line))
    elif status == "deprecated":
        detail = f"deprecated: {reason}" if reason else "deprecated"
        found.append(Finding(first.name, pinned, None, Kind.DEPRECATED, detail + successor_text, first.line))
    if status == "archived":
        found.append(Finding(first.name, pinned, None, Kind.ARCHIVED,
                             f"archived: {reason}" if reason else "archived: no further releases", first.line))
    newer = _newer(versions, page)
    if newer is not None:
        found.append(Finding(first.name, pinned, None, Kind.NEWER_RELEASE,
                             f"{newer} is available (the lock pins {pinned})", first.line))
    return found


def audit_project(packages: Sequence[LockedPackage], page: Page,
                  served: Mapping[str, Served] | None = None) -> list[Finding]:
    """Every finding for one project (all its pins in the lock) against its page. ``served``
    maps file URLs (as `probe_urls` gives them) to what the index served there."""
    served = served or {}
    if page.gone is not None:
        gone: list[Finding] = []
        for p in packages:
            detail = (f"the index has no project {p.name} ({page.gone}): it was deleted, or the lock was made "
                      "against another index")
            gone.extend(Finding(p.name, p.version, f.filename, Kind.MISSING, detail, f.line or p.line)
                        for f in p.files)
            if not p.files:  # a pin without hashes: the release
                gone.append(Finding(p.name, p.version, None, Kind.MISSING, detail, p.line))
        return gone
    found = _project_findings(packages, page)
    if page.status[0] == "quarantined":
        return found  # it lists no files: its files are withheld, not missing
    for package in packages:
        if not package.files:
            found.extend(_release_findings(package, page))
            continue
        for locked, offered in _match(package, page):
            if offered is not None:
                found.extend(_file_findings(package, locked, offered, served.get(page.file_url(offered))))
            elif locked.filename is None:
                found.append(_unmatched_hash(package, locked, page))
            else:
                found.append(Finding(package.name, package.version, locked.filename, Kind.MISSING,
                                     _missing_detail(package, page, locked.filename), locked.line or package.line))
    return found


def page_key(package: LockedPackage) -> tuple[str, str]:
    """A project page is one project on one index."""
    return package.index or "", package.normalized_name


def audit(packages: Sequence[LockedPackage], pages: Mapping[tuple[str, str], Page],
          served: Mapping[str, Served] | None = None) -> list[Finding]:
    """All findings, most severe first. ``pages`` is keyed by `page_key`."""
    by_project: dict[tuple[str, str], list[LockedPackage]] = defaultdict(list)
    for package in packages:
        by_project[page_key(package)].append(package)
    found: list[Finding] = []
    for key, group in by_project.items():
        found.extend(audit_project(group, pages[key], served))
    return sort_findings(found)


def checked_files(packages: Sequence[LockedPackage]) -> int:
    """Locked files compared (a requirement without hashes counts as one: its release)."""
    return sum(max(1, len(p.files)) for p in packages)
