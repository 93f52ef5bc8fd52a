"""`moorage admin fsck`: the blob store against the database, and the log against the events.

What it checks, in this order (so an upload that commits meanwhile is never taken for damage):
the temporary files in ``blobs/tmp``; the store's listing; the blobs the database references
(each file's bytes and its ``.metadata``, deleted files in retention included; bytes purged
past retention may be gone); then, for each referenced blob, that it is there with the right
sha256 (``quick``: there, and of the size the database records); which blobs nothing
references; and the log, entry by entry, against the events (services/log.py's check).

A temporary file or an unreferenced blob younger than an hour may belong to an upload in
progress and is counted, not reported. What it finds missing or damaged is kept in the
``blob_faults`` table, which /healthz reads (the store is "degraded" while a row is there);
a download that finds bytes missing adds its row too (``note_missing``).

Repairs (``repair=True``), each recorded as an event: temporary files older than an hour are
removed (``temp-files-removed``); blobs nothing references and older than a day are removed
(``blobs-collected``), each checked for references again inside a writer's transaction that
holds the event lock, as a failed upload's blobs are (services/uploads.py ``_abandon``); a
missing or damaged blob is brought back from a backup directory or from another index serving
the same file, only once its sha256 matches (``blob-restored``, public: it names the file).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import urljoin

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from moorage.log.keys import decode_signer
from moorage.log.note import NoteError, Verifier
from moorage.services.backup import BLOB_DIR, Progress, References, Silent
from moorage.services.context import Context
from moorage.services.events import append_event, lock_event_log
from moorage.services.log import check_log
from moorage.store.blobs import BlobMissing, BlobTooLarge, StagedBlob
from moorage.store.tables import blob_faults, events, files, projects

_log = logging.getLogger(__name__)

STALE_AFTER = timedelta(hours=1)  # temporary files and unreferenced blobs: an upload may still use them
COLLECT_AFTER = timedelta(days=1)  # unreferenced blobs are removed only past this age
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_JSON = "application/vnd.pypi.simple.v1+json"
_METADATA_LIMIT = 16 << 20
_NETWORK_TIMEOUT = 60


class FsckRefused(Exception):
    """Not started: a repair source that cannot be used (exit 2)."""


@dataclass
class Finding:
    """One thing wrong. ``subject`` is the file for missing and damaged bytes (``<file>.metadata``
    for its metadata), the blob's name for an unreferenced one, the temporary file's name, or
    ``log``. ``repair`` says what --repair did, or why it did not."""

    kind: str  # missing | damaged | unreferenced | stale-temp | temp-link | log
    subject: str
    detail: str
    sha256: str | None = None
    repaired: bool = False
    repair: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Report:
    quick: bool
    repair: bool = False
    files: int = 0
    deleted_files: int = 0
    referenced_blobs: int = 0
    purged_blobs: int = 0  # referenced, their bytes purged past retention: may be gone
    blobs_in_store: int = 0
    hashed_bytes: int = 0
    temp_files: int = 0
    in_progress: int = 0  # temporary files and unreferenced blobs younger than an hour
    log_size: int = 0
    events: int = 0
    checkpoints: int = 0
    findings: list[Finding] = field(default_factory=list)
    recorded: list[int] = field(default_factory=list)  # serials of the repairs' events

    @property
    def damage(self) -> list[Finding]:
        """What is still wrong (found and not repaired)."""
        return [f for f in self.findings if not f.repaired]

    @property
    def ok(self) -> bool:
        return not self.damage

    def as_dict(self) -> dict[str, Any]:
        counts = {k: v for k, v in asdict(self).items() if k not in ("findings", "recorded", "quick", "repair")}
        return {"ok": self.ok, "quick": self.quick, "repair": self.repair, "checked": counts,
                "findings": [f.as_dict() for f in self.findings], "events": self.recorded}


@dataclass(frozen=True)
class BlobUse:
    """A blob the database references, as one file uses it."""

    sha256: str
    filename: str  # the file
    project: str
    size: int | None  # the file's size; None for its metadata (not recorded)
    metadata: bool

    @property
    def subject(self) -> str:
        return self.filename + ".metadata" if self.metadata else self.filename


# -- what /healthz and the downloads use --------------------------------------------------------
def note_missing(ctx: Context, sha256: str, filename: str) -> bool:
    """A download found the bytes of ``filename`` (sha256) missing: keep that until fsck finds
    them again, so /healthz of every process reports the store degraded. True when it was new."""
    with ctx.db.read() as conn:
        if conn.execute(sa.select(blob_faults.c.sha256).where(blob_faults.c.sha256 == sha256)).first() is not None:
            return False
    try:
        with ctx.db.write() as conn:
            conn.execute(blob_faults.insert().values(sha256=sha256, filename=filename, kind="missing",
                                                     found_at=ctx.clock.now(), found_by="download"))
    except IntegrityError:  # another process noted it first
        return False
    return True


def degraded(conn: Connection) -> tuple[int, int]:
    """(blobs known missing or damaged, files that use them); (0, 0) when none is."""
    faults = int(conn.execute(sa.select(sa.func.count()).select_from(blob_faults)).scalar_one())
    if not faults:
        return 0, 0
    bad = sa.select(blob_faults.c.sha256)
    used = conn.execute(sa.select(sa.func.count()).select_from(files)
                        .where(sa.or_(files.c.sha256.in_(bad), files.c.metadata_sha256.in_(bad)))).scalar_one()
    return faults, int(used)


# -- the check ----------------------------------------------------------------------------------
def fsck(ctx: Context, *, quick: bool = False, repair: bool = False, from_backup: Path | None = None,
         from_index: str | None = None, progress: Progress | None = None, actor: str = "operator") -> Report:
    sources: list[_Source] = []
    if from_backup is not None:
        sources.append(_BackupSource(from_backup))
    if from_index is not None:
        sources.append(_IndexSource(from_index))
    report = Report(quick=quick, repair=repair)
    now = ctx.clock.now()
    stale_before = (now - STALE_AFTER).timestamp()

    temps = _temporary_files(ctx)
    listing = {blob.name: blob for blob in ctx.blobs.iter_blobs()}
    report.blobs_in_store = len(listing)
    with ctx.db.read() as conn:  # after the listing: a blob committed meanwhile is referenced here
        refs, uses = read_references(conn)
    report.files, report.deleted_files, report.referenced_blobs = refs.files, refs.deleted_files, len(refs.blobs)
    broken = _check_referenced(ctx, report, refs, uses, listing, progress or Silent())
    unreferenced = _unreferenced(report, refs, listing, now, stale_before)
    stale = _stale_temporary(ctx, report, refs, uses, temps, now, stale_before)
    with ctx.db.read() as conn:
        checked = check_log(conn, _verifier(ctx))
    report.log_size, report.events, report.checkpoints = checked.size, checked.events, checked.checkpoints
    for problem in checked.problems:
        report.findings.append(Finding("log", "log", problem))
    if checked.more:
        report.findings.append(Finding("log", "log", f"and {checked.more} more problems of the log"))

    _record_faults(ctx, broken, quick, refs, now)
    if repair:
        _remove_temporary(ctx, report, stale, actor)
        _collect(ctx, report, unreferenced, now, actor)
        _restore(ctx, report, broken, sources, actor)
    return report


def _check_referenced(ctx: Context, report: Report, refs: References, uses: dict[str, BlobUse],
                      listing: dict[str, Any], progress: Progress) -> dict[str, tuple[BlobUse, str]]:
    """Every referenced blob present (quick: with its size; else with its sha256)."""
    broken: dict[str, tuple[BlobUse, str]] = {}  # sha256 -> (its use, "missing" | "damaged")
    total = 0 if report.quick else sum(listing[s].size for s in refs.blobs if s in listing)
    progress.begin("checking blobs", total)
    for sha in sorted(refs.blobs):
        ref = uses[sha]
        if sha not in listing and ctx.blobs.size(sha) is None:
            if refs.may_be_missing(sha):
                report.purged_blobs += 1
                continue
            broken[sha] = (ref, "missing")
            report.findings.append(Finding("missing", ref.subject, _missing_text(ref, refs), sha))
            continue
        problem = _size_problem(ctx, ref, listing) if report.quick else _hash_problem(ctx, ref, progress, report)
        if problem == "missing":
            broken[sha] = (ref, "missing")
            report.findings.append(Finding("missing", ref.subject, _missing_text(ref, refs), sha))
        elif problem:
            broken[sha] = (ref, "damaged")
            report.findings.append(Finding("damaged", ref.subject, problem, sha))
    return broken


def _unreferenced(report: Report, refs: References, listing: dict[str, Any], now: datetime,
                  stale_before: float) -> list[Any]:
    """Blobs no file uses, older than an upload in progress could be."""
    unreferenced = []
    for name, blob in sorted(listing.items()):
        if name in refs.blobs:
            continue
        if blob.modified >= stale_before:
            report.in_progress += 1
            continue
        unreferenced.append(blob)
        report.findings.append(Finding(
            "unreferenced", name, f"a blob of {blob.size} bytes that no file uses, written "
            f"{_ago(now, blob.modified)}", name if _SHA256.match(name) else None))
    return unreferenced


def _stale_temporary(ctx: Context, report: Report, refs: References, uses: dict[str, BlobUse],
                     temps: list[tuple[Path, Any]], now: datetime, stale_before: float) -> list[tuple[Path, int]]:
    """Temporary files older than an upload in progress could be."""
    report.temp_files = len(temps)
    stale: list[tuple[Path, int]] = []
    for path, st in temps:
        if st.st_mtime >= stale_before:
            report.in_progress += 1
            continue
        stale.append((path, st.st_size))
        if st.st_nlink > 1:
            report.findings.append(Finding("temp-link", path.name, _link_text(ctx, path, st, report.quick, refs, uses)
                                           + f", written {_ago(now, st.st_mtime)}"))
        else:
            report.findings.append(Finding("stale-temp", path.name, f"a temporary file of {st.st_size} bytes "
                                           f"left by an upload that did not finish, written {_ago(now, st.st_mtime)}"))
    return stale


def _temporary_files(ctx: Context) -> list[tuple[Path, Any]]:
    found = []
    try:
        entries = list(ctx.blobs.tmp.iterdir())
    except FileNotFoundError:
        return []
    for path in sorted(entries):
        try:
            st = path.lstat()
        except FileNotFoundError:
            continue
        if path.is_file() and not path.is_symlink():
            found.append((path, st))
    return found


def read_references(conn: Connection) -> tuple[References, dict[str, BlobUse]]:
    """Every blob the files reference (deleted files included) and, for each, the first file
    that uses it by name; what `moorage backup` reads, from either database."""
    refs = References()
    purged_names: set[str] = set()
    for payload in conn.execute(sa.select(events.c.payload).where(events.c.action == "bytes-purged")).scalars():
        purged_names.update(f for f in (payload or {}).get("files", []) if isinstance(f, str))
    uses: dict[str, BlobUse] = {}
    rows = conn.execute(
        sa.select(files.c.filename, files.c.sha256, files.c.metadata_sha256, files.c.size, files.c.deleted_at,
                  projects.c.normalized_name)
        .select_from(files.join(projects, projects.c.id == files.c.project_id)).order_by(files.c.filename))
    for row in rows:
        refs.files += 1
        refs.deleted_files += row.deleted_at is not None
        for sha, is_metadata in ((row.sha256, False), (row.metadata_sha256, True)):
            if sha is None or not _SHA256.match(sha):
                continue
            refs.blobs.setdefault(sha, []).append(row.filename)
            uses.setdefault(sha, BlobUse(sha, row.filename, row.normalized_name, None if is_metadata else int(row.size),
                                      is_metadata))
            if row.deleted_at is None:
                refs.live.add(sha)
            if row.filename in purged_names:
                refs.purged.add(sha)
    return refs, uses


def _missing_text(ref: BlobUse, refs: References) -> str:
    others = len(refs.blobs.get(ref.sha256, [])) - 1
    shared = f" (and {others} other file(s) with the same bytes)" if others > 0 else ""
    return f"its bytes (sha256 {ref.sha256}) are missing from the blob store{shared}"


def _size_problem(ctx: Context, ref: BlobUse, listing: dict[str, Any]) -> str | None:
    if ref.size is None:
        return None  # a metadata blob: its size is not recorded
    blob = listing.get(ref.sha256)
    size = blob.size if blob is not None else ctx.blobs.size(ref.sha256)
    if size is None:
        return "missing"
    if size != ref.size:
        return f"its blob has {size} bytes, the database says {ref.size}"
    return None


def _hash_problem(ctx: Context, ref: BlobUse, progress: Progress, report: Report) -> str | None:
    digest, size = hashlib.sha256(), 0
    try:
        for chunk in ctx.blobs.chunks(ref.sha256):
            digest.update(chunk)
            size += len(chunk)
            progress.advance(len(chunk))
    except BlobMissing:
        return "missing"
    report.hashed_bytes += size
    if digest.hexdigest() != ref.sha256:
        return f"its bytes do not match their sha256 (the blob has {size} bytes hashing to {digest.hexdigest()})"
    if ref.size is not None and size != ref.size:
        return f"its blob has {size} bytes, the database says {ref.size}"
    return None


def _link_text(ctx: Context, path: Path, st: Any, quick: bool, refs: References, uses: dict[str, BlobUse]) -> str:
    text = "a hard link to a blob, left by an upload killed after it placed its bytes"
    if quick:
        return text
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    except OSError:
        return text
    sha = digest.hexdigest()
    use = f"the bytes of {uses[sha].subject}" if sha in uses else "a blob no file uses"
    return f"a hard link to the blob {sha} ({use}), left by an upload killed after it placed its bytes"


def _ago(now: datetime, modified: float) -> str:
    seconds = max(0.0, now.timestamp() - modified)
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.0f} days ago"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.0f} hours ago"
    return f"{seconds / 60:.0f} minutes ago"


def _verifier(ctx: Context) -> Verifier | None:
    """The log's key, to check the stored checkpoints' signatures; None without a key file."""
    path = ctx.settings.log_key_file
    try:
        return decode_signer(path.read_text()).verifier
    except (OSError, NoteError, ValueError):
        return None


def _record_faults(ctx: Context, broken: dict[str, tuple[BlobUse, str]], quick: bool, refs: References,
                   now: datetime) -> None:
    """What this run found replaces what was known, for the blobs it could judge: a quick run
    cannot see damaged bytes of the right size, so it leaves such a row to a full run."""
    with ctx.db.write() as conn:
        known = {row.sha256: row.kind for row in conn.execute(sa.select(blob_faults.c.sha256, blob_faults.c.kind))}
        for sha, kind in known.items():
            if sha in broken:
                continue
            if quick and kind == "damaged" and sha in refs.blobs:
                continue
            conn.execute(blob_faults.delete().where(blob_faults.c.sha256 == sha))
        for sha, (ref, kind) in broken.items():
            values = {"filename": ref.subject, "kind": kind, "found_at": now, "found_by": "fsck"}
            if sha in known:
                if known[sha] != kind:
                    conn.execute(blob_faults.update().where(blob_faults.c.sha256 == sha).values(**values))
            else:
                conn.execute(blob_faults.insert().values(sha256=sha, **values))


# -- repairs ------------------------------------------------------------------------------------
def _remove_temporary(ctx: Context, report: Report, stale: list[tuple[Path, int]], actor: str) -> None:
    removed, size = [], 0
    for path, nbytes in stale:
        finding = next(f for f in report.findings if f.kind in ("stale-temp", "temp-link") and f.subject == path.name)
        try:
            path.unlink()
        except FileNotFoundError:
            pass  # gone meanwhile (the server's start-up sweep)
        except OSError as exc:
            finding.repair = f"not removed: {exc.strerror or exc}"
            continue
        removed.append(path.name)
        size += nbytes
        finding.repaired, finding.repair = True, "removed"
    if removed:
        with ctx.db.write() as conn:
            report.recorded.append(append_event(
                conn, now=ctx.clock.now(), actor=actor, action="temp-files-removed", subject="blobs:tmp",
                payload={"count": len(removed), "bytes": size, "files": removed,
                         "older_than_seconds": int(STALE_AFTER.total_seconds())}))


def _collect(ctx: Context, report: Report, unreferenced: list[Any], now: datetime, actor: str) -> None:
    """Remove unreferenced blobs older than a day. The references are checked again inside a
    writer's transaction holding the event lock, and the blob removed before it ends: an upload
    of the same bytes either committed before (the blob is kept) or commits after, when its
    ``settle`` puts the bytes back from its own temporary file."""
    collect_before = (now - COLLECT_AFTER).timestamp()
    due = []
    for blob in unreferenced:
        finding = next(f for f in report.findings if f.kind == "unreferenced" and f.subject == blob.name)
        if not _SHA256.match(blob.name):
            finding.repair = "left alone: its name is not a sha256, so not a blob this index wrote"
        elif blob.modified >= collect_before:
            until = datetime.fromtimestamp(blob.modified, now.tzinfo) + COLLECT_AFTER
            finding.repair = f"kept until {until:%Y-%m-%d %H:%M} UTC: unreferenced blobs are removed a day after " \
                             "they were written"
        else:
            due.append((blob, finding))
    if not due:
        return
    with ctx.db.write() as conn:
        lock_event_log(conn)
        collected, size = [], 0
        for blob, finding in due:
            used = conn.execute(sa.select(files.c.id).where(
                sa.or_(files.c.sha256 == blob.name, files.c.metadata_sha256 == blob.name)).limit(1)).first()
            if used is not None:
                finding.repaired, finding.repair = True, "kept: a file committed meanwhile uses it"
                continue
            collected.append(blob.name)
            size += blob.size
        if collected:
            report.recorded.append(append_event(
                conn, now=ctx.clock.now(), actor=actor, action="blobs-collected", subject="blobs",
                payload={"count": len(collected), "bytes": size, "blobs": collected,
                         "older_than_seconds": int(COLLECT_AFTER.total_seconds())}))
            for name in collected:
                ctx.blobs.remove(name)
    for blob, finding in due:
        if blob.name in collected:
            finding.repaired, finding.repair = True, "removed"


def _restore(ctx: Context, report: Report, broken: dict[str, tuple[BlobUse, str]], sources: list[_Source],
             actor: str) -> None:
    for sha, (ref, was) in sorted(broken.items(), key=lambda item: item[1][0].subject):
        finding = next(f for f in report.findings if f.kind == was and f.sha256 == sha)
        if not sources:
            finding.repair = "not restored: give a copy with --from-backup DIR or --from-index URL"
            continue
        reasons = []
        for source in sources:
            got = source.fetch(ctx, ref)
            if isinstance(got, str):
                reasons.append(got)
                continue
            ctx.blobs.replace(got)
            with ctx.db.write() as conn:
                report.recorded.append(append_event(
                    conn, now=ctx.clock.now(), actor=actor, action="blob-restored", subject=f"file:{ref.filename}",
                    project=ref.project,
                    payload={"project": ref.project, "filename": ref.filename,
                             "blob": "metadata" if ref.metadata else "file", "sha256": sha, "was": was,
                             "source": source.kind}))
                conn.execute(blob_faults.delete().where(blob_faults.c.sha256 == sha))
            finding.repaired, finding.repair = True, f"restored from {source.label} (sha256 checked)"
            ctx.committed({ref.project})
            break
        else:
            finding.repair = "not restored: " + "; ".join(reasons)


class _Source(Protocol):
    kind: str  # "backup" | "index": in the event
    label: str  # for the report

    def fetch(self, ctx: Context, ref: BlobUse) -> StagedBlob | str: ...


def _receive(ctx: Context, ref: BlobUse, stream: IO[bytes], where: str) -> StagedBlob | str:
    """The bytes into this store's ``tmp``, hashed on the way; only the right ones are kept."""
    limit = ref.size if ref.size is not None else _METADATA_LIMIT
    try:
        staged = ctx.blobs.receive(stream, limit)
    except BlobTooLarge:
        return f"the copy in {where} is larger than the {ref.size} bytes of the file"
    if staged.sha256 != ref.sha256:
        staged.temp.unlink(missing_ok=True)
        return f"the copy in {where} does not match the sha256"
    return staged


class _BackupSource:
    """A `moorage backup` directory (``DIR/blobs/aa/bb/<sha256>``), a data directory (the same
    layout), or a copy of a blob directory itself (``DIR/aa/bb/<sha256>``)."""

    kind = "backup"

    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise FsckRefused(f"--from-backup {root}: not a directory")
        self.root = root
        self.label = f"the backup {root}"

    def fetch(self, ctx: Context, ref: BlobUse) -> StagedBlob | str:
        sha = ref.sha256
        for base in (self.root / BLOB_DIR, self.root):
            path = base / sha[:2] / sha[2:4] / sha
            try:
                with path.open("rb") as fh:
                    return _receive(ctx, ref, fh, str(self.root))
            except FileNotFoundError:
                continue
            except OSError as exc:
                return f"{path} cannot be read: {exc.strerror or exc}"
        return f"the backup {self.root} has no copy"


class _IndexSource:
    """Another index serving the same file: its PEP 691 page of the project, the file by its
    filename there (or its ``.metadata``), used only when that index's sha256 is ours."""

    kind = "index"

    def __init__(self, url: str) -> None:
        if not url.startswith(("http://", "https://")):
            raise FsckRefused(f"--from-index {url}: expected an http:// or https:// URL")
        base = url if url.endswith("/") else url + "/"
        self.simple = base if base.rstrip("/").endswith("/simple") else base + "simple/"
        self.label = f"the index {url}"
        self._pages: dict[str, dict[str, Any] | str] = {}

    def _page(self, project: str) -> dict[str, Any] | str:
        if project not in self._pages:
            url = f"{self.simple}{project}/"
            try:
                request = urllib.request.Request(url, headers={"Accept": _JSON})
                with urllib.request.urlopen(request, timeout=_NETWORK_TIMEOUT) as resp:
                    page = json.loads(resp.read())
                self._pages[project] = {"url": url, "files": {f["filename"]: f for f in page.get("files", [])}}
            except urllib.error.HTTPError as exc:
                self._pages[project] = f"{url} answered {exc.code}"
            except (urllib.error.URLError, OSError, ValueError, KeyError, TypeError) as exc:
                self._pages[project] = f"{url} could not be read: {getattr(exc, 'reason', None) or exc}"
        return self._pages[project]

    def fetch(self, ctx: Context, ref: BlobUse) -> StagedBlob | str:
        page = self._page(ref.project)
        if isinstance(page, str):
            return page
        offered = page["files"].get(ref.filename)
        if offered is None:
            return f"{self.label} does not offer {ref.filename}"
        if ref.metadata:
            meta = offered.get("core-metadata")
            if not isinstance(meta, dict) or meta.get("sha256") != ref.sha256:
                return f"{self.label} does not serve the same metadata of {ref.filename}"
            url = urljoin(page["url"], offered["url"]).split("#", 1)[0] + ".metadata"
        else:
            if (offered.get("hashes") or {}).get("sha256") != ref.sha256:
                return f"{self.label} offers other bytes under {ref.filename}"
            url = urljoin(page["url"], offered["url"]).split("#", 1)[0]
        try:
            with urllib.request.urlopen(url, timeout=_NETWORK_TIMEOUT) as resp:
                return _receive(ctx, ref, resp, self.label)
        except urllib.error.HTTPError as exc:
            return f"{url} answered {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            return f"{url} could not be read: {getattr(exc, 'reason', None) or exc}"
