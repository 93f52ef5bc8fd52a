"""Prometheus metrics: an ASGI middleware that counts every HTTP request, and GET /metrics.

Labels are kept to small, fixed sets: a request's ``route`` is a path *group* ("simple",
"files", "legacy", ...), never the path itself (a project name in a label would make one
series per project); the method is one of the standard ones or "other"; a refusal's rule is
the ``X-Moorage-Rule`` header every refusal carries (web/responses.py), a fixed set of ids.
A request adds to plain counters of its process (the tally below), which are handed to
prometheus_client in batches: a request costs a few dict updates, not five locked updates
(and, in multiprocess mode, five writes into memory-mapped files).

Several worker processes (``moorage serve --workers N``): prometheus_client's multiprocess
mode. Each worker writes its values into memory-mapped files in ``PROMETHEUS_MULTIPROC_DIR``
and /metrics, answered by any worker, adds up the files of all of them. prometheus_client
decides the mode when it is first imported, so the variable must be set before a worker
starts: ``moorage serve`` does it with ``multiprocess_directory`` below (a fresh directory
per server start under ``<data_dir>/metrics/``). A single process uses the ordinary
in-memory registry.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import re
import shutil
import socket
from bisect import bisect_left
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from time import perf_counter

from anyio import to_thread
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
    values,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
log = logging.getLogger(__name__)

disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created series: twice the output, little said
REGISTRY = CollectorRegistry(auto_describe=True)

# /simple/ answers in about a millisecond; uploads of large files take seconds.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

REQUESTS = Counter("moorage_http_requests", "HTTP requests by route group, method and status.",
                   ["route", "method", "status"], registry=REGISTRY)
DURATION = Histogram("moorage_http_request_duration_seconds",
                     "Time from a request's arrival to its response's last byte, by route group.",
                     ["route"], buckets=BUCKETS, registry=REGISTRY)
UPLOADS = Counter("moorage_uploads", "Uploads to /legacy/ by result: accepted (2xx), refused (4xx), error (5xx).",
                  ["result"], registry=REGISTRY)
REFUSALS = Counter("moorage_refusals", "Refusals (responses with an X-Moorage-Rule header) by rule id.",
                   ["rule"], registry=REGISTRY)
# Rare, and the operator's to act on: counted at once (web/files.py), not through the tally.
MISSING_BLOBS = Counter("moorage_missing_blobs", "Downloads (GET, HEAD, Range) answered 503 because the file's "
                        "bytes are missing from the blob store.", registry=REGISTRY)

for _result in ("accepted", "refused", "error"):  # present (as 0) from the start
    UPLOADS.labels(_result)

# prometheus_client chose its mode when first imported; the metrics above are in that mode.
_MULTIPROC_DIR = os.environ.get(MULTIPROC_ENV) if getattr(values.ValueClass, "_multiprocess", False) else None

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_RULE = re.compile(r"[a-z0-9][a-z0-9-]{0,63}\Z")
_PAGES = ("/search/", "/project/", "/account/", "/manage/", "/admin/")


def route_of(path: str) -> str:
    """The low-cardinality group of a request path (mirrors MoorageApp's dispatch and routes)."""
    if path.startswith("/simple"):
        return "simple"
    if path.startswith("/files/"):
        return "files"
    if path.startswith("/pending/"):
        if path.startswith("/pending/simple"):
            return "pending-simple"
        if path.startswith("/pending/files/"):
            return "pending-files"
        return "other"
    if path == "/legacy" or path.startswith("/legacy/"):
        return "legacy"
    if path.startswith("/pypi/"):
        return "pypi-json"
    if path.startswith("/api/"):
        return "api"
    if path.startswith("/log/"):
        return "pages" if path == "/log/" else "log"
    if path.startswith("/static/"):
        return "static"
    if path == "/metrics":
        return "metrics"
    if path == "/healthz":
        return "healthz"
    if path == "/" or path.startswith(_PAGES):
        return "pages"
    return "other"


class MetricsMiddleware:
    """Notes every HTTP request once its response is done (or has failed).

    The hot path is two clock reads, a closure around ``send`` and a few plain dict and
    list updates (``_note``); the counts reach prometheus_client in batches (``flush``).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = perf_counter()
        status = 0
        rule = ""

        async def send_and_note(message: Message) -> None:
            nonlocal status, rule
            if message["type"] == "http.response.start":
                status = message["status"]
                if status >= 400:
                    rule = rule_of(message.get("headers") or ())
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            end = perf_counter()
            try:
                # No response started: the app raised, and the server answers 500.
                _note(scope["path"], scope["method"], status or 500, rule, end - start, end)
            except Exception:  # metrics never break a request
                log.exception("recording request metrics failed")


def rule_of(headers: object) -> str:
    for name, value in headers:  # type: ignore[attr-defined]
        if name.lower() == b"x-moorage-rule":
            rule = value.decode("latin-1")
            return rule if _RULE.match(rule) else "other"
    return ""


# -- the tally: this process's counts not yet handed to prometheus_client ---------------------
# Every change of a prometheus_client value takes a lock, and in multiprocess mode also
# checks the pid and writes into the memory-mapped file: a request would pay for about five
# of them (a counter, a histogram's sum and bucket, ...). Instead the request adds to plain
# dicts, and ``flush`` hands the sums over: at every scrape of this process, within
# FLUSH_INTERVAL of a request (a timer on the event loop), and at exit. Everything runs on
# the event loop's thread, so the tally needs no lock.
FLUSH_INTERVAL = 1.0  # seconds: how late another worker's requests may show in /metrics
_NBUCKETS = len(BUCKETS) + 1  # and +Inf


class _Tally:
    __slots__ = ("requests", "durations", "uploads", "refusals", "pending", "flushed_at")

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, int], int] = {}
        self.durations: dict[str, list[float]] = {}  # per route: count per bucket, then the sum
        self.uploads: dict[str, int] = {}
        self.refusals: dict[str, int] = {}
        self.pending = False  # a flush is scheduled
        self.flushed_at = perf_counter()


_TALLY = _Tally()


def _note(path: str, method: str, status: int, rule: str, elapsed: float, now: float) -> None:
    t = _TALLY
    route = route_of(path)
    if method not in METHODS:
        method = "other"
    key = (route, method, status)
    requests = t.requests
    requests[key] = requests.get(key, 0) + 1
    histogram = t.durations.get(route)
    if histogram is None:
        histogram = t.durations[route] = [0] * _NBUCKETS + [0.0]
    histogram[bisect_left(BUCKETS, elapsed)] += 1  # the first bucket whose bound >= elapsed
    histogram[-1] += elapsed
    if route == "legacy" and method == "POST":
        result = "accepted" if 200 <= status < 300 else "error" if status >= 500 else "refused"
        t.uploads[result] = t.uploads.get(result, 0) + 1
    if rule:
        t.refusals[rule] = t.refusals.get(rule, 0) + 1
    if not t.pending:
        t.pending = True
        try:
            asyncio.get_running_loop().call_later(FLUSH_INTERVAL, flush)
        except RuntimeError:  # no asyncio loop here: hand over at once
            flush()
    elif now - t.flushed_at > 2 * FLUSH_INTERVAL:  # the timer's loop is gone
        flush()


def flush() -> None:
    """Hand this process's tally to prometheus_client (the event loop's thread, or at exit)."""
    t = _TALLY
    t.pending = False
    t.flushed_at = perf_counter()
    requests, t.requests = t.requests, {}
    durations, t.durations = t.durations, {}
    uploads, t.uploads = t.uploads, {}
    refusals, t.refusals = t.refusals, {}
    for (route, method, status), n in requests.items():
        REQUESTS.labels(route, method, str(status)).inc(n)
    for route, counts in durations.items():
        # Histogram.observe takes one value at a time; these are the values it updates (a
        # sum and a count per bucket, not cumulative), the same since prometheus_client 0.4.
        child = DURATION.labels(route)
        child._sum.inc(counts[-1])
        for bucket, count in zip(child._buckets, counts[:-1], strict=True):
            if count:
                bucket.inc(count)
    for result, n in uploads.items():
        UPLOADS.labels(result).inc(n)
    for rule, n in refusals.items():
        REFUSALS.labels(rule).inc(n)


atexit.register(flush)


# -- exposition -------------------------------------------------------------------------------
def exposition() -> bytes:
    """The text exposition of this process, or of every worker in multiprocess mode."""
    if _MULTIPROC_DIR:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=_MULTIPROC_DIR)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


async def metrics_view(request: Request) -> Response:
    """GET /metrics (public, like /healthz: counts by route group, status and rule only)."""
    flush()  # this process's counts up to now (other workers' within FLUSH_INTERVAL)
    body = await to_thread.run_sync(exposition)  # multiprocess mode reads every worker's file
    return Response(body, media_type=CONTENT_TYPE_LATEST)


# -- the directory of multiprocess mode -------------------------------------------------------
@contextmanager
def multiprocess_directory(data_dir: Path) -> Iterator[Path]:
    """For ``moorage serve --workers N``: a fresh, empty
    ``<data_dir>/metrics/serve-<host>-<pid>`` in ``PROMETHEUS_MULTIPROC_DIR`` while the
    server runs, removed when it stops.

    Empty at start, so counts begin at zero with the server (as Prometheus expects of a
    restarted target), and one per server, so two servers on one data directory (even on
    two hosts or containers, where pids repeat) never add up each other's files. This
    host's directories whose server no longer runs (it was killed) are removed here.
    """
    base = data_dir / "metrics"
    base.mkdir(parents=True, exist_ok=True)
    mine = f"serve-{host_name()}-"
    for old in base.glob(mine + "*"):
        pid = old.name.removeprefix(mine)
        if not pid.isdigit() or int(pid) == os.getpid() or not _running(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    path = base / f"{mine}{os.getpid()}"
    path.mkdir()
    os.environ[MULTIPROC_ENV] = str(path)
    try:
        yield path
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(path, ignore_errors=True)


def host_name() -> str:
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "host"


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
