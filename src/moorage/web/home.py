"""GET /healthz: the database answers, the blob store takes a write and holds every file's bytes."""

from __future__ import annotations

import logging
import os
import tempfile

from anyio import move_on_after, to_thread
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from moorage.services import fsck
from moorage.services.context import Context

log = logging.getLogger(__name__)
HEALTH_TIMEOUT = 10.0  # seconds; a database that does not answer by then counts as unreachable


class Home:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def problem(self) -> str | None:
        """None when healthy, else one line naming the part that failed. The details (hosts,
        paths) go to the server's log, not to the public answer."""
        try:
            with self.ctx.db.read() as conn:
                # The database answers this query, or the index is unhealthy: the bytes a download
                # or fsck's last run found missing or damaged (every worker sees them).
                faults, files = fsck.degraded(conn)
        except Exception as exc:
            log.warning("health check: database unreachable", exc_info=True)
            cause = getattr(exc, "orig", None) or exc
            return f"database unreachable: {type(cause).__name__}"
        try:  # the blob store's own temporary directory, where every upload starts
            fd, name = tempfile.mkstemp(prefix="healthz-", suffix=".part", dir=self.ctx.blobs.tmp)
            try:
                os.write(fd, b"ok")
            finally:
                os.close(fd)
                os.unlink(name)
        except Exception as exc:
            log.warning("health check: blob store not writable", exc_info=True)
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            return f"blob store not writable: {why}"
        try:  # an S3 store: the bucket answers (HEAD bucket); nothing more for the file store
            self.ctx.blobs.check_reachable()
        except Exception as exc:
            log.warning("health check: blob store unreachable", exc_info=True)
            return f"blob store unreachable: {getattr(exc, 'code', None) or type(exc).__name__}"
        if faults:
            return (f"blob store degraded: the bytes of {files} file(s) are missing or damaged ({faults} blob(s)); "
                    "`moorage admin fsck` names them, `--repair --from-backup DIR` or `--from-index URL` "
                    "brings them back")
        return None

    async def health(self, request: Request) -> Response:
        """200 "ok", or 503 with the reason: never a 500, and never a hang past the timeout."""
        why: str | None = f"no answer within {HEALTH_TIMEOUT:g} s"
        try:
            with move_on_after(HEALTH_TIMEOUT):
                why = await to_thread.run_sync(self.problem, abandon_on_cancel=True)
        except Exception as exc:  # e.g. no thread to run the check in
            why = f"health check failed: {type(exc).__name__}"
        if why:
            return PlainTextResponse(why + "\n", status_code=503, headers={"Cache-Control": "no-store"})
        return PlainTextResponse("ok\n", headers={"Cache-Control": "no-store"})
