"""/metrics and /healthz against the real server, one process and two worker processes."""

from __future__ import annotations

import os
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from starlette.requests import Request

from moorage.store.tables import metadata
from moorage.web import metrics
from moorage.web.home import Home
from tests.support import clients
from tests.support.dists import make_wheel
from tests.support.loops import run_in_own_loop
from tests.support.server import Server, start_server
from tests.support.upload import post_upload

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
STALE = f"serve-{metrics.host_name()}-999999999"
ROUTES = {"simple", "pending-simple", "files", "pending-files", "legacy", "pypi-json", "api", "log", "pages",
          "static", "metrics", "healthz", "other"}


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("metrics") / "data")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("metrics-workers") / "data"
    stale = data / "metrics" / STALE  # left by a server that was killed (no such pid)
    stale.mkdir(parents=True)
    (stale / "counter_1.db").write_bytes(b"left over")
    srv = start_server(data, workers=2)
    yield srv
    srv.stop()
    assert list((data / "metrics").iterdir()) == [], "the server's metrics directory outlived it"


def get(url: str) -> tuple[int, str, str]:
    """Status, content type and body; a new connection each time (so workers take turns)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read().decode()


def parse(text: str) -> Samples:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def scrape(server: Server) -> Samples:
    status, content_type, text = get(server.url + "metrics")
    assert status == 200, text
    assert content_type == CONTENT_TYPE_LATEST
    return parse(text)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def simple_gets(samples: Samples) -> float:
    return value(samples, "moorage_http_requests_total", route="simple", method="GET", status="200")


# -- one process --------------------------------------------------------------------------------
@pytest.mark.slow
def test_uploads_and_refusals_are_counted_by_result_and_rule(single: Server, tmp_path: Path) -> None:
    before = scrape(single)
    wheel = make_wheel(tmp_path, "counted", "1.0")
    result = clients.twine_upload(single.legacy, single.admin_token, wheel.path)
    assert result.returncode == 0, result.stdout + result.stderr
    refused = make_wheel(tmp_path, "refused", "1.0")
    status, _phrase, _body = post_upload(single.legacy, "moorage-000000000000-" + "A" * 43, refused.path)
    assert status == 403
    assert get(single.url + "pypi/no-such-project/json")[0] == 404
    after = scrape(single)

    assert delta(before, after, "moorage_uploads_total", result="accepted") == 1
    assert delta(before, after, "moorage_uploads_total", result="refused") == 1
    assert delta(before, after, "moorage_uploads_total", result="error") == 0
    assert delta(before, after, "moorage_refusals_total", rule="invalid-token") == 1
    assert delta(before, after, "moorage_refusals_total", rule="not-found") == 1
    assert delta(before, after, "moorage_http_requests_total", route="legacy", method="POST", status="200") == 1
    assert delta(before, after, "moorage_http_requests_total", route="legacy", method="POST", status="403") == 1
    assert delta(before, after, "moorage_http_requests_total", route="pypi-json", method="GET", status="404") == 1


@pytest.mark.slow
def test_requests_and_latencies_by_route_group_never_by_path(single: Server, tmp_path: Path) -> None:
    name = "grouped-route-name"
    wheel = make_wheel(tmp_path, name, "1.0")
    assert clients.twine_upload(single.legacy, single.admin_token, wheel.path).returncode == 0
    before = scrape(single)
    urls = [single.simple, single.simple + name + "/"] * 3 + [single.simple + "no-such-project/"]
    answers = [get(url)[0] for url in urls]
    assert answers == [200] * 6 + [404]
    assert get(single.url + "project/" + name + "/")[0] == 200
    assert get(single.url + "no/such/path")[0] == 404
    after = scrape(single)

    assert delta(before, after, "moorage_http_requests_total", route="simple", method="GET", status="200") == 6
    assert delta(before, after, "moorage_http_requests_total", route="simple", method="GET", status="404") == 1
    assert delta(before, after, "moorage_http_requests_total", route="pages", method="GET", status="200") == 1
    assert delta(before, after, "moorage_http_requests_total", route="other", method="GET", status="404") == 1
    # The scrape before this one is counted too, once its response was done.
    assert delta(before, after, "moorage_http_requests_total", route="metrics", method="GET", status="200") == 1

    count = delta(before, after, "moorage_http_request_duration_seconds_count", route="simple")
    assert count == 7
    assert delta(before, after, "moorage_http_request_duration_seconds_bucket", route="simple", le="+Inf") == 7
    assert delta(before, after, "moorage_http_request_duration_seconds_sum", route="simple") > 0
    buckets = sorted((float(dict(labels)["le"]), v) for (sample, labels), v in after.items()
                     if sample == "moorage_http_request_duration_seconds_bucket" and dict(labels)["route"] == "simple")
    assert [b for b, _ in buckets] == [*metrics.BUCKETS, float("inf")]
    assert all(a <= b for (_, a), (_, b) in zip(buckets, buckets[1:], strict=False))  # cumulative

    # Low cardinality: the route label is a group, never a path with a project name in it.
    routes = {dict(labels).get("route") for (_sample, labels) in after} - {None}
    assert routes <= ROUTES, routes
    assert name not in get(single.url + "metrics")[2]


@pytest.mark.slow
def test_healthz_names_an_unwritable_blob_store_and_recovers(single: Server) -> None:
    assert get(single.url + "healthz")[::2] == (200, "ok\n")
    tmp = single.data_dir / "blobs" / "tmp"
    moved = tmp.with_name("tmp.moved-by-test")
    # chmod does not stop root: put a file where the directory was.
    tmp.rename(moved)
    try:
        tmp.write_text("not a directory\n")
        status, content_type, body = get(single.url + "healthz")
    finally:
        tmp.unlink()
        moved.rename(tmp)
    assert status == 503, body
    assert content_type.startswith("text/plain")
    assert body.startswith("blob store not writable: ") and body.count("\n") == 1, body
    assert str(single.data_dir) not in body  # details go to the log, not to the public answer
    assert get(single.url + "healthz")[::2] == (200, "ok\n")


# -- two worker processes -------------------------------------------------------------------------
def per_worker_simple_gets(server: Server) -> dict[str, float]:
    """Each worker's own count, from its own files (copied: one directory per pid)."""
    (directory,) = (server.data_dir / "metrics").glob("serve-*")
    counts: dict[str, float] = {}
    for db in directory.glob("counter_*.db"):
        pid = db.stem.removeprefix("counter_")
        only = server.data_dir.parent / f"worker-{pid}"
        shutil.rmtree(only, ignore_errors=True)
        only.mkdir()
        shutil.copy(db, only / db.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(only))  # type: ignore[no-untyped-call]
        counts[pid] = simple_gets(parse(_exposition(registry)))
    return counts


def _exposition(registry: CollectorRegistry) -> str:
    from prometheus_client import generate_latest

    return generate_latest(registry).decode()


@pytest.mark.slow
def test_two_workers_add_up_whatever_worker_answered(two_workers: Server) -> None:
    start = simple_gets(scrape(two_workers))
    sent = 0
    for _batch in range(20):
        # Eight connections at once: one worker busy with a request leaves the next to the other
        # (one at a time, a loaded machine may hand every connection to the same worker).
        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(lambda _: get(two_workers.simple)[0], range(20))) == {200}
        sent += 20
        # Each worker hands its counts over within FLUSH_INTERVAL; any worker may answer.
        deadline = time.monotonic() + 10 * metrics.FLUSH_INTERVAL
        while (total := simple_gets(scrape(two_workers)) - start) < sent and time.monotonic() < deadline:
            time.sleep(0.1)
        assert total == sent
        served = per_worker_simple_gets(two_workers)
        if sum(1 for n in served.values() if n > 0) >= 2:
            break
    else:
        pytest.fail(f"the kernel never gave a request to the second worker in 20 batches: {served}")
    assert sum(served.values()) == start + sent
    # Scrapes answered by either worker show the same total.
    assert {simple_gets(scrape(two_workers)) for _ in range(6)} == {start + sent}


@pytest.mark.slow
def test_each_server_start_has_a_fresh_metrics_directory(two_workers: Server) -> None:
    (current,) = (two_workers.data_dir / "metrics").iterdir()  # the stale one is gone
    assert current.name == f"serve-{metrics.host_name()}-{two_workers.process.pid}"
    assert len(list(current.glob("counter_*.db"))) == 2  # one per worker, from its start


# -- in process: the parts the real server cannot easily be made to show -------------------------
def _health(ctx: object) -> tuple[int, str]:
    request = Request({"type": "http", "method": "GET", "path": "/healthz", "headers": []})
    response = run_in_own_loop(Home(ctx).health(request))  # type: ignore[arg-type]
    return response.status_code, bytes(response.body).decode()


class _BrokenDatabase:
    def read(self) -> object:
        raise sa.exc.OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused by 10.0.0.5"))


def test_healthz_names_an_unreachable_database(tmp_path: Path) -> None:
    ctx = SimpleNamespace(db=_BrokenDatabase(), blobs=SimpleNamespace(tmp=tmp_path, check_reachable=lambda: None))
    status, body = _health(ctx)
    assert (status, body) == (503, "database unreachable: ConnectionRefusedError\n")
    assert list(tmp_path.iterdir()) == []


def test_healthz_leaves_no_file_behind(tmp_path: Path, server_less_ctx: object) -> None:
    assert _health(server_less_ctx) == (200, "ok\n")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def server_less_ctx(tmp_path: Path) -> object:
    # One in-memory database for every thread (the check runs in a worker thread), with the schema.
    engine = sa.create_engine("sqlite://", poolclass=sa.pool.StaticPool, connect_args={"check_same_thread": False})
    metadata.create_all(engine)

    class Database:
        def read(self) -> object:
            return engine.connect()

    return SimpleNamespace(db=Database(), blobs=SimpleNamespace(tmp=tmp_path, check_reachable=lambda: None))


@pytest.mark.parametrize(("path", "route"), [
    ("/simple/", "simple"), ("/simple/some-project/", "simple"), ("/simple", "simple"),
    ("/pending/simple/x/", "pending-simple"), ("/files/ab/x-1.0.tar.gz", "files"),
    ("/pending/files/ab/x.whl", "pending-files"), ("/legacy/", "legacy"), ("/legacy", "legacy"),
    ("/pypi/x/json", "pypi-json"), ("/api/projects/x/events", "api"), ("/log/checkpoint", "log"),
    ("/log/", "pages"), ("/", "pages"), ("/project/x/", "pages"), ("/admin/", "pages"),
    ("/static/style.css", "static"), ("/metrics", "metrics"), ("/healthz", "healthz"),
    ("/wp-login.php", "other"), ("/pending/", "other"), ("/legacyx", "other"),
])
def test_route_groups(path: str, route: str) -> None:
    assert metrics.route_of(path) == route


def test_a_rule_header_that_is_not_a_rule_id_is_counted_as_other() -> None:
    assert metrics.rule_of([(b"X-Moorage-Rule", b"not-found")]) == "not-found"
    assert metrics.rule_of([(b"x-moorage-rule", b"Robert'); DROP TABLE")]) == "other"
    assert metrics.rule_of([(b"content-type", b"text/plain")]) == ""


def test_multiprocess_directory_is_fresh_and_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(metrics.MULTIPROC_ENV, raising=False)
    host = metrics.host_name()
    alive = tmp_path / "metrics" / f"serve-{host}-{os.getppid()}"  # a running server keeps its files
    dead = tmp_path / "metrics" / f"serve-{host}-999999999"  # a killed one does not
    elsewhere = tmp_path / "metrics" / "serve-otherhost-999999999"  # another host's pids mean nothing here
    for directory in (alive, dead, elsewhere):
        directory.mkdir(parents=True)
    with metrics.multiprocess_directory(tmp_path) as path:
        assert os.environ[metrics.MULTIPROC_ENV] == str(path)
        assert path == tmp_path / "metrics" / f"serve-{host}-{os.getpid()}" and list(path.iterdir()) == []
        assert alive.exists() and elsewhere.exists() and not dead.exists()
    assert not path.exists() and metrics.MULTIPROC_ENV not in os.environ
