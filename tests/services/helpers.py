"""Small helpers shared by the service tests: uploads, table snapshots, blob listings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from moorage.services.context import Context
from moorage.services.uploads import UploadForm, UploadResult, upload_file
from moorage.store.tables import events, metadata
from tests.support.dists import Dist


def form_for(dist: Dist, *, filetype: str | None = None, name: str | None = None,
             version: str | None = None, sha256: str | None = None, md5: str | None = None,
             filename: str | None = None) -> UploadForm:
    if filetype is None:
        filetype = "bdist_wheel" if dist.filename.endswith(".whl") else "sdist"
    return UploadForm(
        action="file_upload", protocol_version="1", name=name or dist.name,
        version=version or dist.version, filetype=filetype, filename=filename or dist.filename,
        sha256_digest=dist.sha256 if sha256 is None else sha256, md5_digest=md5,
        pyversion="py3" if filetype == "bdist_wheel" else "source",
    )


def upload(ctx: Context, token: str | None, dist: Dist, **form: Any) -> UploadResult:
    with dist.path.open("rb") as fh:
        return upload_file(ctx, token=token, form=form_for(dist, **form), content=fh)


def snapshot(ctx: Context) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in primary-key order."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with ctx.db.read() as conn:
        for table in metadata.sorted_tables:
            rows = conn.execute(sa.select(table).order_by(*table.primary_key.columns)).all()
            out[table.name] = [tuple(r) for r in rows]
    return out


def count(ctx: Context, table: sa.Table) -> int:
    with ctx.db.read() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def rows(ctx: Context, table: sa.Table, *where: Any) -> list[Any]:
    with ctx.db.read() as conn:
        return list(conn.execute(sa.select(table).where(*where).order_by(*table.primary_key.columns)).all())


def all_events(ctx: Context) -> list[Any]:
    with ctx.db.read() as conn:
        return list(conn.execute(sa.select(events).order_by(events.c.serial)).all())


def blob_listing(ctx: Context) -> list[str]:
    """Every file under the blob root (temporary files included), relative to it."""
    root: Path = ctx.blobs.root
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def tmp_listing(ctx: Context) -> list[str]:
    return sorted(p.name for p in ctx.blobs.tmp.iterdir())
