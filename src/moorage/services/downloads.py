"""Download counting: recorded in memory on the request path, written in batches.

A file view calls ``DownloadCounter.record`` once its response starts: a dict lookup for
the dedupe window and an addition, under a lock only the flush ever contends for; no
database call and no I/O. ``flush`` adds everything recorded since the last flush to
``download_counts`` in one transaction of upserts, every ``[downloads] flush_interval``
(a task on the event loop, started and stopped by the app's lifespan; the database work
runs in a thread) and once more at shutdown. A flush that fails keeps its counts in memory
and the next one writes them, added to what came since: nothing is lost while the process
lives, and a download never waits for or fails on the database.

The dedupe window lives in this process: with several workers, each dedupes the downloads
it serves (one client may be counted once per worker it reaches within the window).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from datetime import date, datetime

from moorage.domain.downloads import DedupeWindow, Kind, classify
from moorage.services.context import Context
from moorage.store.downloads import add_counts, project_ids

log = logging.getLogger(__name__)

# (project's normalized name, UTC day, kind) -> downloads
Counts = dict[tuple[str, date, Kind], int]

_AGENT_CACHE = 1024  # distinct user agents whose kind is remembered (pip's differ by version)
SHUTDOWN_ATTEMPTS = 3  # a flush at shutdown is tried this often, a second apart, before giving up


class DownloadCounter:
    def __init__(self, ctx: Context, *, max_dedupe_entries: int = 200_000) -> None:
        settings = ctx.settings.downloads
        self.ctx = ctx
        self.enabled = settings.count
        self.flush_interval = settings.flush_interval
        self.mirror_agents = settings.mirror_agents
        self._lock = threading.Lock()  # record vs. the swap in flush
        self._dedupe = DedupeWindow(settings.dedupe_window, max_dedupe_entries)
        self._pending: Counts = {}
        # Owned by flush (under _flush_lock): counts a failed flush could not write.
        self._flush_lock = threading.Lock()
        self._unsaved: Counts = {}
        self._failing = False
        self._ids: dict[str, int] = {}  # project ids never change: looked up once per process
        self._agents: dict[str, Kind] = {}
        self._task: asyncio.Task[None] | None = None

    # -- the request path ------------------------------------------------------------------
    def record(self, project: str, address: str, user_agent: str | None, now: datetime | None = None) -> bool:
        """Note one download of ``project`` (normalized name) by ``address``; False when the
        dedupe window or ``count = false`` leaves it out."""
        if not self.enabled:
            return False
        agent = user_agent or ""
        kind = self._agents.get(agent)
        if kind is None:
            kind = classify(agent, self.mirror_agents)
            if len(self._agents) >= _AGENT_CACHE:
                self._agents.clear()
            self._agents[agent] = kind
        if now is None:
            now = self.ctx.clock.now()
        key = (project, now.date(), kind)  # the clock is in UTC: a UTC day
        with self._lock:
            if not self._dedupe.admit((project, kind, address), now):
                return False
            pending = self._pending
            pending[key] = pending.get(key, 0) + 1
        return True

    def pending(self) -> int:
        """Downloads recorded and not yet written (including those of failed flushes)."""
        with self._lock:
            recorded = sum(self._pending.values())
        with self._flush_lock:
            return recorded + sum(self._unsaved.values())

    def dedupe_entries(self) -> int:
        with self._lock:
            return len(self._dedupe)

    # -- the batch -------------------------------------------------------------------------
    def flush(self) -> int:
        """Write what was recorded (and what earlier flushes could not) in one transaction.

        Returns the number of downloads written; 0 when there was nothing or the database
        failed, in which case the counts stay for the next flush (logged once per outage)."""
        with self._flush_lock:
            now = self.ctx.clock.now()
            with self._lock:
                batch, self._pending = self._pending, {}
                self._dedupe.prune(now)  # keeps the dedupe memory to the window's downloads
            unsaved = self._unsaved
            for key, n in batch.items():
                unsaved[key] = unsaved.get(key, 0) + n
            if not unsaved:
                return 0
            try:
                written = self._write(unsaved)
            except Exception:  # noqa: BLE001 - any failure: keep the counts, try again next time
                if not self._failing:
                    self._failing = True
                    log.warning("writing download counts failed; %d downloads kept in memory and retried "
                                "at the next flush", sum(unsaved.values()), exc_info=True)
                return 0
            if self._failing:
                self._failing = False
                log.warning("download counts written again after a failure (%d downloads)", written)
            self._unsaved = {}
            return written

    def _write(self, counts: Counts) -> int:
        by_id: dict[tuple[int, date, str], int] = {}
        written = 0
        with self.ctx.db.write() as conn:
            missing = {name for name, _day, _kind in counts if name not in self._ids}
            if missing:
                self._ids.update(project_ids(conn, missing))
            for (name, day, kind), n in counts.items():
                pid = self._ids.get(name)
                if pid is None:  # projects are never removed from the table: cannot happen
                    log.error("download counts: no project %r; %d downloads dropped", name, n)
                    continue
                by_id[(pid, day, kind)] = by_id.get((pid, day, kind), 0) + n
                written += n
            add_counts(conn, by_id)
        return written

    # -- the background task (the app's lifespan) --------------------------------------------
    async def start(self) -> None:
        if self.enabled and self._task is None:
            self._task = asyncio.create_task(self._run(), name="moorage-download-counts")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            try:
                await asyncio.to_thread(self.flush)
            except Exception:  # noqa: BLE001 - the loop must outlive any surprise
                log.exception("flushing download counts failed")

    async def stop(self) -> None:
        """Stop the task and write what is pending (a clean shutdown loses no count)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if not self.enabled:
            return
        for attempt in range(SHUTDOWN_ATTEMPTS):
            await asyncio.to_thread(self.flush)
            if not self.pending():
                return
            if attempt + 1 < SHUTDOWN_ATTEMPTS:
                await asyncio.sleep(1.0)
        log.error("download counts could not be written at shutdown: %d downloads lost", self.pending())
