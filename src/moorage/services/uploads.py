"""upload_file: the legacy upload use case, checked in the documented order."""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Literal

import sqlalchemy as sa
from packaging.utils import canonicalize_version
from packaging.version import Version
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from moorage import archives
from moorage.domain.accounts import check_token_use, check_upload_token
from moorage.domain.clock import isoformat_z
from moorage.domain.decisions import Decision, Denied, bad_request, require
from moorage.domain.filenames import version_of
from moorage.domain.lifecycle import (
    Actor,
    ProjectFacts,
    check_upload_status,
    check_upload_window,
    may_register_deleted_name,
)
from moorage.domain.metadata import CoreMetadata, check_agreement, check_license_files, parse_metadata
from moorage.domain.names import check_new_name, normalize, similarity_key
from moorage.domain.policy import (
    TokenView,
    check_file_size,
    check_project_size,
    check_token,
    check_upload_scope,
    file_over_limit,
)
from moorage.domain.upload_form import UploadForm, check_form
from moorage.services.accounts import find_token, record_token_use
from moorage.services.context import Context
from moorage.services.events import append_event, lock_event_log
from moorage.services.loading import load_release_facts
from moorage.store.accounts import critical_facts
from moorage.store.blobs import BlobTooLarge, StagedBlob
from moorage.store.tables import filename_registry, files, prohibited_names, projects, releases, roles, users

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UploadResult:
    outcome: Literal["created", "exists"]
    project: str
    filename: str
    sha256: str
    serial: int | None


def _role(conn: Connection, project_id: int, user_id: int) -> str | None:
    return conn.execute(
        sa.select(roles.c.role).where(roles.c.project_id == project_id, roles.c.user_id == user_id)
    ).scalar()


def _check_digests(form: UploadForm, staged: StagedBlob) -> None:
    given = {"md5": form.md5_digest, "sha256": form.sha256_digest, "blake2_256": form.blake2_256_digest}
    actual = {"md5": staged.md5, "sha256": staged.sha256, "blake2_256": staged.blake2_256}
    for kind, value in given.items():
        if value and not hmac.compare_digest(value.strip().lower(), actual[kind]):
            raise bad_request("digest-mismatch", f"the {kind} digest supplied does not match the uploaded file")


def upload_file(ctx: Context, *, token: str | None, form: UploadForm, content: IO[bytes] | None,
                address: str | None = None) -> UploadResult:
    policy = ctx.settings.upload
    now = ctx.clock.now()
    with ctx.db.read() as conn:
        found = find_token(conn, token) if token else None
        require(check_token(found[0] if found else None, now))
        assert found is not None
        token_view, user_id = found
        checked = check_form(form, policy)
        project = normalize(checked.name)
        found_project = conn.execute(
            sa.select(projects.c.id, projects.c.deleted_at).where(projects.c.normalized_name == project)
        ).first()
        existing = found_project.id if found_project else None
        role = _role(conn, existing, user_id) if existing is not None else None
        if found_project is not None and found_project.deleted_at is not None:
            require(may_register_deleted_name(_uploader(conn, token_view, user_id, role), project,
                                              was_owner=role == "owner"))
        require(check_upload_scope(
            token_view, project, project_exists=existing is not None,
            is_owner_or_maintainer=role is not None or (found_project is not None
                                                        and found_project.deleted_at is not None),
        ))
        accounts_policy = ctx.settings.accounts
        if token_view.created_at is not None:
            require(check_token_use(accounts_policy, token_view.created_at, token_view.last_used_at, now))
        require(check_upload_token(accounts_policy, project, critical_facts(conn, existing),
                                   token_view.with_second_factor, now))
    if content is None:
        raise bad_request("missing-file", "the form must carry the file in its 'content' field")
    dist = checked.dist

    try:
        staged = ctx.blobs.receive(content, policy.max_file_size)
    except BlobTooLarge:
        raise Denied(file_over_limit(policy)) from None
    staged_all = [staged]
    try:
        _check_digests(form, staged)
        require(check_file_size(staged.size, policy))
        known = _registered(ctx, dist.filename)
        if known is not None:
            return _already_there(known, staged, project, checked.version, dist.filename)

        info = archives.inspect(staged.temp, dist, policy)
        meta = parse_metadata(info.metadata)
        check_agreement(meta, dist, checked.name, str(checked.version))
        check_license_files(meta, info.members, info.license_root)
        metadata_blob = None
        if dist.packagetype == "bdist_wheel" or meta.servable_for_sdist():
            metadata_blob = ctx.blobs.stage_bytes(meta.raw)
            staged_all.append(metadata_blob)

        for attempt in range(2):
            try:
                serial = _commit_upload(ctx, staged, metadata_blob, meta, dist.packagetype,
                                        dist.python_version, dist.filename, user_id, token_view)
                break
            except IntegrityError:
                # A concurrent writer won a unique constraint; re-check against what it wrote.
                known = _registered(ctx, dist.filename)
                if known is not None:
                    return _already_there(known, staged, project, checked.version, dist.filename)
                if attempt == 1:
                    raise
        for blob in staged_all:
            ctx.blobs.settle(blob)
        staged_all = []
    finally:
        if staged_all:
            _abandon(ctx, staged_all)
    ctx.committed({project})
    record_token_use(ctx, token_view, address, force=True)
    return UploadResult("created", project, dist.filename, staged.sha256, serial)


def _uploader(conn: Connection, token: TokenView, user_id: int, role: str | None) -> Actor:
    is_admin = bool(conn.execute(sa.select(users.c.is_admin).where(users.c.id == user_id)).scalar())
    return Actor(token.user_name, is_admin=is_admin, role=role)


def _registered(ctx: Context, filename: str) -> tuple[str, str] | None:
    """(sha256, project) of a filename ever accepted, or None. A deleted file's name is
    refused outright: it is never uploaded again (an admin can restore the file)."""
    with ctx.db.read() as conn:
        row = conn.execute(
            sa.select(filename_registry.c.sha256, filename_registry.c.project, files.c.deleted_at)
            .select_from(filename_registry.outerjoin(files, files.c.filename == filename_registry.c.filename))
            .where(filename_registry.c.filename == filename)
        ).first()
    if row is not None and row.deleted_at is not None:
        raise bad_request("file-deleted", f"{filename} was deleted on {row.deleted_at:%Y-%m-%d %H:%M} UTC and a "
                          "deleted filename is never uploaded again; an admin can restore it")
    return (row.sha256, row.project) if row else None


def _already_there(known: tuple[str, str], staged: StagedBlob, project: str, version: Version,
                   filename: str) -> UploadResult:
    known_sha, known_project = known
    if known_project != project:
        raise bad_request("filename-mismatch", f"the file {filename} belongs to the project {known_project!r}, "
                          f"not {project!r}")
    if version_of(filename) != version:
        raise bad_request("metadata-mismatch", f"the form says version {version} but {filename} is of version "
                          f"{version_of(filename)}")
    if known_sha == staged.sha256:
        return UploadResult("exists", project, filename, staged.sha256, None)
    raise bad_request("file-exists", "File already exists: a file of this name was uploaded before "
                      "with different contents, and filenames are never reused")


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


def _upload_window(conn: Connection, ctx: Context, project: str, project_id: int, version: Version,
                   now: datetime) -> Decision:
    facts = load_release_facts(conn, project_id, project)
    return check_upload_window(facts[version], ctx.settings.lifecycle, now)


def _commit_upload(ctx: Context, staged: StagedBlob, metadata_blob: StagedBlob | None, meta: CoreMetadata,
                   packagetype: str, python_version: str, filename: str, user_id: int, token: TokenView) -> int:
    policy = ctx.settings.upload
    actor = token.user_name
    now = ctx.clock.now()
    project = normalize(meta.name)
    with ctx.db.write() as conn:
        # One statement, so one snapshot: under READ COMMITTED a project committed between
        # two separate look-ups would otherwise show up as a look-alike of itself.
        found = conn.execute(
            sa.select(projects.c.id, projects.c.name, projects.c.normalized_name, projects.c.total_size,
                      projects.c.status, projects.c.status_reason, projects.c.deleted_at)
            .where(sa.or_(projects.c.normalized_name == project,
                          projects.c.similarity_key == similarity_key(meta.name)))
            .with_for_update()
        ).all()
        row = next((r for r in found if r.normalized_name == project), None)
        if row is None:
            similar = found[0].name if found else None
            banned = policy.prohibited_names | frozenset(conn.execute(sa.select(prohibited_names.c.name)).scalars())
            require(check_new_name(meta.name, prohibited=banned, similar_existing=similar))
            project_id = conn.execute(projects.insert().values(
                name=meta.name, normalized_name=project, similarity_key=similarity_key(meta.name),
                status="active", created_at=now, last_serial=0, total_size=0,
            ).returning(projects.c.id)).scalar_one()
            conn.execute(roles.insert().values(project_id=project_id, user_id=user_id, role="owner"))
            append_event(conn, now=now, actor=actor, action="project-created", subject=f"project:{project}",
                         project=project, payload={"project": project, "name": meta.name})
            append_event(conn, now=now, actor=actor, action="role-added", subject=f"project:{project}",
                         project=project, payload={"project": project, "user": actor, "role": "owner"})
            total = 0
            facts = ProjectFacts(project)
        else:
            project_id, total = int(row.id), int(row.total_size)
            role = _role(conn, project_id, user_id)
            if row.deleted_at is not None:
                # A tombstoned name: only a previous owner or an admin takes it again.
                require(may_register_deleted_name(_uploader(conn, token, user_id, role), project,
                                                  was_owner=role == "owner"))
                if role is None:
                    conn.execute(roles.insert().values(project_id=project_id, user_id=user_id, role="owner"))
                conn.execute(projects.update().where(projects.c.id == project_id)
                             .values(deleted_at=None, deleted_reason=None))
                append_event(conn, now=now, actor=actor, action="project-reregistered",
                             subject=f"project:{project}", project=project,
                             payload={"project": project, "before": {"deleted": True}, "after": {"deleted": False}})
            elif role is None:
                raise Denied(Decision.deny("not-a-maintainer",
                                           f"the user {actor!r} is not an owner or maintainer of {project!r}"))
            facts = ProjectFacts(project, row.status, row.status_reason)
            require(check_upload_status(facts, meta.version, release_quarantined=False))
        require(check_project_size(total, staged.size, policy))

        canonical = canonicalize_version(meta.version)
        release = conn.execute(
            sa.select(releases.c.id, releases.c.quarantined_at, releases.c.deleted_at)
            .where(releases.c.project_id == project_id, releases.c.canonical_version == canonical)
        ).first()
        if release is None:
            release_id = conn.execute(releases.insert().values(
                project_id=project_id, version=str(meta.version), canonical_version=canonical,
                created_at=now, requires_python=meta.requires_python, metadata=meta.fields,
            ).returning(releases.c.id)).scalar_one()
            append_event(conn, now=now, actor=actor, action="release-created",
                         subject=f"release:{project}/{meta.version}", project=project,
                         payload={"project": project, "version": str(meta.version)})
        else:
            release_id = release.id
            if release.deleted_at is not None:
                conn.execute(releases.update().where(releases.c.id == release_id).values(deleted_at=None))
            if release.quarantined_at is not None:
                require(check_upload_status(facts, meta.version, release_quarantined=True))
            require(_upload_window(conn, ctx, project, project_id, meta.version, now))
            if packagetype == "sdist" and conn.execute(
                sa.select(files.c.filename).where(files.c.release_id == release_id, files.c.packagetype == "sdist")
            ).first():
                raise bad_request("one-sdist-per-release",
                                  f"release {meta.version} of {project!r} already has a source distribution")

        # The bytes are in the store before the rows that point at them are committed.
        ctx.blobs.place(staged)
        if metadata_blob is not None:
            ctx.blobs.place(metadata_blob)
        conn.execute(files.insert().values(
            release_id=release_id, project_id=project_id, filename=filename, packagetype=packagetype,
            python_version=python_version, sha256=staged.sha256, blake2_256=staged.blake2_256,
            md5=staged.md5, size=staged.size, upload_time=now, requires_python=meta.requires_python,
            metadata_sha256=metadata_blob.sha256 if metadata_blob else None, uploader_id=user_id,
        ))
        conn.execute(filename_registry.insert().values(
            filename=filename, sha256=staged.sha256, project=project, registered_at=now))
        conn.execute(projects.update().where(projects.c.id == project_id)
                     .values(total_size=projects.c.total_size + staged.size))
        return append_event(
            conn, now=now, actor=actor, action="file-added", subject=f"file:{filename}", project=project,
            payload={"project": project, "version": str(meta.version), "filename": filename,
                     "packagetype": packagetype, "sha256": staged.sha256, "size": staged.size,
                     "upload-time": isoformat_z(now),
                     "metadata-sha256": metadata_blob.sha256 if metadata_blob else None},
        )
