"""upload_file: the legacy upload use case, checked in the documented order.

One upload is one read transaction and one write transaction, each check made once:

1. Read (`_admit`), before a byte of the file is read: the token; the form; the uploader's
   standing in the project the form names (a deleted project's name, the token's scope, owner
   or maintainer); the token's own rules (unused too long, 2FA); what the index knows of the
   filename. The project's last event serial is kept as the stamp of what was read.
2. No transaction: the bytes are received into a temporary file while they are hashed; the
   digests, the size, a filename known before (the same bytes answer "exists" here, with no
   write), the archive and its metadata are checked, the metadata's bytes staged.
3. Write (`_commit`): the project's row (and its look-alikes') locked first. Every change to
   a project (a role, a deletion, a file) appends an event that moves its last serial, so a
   stamp that moved means something changed meanwhile, and only then are the standing and
   the filename checked again, against the locked state. Then what only the write checks: a
   new name, the project's status and size, the release's quarantine and upload window, one
   sdist; the bytes placed, the rows, the event and the token's use, committed together.

A unique constraint won by a concurrent writer (a new project, a filename) runs the write once
more, checking again; a failure abandons the staged bytes (`_abandon`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Literal

import sqlalchemy as sa
from packaging.utils import canonicalize_version
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from moorage.dists import archives
from moorage.domain.accounts import check_token_use, check_upload_token
from moorage.domain.clock import isoformat_z
from moorage.domain.decisions import Denied, require
from moorage.domain.lifecycle import ProjectFacts, check_upload_status, check_upload_window
from moorage.domain.metadata import CoreMetadata, check_agreement, check_license_files, parse_metadata
from moorage.domain.names import check_new_name, normalize, similarity_key
from moorage.domain.policy import (
    KnownFile,
    Standing,
    TokenView,
    check_digests,
    check_file_size,
    check_known_file,
    check_one_sdist,
    check_project_size,
    check_token,
    check_uploader,
    file_over_limit,
    missing_file,
)
from moorage.domain.upload_form import CheckedForm, UploadForm, check_form
from moorage.services.accounts import find_token, note_token_use
from moorage.services.context import Context
from moorage.services.events import append_event, lock_event_log
from moorage.services.loading import load_release_facts
from moorage.store.accounts import critical_facts
from moorage.store.blobs import BlobStore, BlobTooLarge, StagedBlob
from moorage.store.tables import filename_registry, files, prohibited_names, projects, releases, roles, users

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UploadResult:
    outcome: Literal["created", "exists"]
    project: str
    filename: str
    sha256: str
    serial: int | None


@dataclass(frozen=True)
class _Admitted:
    """What the read transaction found and allowed, for the write to build on."""

    token: TokenView
    user_id: int
    form: CheckedForm
    project: str  # normalized
    standing: Standing
    stamp: tuple[int, int] | None  # the project's (id, last serial) as read; None: no project
    known: KnownFile | None


@dataclass(frozen=True)
class _Received:
    """The bytes, checked, and what their metadata says."""

    blobs: BlobStore
    blob: StagedBlob
    meta: CoreMetadata
    metadata_blob: StagedBlob | None
    address: str | None  # where the upload came from, recorded with the token's use


def upload_file(ctx: Context, *, token: str | None, form: UploadForm, content: IO[bytes] | None,
                address: str | None = None) -> UploadResult:
    admitted = _admit(ctx, token, form)
    if content is None:
        raise Denied(missing_file())
    policy = ctx.settings.upload
    try:
        staged = ctx.blobs.receive(content, policy.max_file_size)
    except BlobTooLarge:
        raise Denied(file_over_limit(policy)) from None
    staged_all = [staged]
    try:
        given = {"md5": form.md5_digest, "sha256": form.sha256_digest, "blake2_256": form.blake2_256_digest}
        require(check_digests(given, {"md5": staged.md5, "sha256": staged.sha256, "blake2_256": staged.blake2_256}))
        require(check_file_size(staged.size, policy))
        if admitted.known is not None:
            return _known(admitted, admitted.known, staged)
        received = _inspect(ctx, admitted.form, staged, address)
        if received.metadata_blob is not None:
            staged_all.append(received.metadata_blob)
        result = _write(ctx, admitted, received)
        if result.outcome == "created":
            for blob in staged_all:
                ctx.blobs.settle(blob)
            staged_all = []
    finally:
        if staged_all:
            _abandon(ctx, staged_all)
    if result.outcome == "created":
        ctx.committed({result.project})
    return result


# -- 1. the read transaction ------------------------------------------------------------------
def _admit(ctx: Context, token: str | None, form: UploadForm) -> _Admitted:
    now = ctx.clock.now()
    with ctx.db.read() as conn:
        found = find_token(conn, token) if token else None
        require(check_token(found[0] if found else None, now))
        assert found is not None
        token_view, user_id = found
        checked = check_form(form, ctx.settings.upload)
        project = normalize(checked.name)
        standing, stamp = _standing(conn, project, user_id)
        require(check_uploader(token_view, project, standing))
        accounts_policy = ctx.settings.accounts
        if token_view.created_at is not None:
            require(check_token_use(accounts_policy, token_view.created_at, token_view.last_used_at, now))
        require(check_upload_token(accounts_policy, project, critical_facts(conn, stamp[0] if stamp else None),
                                   token_view.with_second_factor, now))
        known = _known_file(conn, checked.dist.filename)
    return _Admitted(token_view, user_id, checked, project, standing, stamp, known)


def _standing(conn: Connection, project: str, user_id: int) -> tuple[Standing, tuple[int, int] | None]:
    """The uploader's standing in ``project`` and the project's stamp, in one statement."""
    role = sa.select(roles.c.role).where(roles.c.project_id == projects.c.id, roles.c.user_id == user_id)
    is_admin = sa.select(users.c.is_admin).where(users.c.id == user_id)
    row = conn.execute(
        sa.select(projects.c.id, projects.c.last_serial, projects.c.deleted_at,
                  role.scalar_subquery().label("role"), is_admin.scalar_subquery().label("is_admin"))
        .where(projects.c.normalized_name == project)
    ).first()
    if row is None:
        return Standing(), None
    standing = Standing(exists=True, deleted=row.deleted_at is not None, role=row.role, is_admin=bool(row.is_admin))
    return standing, (int(row.id), int(row.last_serial))


def _known_file(conn: Connection, filename: str) -> KnownFile | None:
    """A filename ever accepted: its bytes, its project, and when its file was deleted."""
    row = conn.execute(
        sa.select(filename_registry.c.sha256, filename_registry.c.project, files.c.deleted_at)
        .select_from(filename_registry.outerjoin(files, files.c.filename == filename_registry.c.filename))
        .where(filename_registry.c.filename == filename)
    ).first()
    return KnownFile(filename, row.sha256, row.project, row.deleted_at) if row is not None else None


# -- 2. the bytes, outside any transaction ------------------------------------------------------
def _known(admitted: _Admitted, known: KnownFile, staged: StagedBlob) -> UploadResult:
    """The answer to a filename accepted before: "exists" for the same file, else its refusal."""
    require(check_known_file(known, admitted.project, admitted.form.version, staged.sha256))
    return UploadResult("exists", admitted.project, known.filename, staged.sha256, None)


def _inspect(ctx: Context, checked: CheckedForm, staged: StagedBlob, address: str | None) -> _Received:
    """The archive is safe, its metadata valid and in agreement with the form and the filename;
    the metadata's bytes are staged when they will be served (`.metadata`)."""
    dist = checked.dist
    info = archives.inspect(staged.temp, dist, ctx.settings.upload)
    meta = parse_metadata(info.metadata)
    check_agreement(meta, dist, checked.name, str(checked.version))
    check_license_files(meta, info.members, info.license_root)
    metadata_blob = None
    if dist.packagetype == "bdist_wheel" or meta.servable_for_sdist():
        metadata_blob = ctx.blobs.stage_bytes(meta.raw)
    return _Received(ctx.blobs, staged, meta, metadata_blob, address)


# -- 3. the write transaction -------------------------------------------------------------------
def _write(ctx: Context, admitted: _Admitted, received: _Received) -> UploadResult:
    for attempt in range(2):
        try:
            return _commit(ctx, admitted, received, recheck=attempt > 0)
        except IntegrityError:
            # A concurrent writer won a unique constraint; check again against what it wrote.
            if attempt == 1:
                raise
    raise AssertionError("unreachable")


def _commit(ctx: Context, admitted: _Admitted, received: _Received, *, recheck: bool) -> UploadResult:
    meta, staged, dist = received.meta, received.blob, admitted.form.dist
    project, now = admitted.project, ctx.clock.now()
    with ctx.db.write() as conn:
        # One statement, so one snapshot: under READ COMMITTED a project committed between
        # two separate look-ups would otherwise show up as a look-alike of itself.
        found = conn.execute(
            sa.select(projects.c.id, projects.c.name, projects.c.normalized_name, projects.c.total_size,
                      projects.c.status, projects.c.status_reason, projects.c.deleted_at, projects.c.last_serial)
            .where(sa.or_(projects.c.normalized_name == project,
                          projects.c.similarity_key == similarity_key(meta.name)))
            .with_for_update()
        ).all()
        row = next((r for r in found if r.normalized_name == project), None)
        standing = admitted.standing
        stamp = (int(row.id), int(row.last_serial)) if row is not None else None
        if recheck or stamp != admitted.stamp:  # the project changed meanwhile: check again
            standing, _ = _standing(conn, project, admitted.user_id)
            require(check_uploader(admitted.token, project, standing))
            known = _known_file(conn, dist.filename)
            if known is not None:
                return _known(admitted, known, staged)
        if row is None:
            project_id, total = _create_project(conn, ctx, admitted, meta, found, now), 0
            facts = ProjectFacts(project)
        else:
            project_id, total = int(row.id), int(row.total_size)
            if row.deleted_at is not None:
                _take_name_again(conn, admitted, project_id, standing, now)
            facts = ProjectFacts(project, row.status, row.status_reason)
            require(check_upload_status(facts, meta.version, release_quarantined=False))
        require(check_project_size(total, staged.size, ctx.settings.upload))
        release_id = _release(conn, ctx, admitted, project_id, facts, meta, now)
        serial = _add_file(conn, admitted, received, project_id, release_id, now)
    return UploadResult("created", project, dist.filename, staged.sha256, serial)


def _create_project(conn: Connection, ctx: Context, admitted: _Admitted, meta: CoreMetadata,
                    found: list[sa.Row], now: datetime) -> int:
    """A new project, the uploader its owner: its name valid, not prohibited, not a look-alike."""
    project, actor = admitted.project, admitted.token.user_name
    similar = found[0].name if found else None
    listed = frozenset(conn.execute(sa.select(prohibited_names.c.name)).scalars())
    banned = ctx.settings.upload.prohibited_names | listed
    require(check_new_name(meta.name, prohibited=banned, similar_existing=similar))
    project_id = int(conn.execute(projects.insert().values(
        name=meta.name, normalized_name=project, similarity_key=similarity_key(meta.name),
        status="active", created_at=now, last_serial=0, total_size=0,
    ).returning(projects.c.id)).scalar_one())
    conn.execute(roles.insert().values(project_id=project_id, user_id=admitted.user_id, role="owner"))
    append_event(conn, now=now, actor=actor, action="project-created", subject=f"project:{project}",
                 project=project, payload={"project": project, "name": meta.name})
    append_event(conn, now=now, actor=actor, action="role-added", subject=f"project:{project}",
                 project=project, payload={"project": project, "user": actor, "role": "owner"})
    return project_id


def _take_name_again(conn: Connection, admitted: _Admitted, project_id: int, standing: Standing,
                     now: datetime) -> None:
    """A deleted project's name taken again (check_uploader allowed it): the uploader owns it."""
    project = admitted.project
    if standing.role is None:
        conn.execute(roles.insert().values(project_id=project_id, user_id=admitted.user_id, role="owner"))
    conn.execute(projects.update().where(projects.c.id == project_id).values(deleted_at=None, deleted_reason=None))
    append_event(conn, now=now, actor=admitted.token.user_name, action="project-reregistered",
                 subject=f"project:{project}", project=project,
                 payload={"project": project, "before": {"deleted": True}, "after": {"deleted": False}})


def _release(conn: Connection, ctx: Context, admitted: _Admitted, project_id: int, facts: ProjectFacts,
             meta: CoreMetadata, now: datetime) -> int:
    """The release the file joins: a new one, or one that still takes this file (not
    quarantined, its upload window open, no second sdist)."""
    project, version, canonical = admitted.project, meta.version, canonicalize_version(meta.version)
    release = conn.execute(
        sa.select(releases.c.id, releases.c.quarantined_at, releases.c.deleted_at)
        .where(releases.c.project_id == project_id, releases.c.canonical_version == canonical)
    ).first()
    if release is None:
        release_id = conn.execute(releases.insert().values(
            project_id=project_id, version=str(version), canonical_version=canonical,
            created_at=now, requires_python=meta.requires_python, metadata=meta.fields,
        ).returning(releases.c.id)).scalar_one()
        append_event(conn, now=now, actor=admitted.token.user_name, action="release-created",
                     subject=f"release:{project}/{version}", project=project,
                     payload={"project": project, "version": str(version)})
        return int(release_id)
    if release.deleted_at is not None:
        conn.execute(releases.update().where(releases.c.id == release.id).values(deleted_at=None))
    if release.quarantined_at is not None:
        require(check_upload_status(facts, version, release_quarantined=True))
    window = load_release_facts(conn, project_id, project)[version]
    require(check_upload_window(window, ctx.settings.lifecycle, now))
    packagetype = admitted.form.dist.packagetype
    has_sdist = packagetype == "sdist" and conn.execute(
        sa.select(files.c.filename).where(files.c.release_id == release.id, files.c.packagetype == "sdist")
    ).first() is not None
    require(check_one_sdist(packagetype, has_sdist, project, version))
    return int(release.id)


def _add_file(conn: Connection, admitted: _Admitted, received: _Received, project_id: int, release_id: int,
              now: datetime) -> int:
    """The bytes placed, then the rows that point at them, the event and the token's use."""
    staged, metadata_blob, meta, dist = received.blob, received.metadata_blob, received.meta, admitted.form.dist
    project, filename = admitted.project, dist.filename
    # The bytes are in the store before the rows that point at them are committed.
    received.blobs.place(staged)
    if metadata_blob is not None:
        received.blobs.place(metadata_blob)
    metadata_sha256 = metadata_blob.sha256 if metadata_blob else None
    conn.execute(files.insert().values(
        release_id=release_id, project_id=project_id, filename=filename, packagetype=dist.packagetype,
        python_version=dist.python_version, sha256=staged.sha256, blake2_256=staged.blake2_256,
        md5=staged.md5, size=staged.size, upload_time=now, requires_python=meta.requires_python,
        metadata_sha256=metadata_sha256, uploader_id=admitted.user_id,
    ))
    conn.execute(filename_registry.insert().values(
        filename=filename, sha256=staged.sha256, project=project, registered_at=now))
    conn.execute(projects.update().where(projects.c.id == project_id)
                 .values(total_size=projects.c.total_size + staged.size))
    serial = append_event(
        conn, now=now, actor=admitted.token.user_name, action="file-added", subject=f"file:{filename}",
        project=project,
        payload={"project": project, "version": str(meta.version), "filename": filename,
                 "packagetype": dist.packagetype, "sha256": staged.sha256, "size": staged.size,
                 "upload-time": isoformat_z(now), "metadata-sha256": metadata_sha256},
    )
    # Last, under the event log's lock: see note_token_use.
    note_token_use(conn, admitted.token.token_id, now, received.address)
    return serial


def _abandon(ctx: Context, staged: list[StagedBlob]) -> None:
    """Remove what a failed upload added to the blob store, unless a committed file uses it.

    The check and the removal happen inside a writer's transaction that holds the event
    lock: a concurrent upload that placed the same bytes either committed before the check
    (so the blob is kept) or commits after the removal (and its ``settle`` puts the bytes
    back from its own temporary file). Never between the two."""
    ours = [blob for blob in staged if blob.created]
    for blob in staged:
        if not blob.created:
            ctx.blobs.abandon(blob, still_referenced=True)  # only drops the temporary file
    if not ours:
        return
    try:
        with ctx.db.write() as conn:
            lock_event_log(conn)
            for blob in ours:
                referenced = conn.execute(
                    sa.select(files.c.id).where(
                        sa.or_(files.c.sha256 == blob.sha256, files.c.metadata_sha256 == blob.sha256)
                    ).limit(1)
                ).first() is not None
                ctx.blobs.abandon(blob, still_referenced=referenced)
    except Exception:  # noqa: BLE001 - the upload's own error is the one to report
        # Unsure whether anything uses the bytes: keep them (an orphan is harmless, a
        # missing blob is not) and drop only the temporary files.
        _log.warning("could not check the blobs of a failed upload; keeping them", exc_info=True)
        for blob in ours:
            ctx.blobs.abandon(blob, still_referenced=True)
