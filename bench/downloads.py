"""File download throughput with download counting on and off, alternating, in one sitting.

    INDEXBENCH=/path/to/indexbench python bench/downloads.py [--scale small]
    python bench/downloads.py --show bench/results/downloads-small.json    # print an earlier table

Run it with the Python of a virtual environment that has moorage installed (its `moorage` is the
server, as for bench/pages.py) and wrk on the PATH (the harness's setup_env.sh installs it).

1. A loaded state: bench/pages.py's (/tmp/bench-state-moorage-pages-<scale>) if it holds the
   corpus, else one loaded here once (the harness's corpus and upload code, moorage's harness
   profile: one worker, embedded SQLite) under --state-root.
2. --repeats rounds; each round measures counting off and counting on, in alternating order
   (off, on; then on, off; ...). Each measurement starts from a fresh working copy of the state
   (SQLite backup API, blobs hard-linked), starts `moorage serve` (one worker) with a
   configuration holding only `[downloads] count = true|false`, waits until its start-up work
   is done and the machine is quiet (bounded), runs an unrecorded wrk warm-up, then one
   measured wrk run: `wrk -t2 -c32 -d<duration>s --timeout 10s` over every file URL of the corpus
   (/files/<sha256>/<filename>, uniformly random). Each request carries a random
   X-Forwarded-For address from a pool of --address-pool (default 2^24; uvicorn trusts the header
   from 127.0.0.1), so with counting on nearly every download is a new (project, address) key: the
   dedupe window inserts (and past its bound evicts) on every request, the most work counting does.
   The server is stopped with SIGTERM; with counting on, the downloads written to the database
   (the periodic flushes and the one at shutdown) are summed and compared with the 200s wrk saw
   (plus at most one request in flight per connection when each wrk run ends, which the server
   answers and wrk does not count).
3. The median requests/s of each mode over the rounds, and their ratio (the issue: counting on
   within 10% of counting off).
4. In this process (--micro downloads): the CPU time of sending a small response with and without
   the wrapper that records the download: the cost of counting alone, free of the noise of a
   shared machine.

Prints a table and writes bench/results/downloads-<scale>.json. Exits 1 if a run failed, a
response was not 200, or the downloads written do not match the downloads served.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import re
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from pages import code_identity, import_harness, load_corpus, log, tools_venv, wait_quiet, wait_settled  # noqa: E402
from workers import copy_data_dir, loaded_marker  # noqa: E402

LOADED = "downloads-loaded.json"

# Random file URLs, a random client address per request; counts the non-2xx responses exactly.
WRK_LUA = r"""
local paths = {}
local pool = 16777216
local threads = {}
local counter = 0
non2xx = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local f = assert(io.open(args[1], "r"))
  for line in f:lines() do
    if #line > 0 then paths[#paths + 1] = line end
  end
  f:close()
  pool = tonumber(args[2]) or pool
  -- A seed per wrk run: a run repeating the warm-up's addresses would be deduplicated.
  math.randomseed((tonumber(args[3]) or 4242) + 7919 * id)
end

function request()
  local p = paths[math.random(#paths)]
  if pool <= 0 then
    return wrk.format("GET", p)
  end
  local a = math.random(0, pool - 1)
  local xff = string.format("10.%d.%d.%d", math.floor(a / 65536) % 256, math.floor(a / 256) % 256, a % 256)
  return wrk.format("GET", p, { ["X-Forwarded-For"] = xff, ["User-Agent"] = "pip/24.0 bench" })
end

function response(status, headers, body)
  if status ~= 200 then non2xx = non2xx + 1 end
end

function done(summary, latency, requests)
  local n = 0
  for _, t in ipairs(threads) do n = n + (tonumber(t:get("non2xx")) or 0) end
  local e = summary.errors
  io.write(string.format(
    'DOWNLOADS_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"err_connect":%d,"err_read":%d,' ..
    '"err_write":%d,"err_timeout":%d,"non200":%d,"lat_p50_us":%d,"lat_p90_us":%d,"lat_p99_us":%d,' ..
    '"lat_mean_us":%.1f,"lat_max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.timeout, n,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max))
end
"""


def loaded(state: Path, params: dict) -> dict | None:
    """The marker of a state holding this corpus: ours, or bench/pages.py's, workers.py's or the harness's."""
    mine = state / LOADED
    if mine.exists():
        found = json.loads(mine.read_text())
        if found.get("corpus_params") == params:
            return found
    return loaded_marker(state, params)


def file_paths(db: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT sha256, filename FROM files WHERE deleted_at IS NULL ORDER BY id").fetchall()
    finally:
        conn.close()
    return [f"/files/{sha}/{name}" for sha, name in rows]


def counted(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT coalesce(sum(count), 0) FROM download_counts").fetchone()[0])
    finally:
        conn.close()


_SEEDS = itertools.count(1)


def run_wrk(a: argparse.Namespace, base: str, lua: Path, paths_file: Path, duration: int) -> dict:
    cmd = ["wrk", f"-t{a.wrk_threads}", f"-c{a.wrk_connections}", f"-d{duration}s", "--timeout", "10s",
           "-s", str(lua), base, "--", str(paths_file), str(a.address_pool), str(next(_SEEDS))]
    cp = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    m = re.search(r"DOWNLOADS_JSON (\{.*\})", cp.stdout)
    if not m:
        raise RuntimeError(f"wrk produced no result rc={cp.returncode}: {cp.stdout[-500:]} {cp.stderr[-500:]}")
    r = json.loads(m.group(1))
    r["cmd"] = " ".join(cmd)
    return r


def measure(ctx: dict, mode: str, round_no: int) -> dict:
    from ib.server import ServerUnderTest, foreign_cpu_delta, foreign_cpu_ticks

    a = ctx["args"]
    run = ctx["state_root"] / f"run-{mode}"
    copy_data_dir(ctx["base"] / "data", run / "data", sqlite_db=True)
    config = run / "moorage.toml"
    config.write_text(f"[downloads]\ncount = {'true' if mode == 'on' else 'false'}\n")
    prof = ctx["profile"](run)
    prof.raw["start"] = dict(prof.raw["start"], cmd=[*prof.raw["start"]["cmd"], "--config", str(config)])
    sut = ServerUnderTest(prof, str(run), log)
    out: dict = {"mode": mode, "round": round_no}
    try:
        sut.start(post_start=False)
        out["settle_s"] = wait_settled(sut, limit_s=120)
        roots = [os.getpid(), sut.proc.pid]
        out["waited_for_quiet_s"] = wait_quiet(roots, a.quiet_wait, a.quiet_cores)
        base = f"http://127.0.0.1:{prof.port}"
        warm = run_wrk(a, base, ctx["lua"], ctx["paths_file"], a.wrk_warmup) if a.wrk_warmup > 0 else None
        f0, cpu0, t0 = foreign_cpu_ticks(roots), sut.monitor.cpu_seconds(), time.perf_counter()
        r = run_wrk(a, base, ctx["lua"], ctx["paths_file"], a.wrk_duration)
        wall = time.perf_counter() - t0
        cpu = sut.monitor.cpu_seconds() - cpu0
        foreign = foreign_cpu_delta(f0, foreign_cpu_ticks(roots)) / os.sysconf("SC_CLK_TCK")
        dur = r["duration_us"] / 1e6
        out.update({
            "rps": round(r["requests"] / dur, 1), "requests": r["requests"], "duration_s": round(dur, 2),
            "p50_ms": round(r["lat_p50_us"] / 1000, 2), "p90_ms": round(r["lat_p90_us"] / 1000, 2),
            "p99_ms": round(r["lat_p99_us"] / 1000, 2), "mean_ms": round(r["lat_mean_us"] / 1000, 2),
            "non200": r["non200"],
            "socket_errors": r["err_connect"] + r["err_read"] + r["err_write"] + r["err_timeout"],
            "mb_per_s": round(r["bytes"] / dur / 1e6, 2),
            "server_cpu_ms_per_req": round(cpu * 1000 / r["requests"], 3) if r["requests"] else None,
            "foreign_cpu_cores_avg": round(foreign / wall, 2), "cmd": r["cmd"],
            "warmup_requests": warm["requests"] if warm else 0,
            "peak_rss_mib": round(sut.monitor.overall["rss_kb"] / 1024, 1),
        })
    except Exception as e:  # noqa: BLE001  (recorded; the other runs still go)
        out["error"] = f"{type(e).__name__}: {e}"
    finally:
        sut.stop()  # SIGTERM: with counting on, the shutdown writes what is still in memory
    if "error" not in out:
        out["downloads_written"] = counted(run / "data" / "moorage.db")
        total = out["requests"] + out["warmup_requests"] - out["non200"]
        out["downloads_served"] = total
        # The server also answers what is in flight when each wrk run ends (up to one request per
        # connection), which wrk does not count.
        # With every request from 127.0.0.1 the dedupe window counts each project once.
        expected = (0, 0) if mode == "off" else (1, ctx["projects"]) if a.address_pool <= 0 else (
            total, total + 2 * a.wrk_connections)
        out["written_matches_served"] = expected[0] <= out["downloads_written"] <= expected[1]
    log(f"round {round_no} counting {mode:3}: " + (out.get("error") or
        f"{out['rps']:,.0f} req/s, p50 {out['p50_ms']} p99 {out['p99_ms']} ms, non-200 {out['non200']}, "
        f"server CPU {out['server_cpu_ms_per_req']} ms/req, others' CPU {out['foreign_cpu_cores_avg']} cores, "
        f"downloads written {out['downloads_written']} of {out['downloads_served']} served"))
    return out


def micro(n: int) -> dict:
    """CPU per download of the counting itself, in this process: a file view's response sent with
    and without the wrapper that records it (the inner response is a small in-memory body, so
    the difference is the wrapper, the dedupe window and the counter), a new client address
    each time (inserts; past 200,000 entries, evictions) and one address (dedupe hits)."""
    import asyncio
    import tempfile

    from starlette.requests import Request
    from starlette.responses import Response

    from moorage.config import Settings
    from moorage.services.context import Context
    from moorage.services.downloads import DownloadCounter
    from moorage.store.blobs import FileBlobStore
    from moorage.store.database import Database
    from moorage.web.files import CountedResponse

    tmp = Path(tempfile.mkdtemp(prefix="moorage-bench-micro-"))
    settings = Settings(data_dir=tmp)
    ctx = Context(settings=settings, db=Database(settings.db_url), blobs=FileBlobStore(tmp / "blobs"))
    counter = DownloadCounter(ctx)  # never flushed here: nothing touches the database
    names = [f"project-{i:04d}" for i in range(2000)]

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        return None

    def scope(i: int, address: str) -> dict:
        return {"type": "http", "method": "GET", "path": f"/files/x/{names[i % 2000]}-1.0.tar.gz",
                "headers": [(b"user-agent", b'pip/24.0 {"ci":null,"cpython":"3.12.1"}')],
                "client": (address, 40000), "query_string": b"", "root_path": ""}

    async def run(wrapped: bool, same_address: bool) -> float:
        scopes = [scope(i, "10.0.0.1" if same_address else f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}")
                  for i in range(n)]
        t0 = time.process_time()
        for i, sc in enumerate(scopes):
            response = Response(b"0123456789", media_type="application/octet-stream")
            if wrapped:
                response = CountedResponse(response, counter, names[i % 2000], Request(sc))
            await response(sc, receive, send)
        return (time.process_time() - t0) / n * 1e6

    out = {"downloads": n}
    for label, wrapped, same in (("plain", False, False), ("counted_new_addresses", True, False),
                                 ("plain_again", False, True), ("counted_one_address", True, True)):
        out[f"{label}_us"] = round(asyncio.run(run(wrapped, same)), 2)
    out["dedupe_entries_at_end"] = counter.dedupe_entries()
    out["cost_new_addresses_us"] = round(out["counted_new_addresses_us"] - out["plain_us"], 2)
    out["cost_one_address_us"] = round(out["counted_one_address_us"] - out["plain_again_us"], 2)
    ctx.close()
    return out


def summarize(res: dict) -> dict:
    by_mode = {m: [r for r in res["runs"] if r["mode"] == m and "error" not in r] for m in ("off", "on")}
    summary: dict = {}
    for m, runs in by_mode.items():
        rps = sorted(r["rps"] for r in runs)
        summary[m] = {"median_rps": round(statistics.median(rps), 1) if rps else None, "rps_sorted": rps,
                      "median_p99_ms": round(statistics.median(r["p99_ms"] for r in runs), 2) if runs else None,
                      "median_cpu_ms_per_req": round(statistics.median(r["server_cpu_ms_per_req"] for r in runs), 3)
                      if runs else None}
    if summary["off"]["median_rps"] and summary["on"]["median_rps"]:
        summary["on_over_off"] = round(summary["on"]["median_rps"] / summary["off"]["median_rps"], 3)
    return summary


def report(res: dict, path: Path) -> None:
    s = res["summary"]
    c = res["corpus"]
    print(f"\nfile downloads, {res['scale']} corpus ({c['files']:,} files), {res['method']}")
    print(f"{'round':>5} {'counting':>8} {'req/s':>10} {'p50 ms':>7} {'p99 ms':>7} {'non-200':>7} "
          f"{'CPU ms/req':>10} {'others cores':>12} {'written/served':>16}")
    for r in res["runs"]:
        if "error" in r:
            print(f"{r['round']:>5} {r['mode']:>8} error: {r['error'][:80]}")
            continue
        print(f"{r['round']:>5} {r['mode']:>8} {r['rps']:>10,.0f} {r['p50_ms']:>7} {r['p99_ms']:>7} {r['non200']:>7} "
              f"{r['server_cpu_ms_per_req']:>10} {r['foreign_cpu_cores_avg']:>12} "
              f"{r['downloads_written']:>7}/{r['downloads_served']:<8}")
    for m in ("off", "on"):
        print(f"counting {m}: median {s[m]['median_rps']} req/s (runs {s[m]['rps_sorted']}), "
              f"median p99 {s[m]['median_p99_ms']} ms, median server CPU {s[m]['median_cpu_ms_per_req']} ms/req")
    if "on_over_off" in s:
        print(f"counting on / counting off: {s['on_over_off']:.3f} (the issue asks for at least 0.9)")
    m = res.get("micro")
    if m:
        print(f"in-process, {m['downloads']:,} downloads: counting costs {m['cost_new_addresses_us']} us of CPU per "
              f"download with a new address each time, {m['cost_one_address_us']} us with one address "
              f"(response alone {m['plain_us']} us)")
    print(f"results -> {path}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--indexbench", default=os.environ.get("INDEXBENCH"),
                    help="directory of the indexbench harness (default: $INDEXBENCH)")
    ap.add_argument("--scale", default="small", help="harness corpus scale (tiny, small, medium, large)")
    ap.add_argument("--venv", default=sys.prefix,
                    help="virtual environment whose `moorage` is served (default: the one running this script)")
    ap.add_argument("--tools-venv", default=None, help="venv with twine for loading (default: --venv or the harness's)")
    ap.add_argument("--profile", default=str(HERE / "profiles" / "moorage.toml"))
    ap.add_argument("--port", type=int, default=18094)
    ap.add_argument("--repeats", type=int, default=3, help="rounds; each measures counting off and on")
    ap.add_argument("--wrk-threads", type=int, default=2)
    ap.add_argument("--wrk-connections", type=int, default=32)
    ap.add_argument("--wrk-duration", type=int, default=15, help="seconds per measured wrk run")
    ap.add_argument("--wrk-warmup", type=int, default=3, help="unrecorded warm-up seconds")
    ap.add_argument("--address-pool", type=int, default=1 << 24,
                    help="random X-Forwarded-For addresses per request from this many (0: no header, all "
                         "from 127.0.0.1, so the dedupe window leaves nearly everything out)")
    ap.add_argument("--quiet-wait", type=float, default=60,
                    help="before each measurement wait up to this long for other processes to go idle")
    ap.add_argument("--quiet-cores", type=float, default=0.25)
    ap.add_argument("--micro", type=int, default=300_000,
                    help="downloads for the in-process measurement of counting's own CPU (0: skip it)")
    ap.add_argument("--source", default=None,
                    help="a loaded state (default /tmp/bench-state-moorage-pages-<scale> if it holds the corpus)")
    ap.add_argument("--state-root", default=None, help="default /tmp/bench-state-moorage-downloads-<scale>")
    ap.add_argument("--results", default=None, help="default bench/results/downloads-<scale>.json")
    ap.add_argument("--show", metavar="JSON", help="print the table of an earlier run's results file and exit")
    a = ap.parse_args()
    if a.show:
        report(json.loads(Path(a.show).read_text()), Path(a.show))
        return 0
    for k in [k for k in os.environ if k.startswith(("MOORAGE_", "PROMETHEUS_MULTIPROC_DIR"))]:
        os.environ.pop(k)  # the embedded default and the configuration written here, nothing inherited

    import_harness(a.indexbench)
    from ib import corpus
    from ib.server import ServerUnderTest, load_profile

    P, R = corpus.SCALES[a.scale]
    corpus_dir = corpus.corpus_dir_for(a.scale)
    manifest = corpus.generate(corpus_dir, P, R, log=log)
    state_root = Path(a.state_root or f"/tmp/bench-state-moorage-downloads-{a.scale}")
    state_root.mkdir(parents=True, exist_ok=True)
    venv = os.path.abspath(a.venv)

    def profile(state: Path):  # type: ignore[no-untyped-def]
        prof = load_profile(a.profile, str(state), corpus_dir, a.scale, a.port)
        prof.vars["venv"] = venv  # serve this environment's moorage
        prof.vars["workers"] = "1"
        return prof

    source = Path(a.source or f"/tmp/bench-state-moorage-pages-{a.scale}")
    base_marker = loaded(source, manifest["params"])
    if base_marker is None:
        source = state_root / "base"
        base_marker = loaded(source, manifest["params"])
    if base_marker is None:
        log(f"loading the {a.scale} corpus ({manifest['stats']['files']} files) into {source}")
        prof = profile(source)
        sut = ServerUnderTest(prof, str(source), log)
        sut.prepare()  # wipes the state directory
        t0 = time.perf_counter()
        try:
            sut.start()
            upload = load_corpus(prof, sut, manifest, corpus_dir, a.scale, tools_venv(venv, a.tools_venv))
        finally:
            sut.stop()
        if upload.get("failed_batch_count") or upload.get("timed_out"):
            raise SystemExit(f"loading failed: {json.dumps(upload)[:2000]}")
        base_marker = {"corpus_params": manifest["params"], "loaded": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                       "upload": upload, "load_wall_s": round(time.perf_counter() - t0, 1)}
        (source / LOADED).write_text(json.dumps(base_marker))
        log(f"loaded in {base_marker['load_wall_s']} s")

    paths = file_paths(source / "data" / "moorage.db")
    if len(paths) != manifest["stats"]["files"]:
        raise SystemExit(f"{source}: {len(paths)} files, the corpus has {manifest['stats']['files']}")
    paths_file = state_root / "file-paths.txt"
    paths_file.write_text("\n".join(paths) + "\n")
    lua = state_root / "random_file.lua"
    lua.write_text(WRK_LUA)

    ctx = {"args": a, "state_root": state_root, "base": source, "profile": profile, "lua": lua,
           "paths_file": paths_file, "projects": manifest["stats"]["projects"]}
    results_path = Path(a.results or HERE / "results" / f"downloads-{a.scale}.json")
    res: dict = {
        "schema": 1, "scale": a.scale, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "corpus": manifest["stats"], "base_state": str(source),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "kernel": platform.release(),
                    "loadavg_at_start": os.getloadavg()},
        "code": code_identity(venv),
        "method": (f"wrk -t{a.wrk_threads} -c{a.wrk_connections} -d{a.wrk_duration}s --timeout 10s over all "
                   f"{len(paths)} file URLs (random), X-Forwarded-For random from {a.address_pool} addresses, "
                   f"{a.wrk_warmup} s warm-up; one worker, embedded SQLite, default [downloads] but count; "
                   f"{a.repeats} rounds alternating the order of off and on; medians"),
        "runs": [],
    }

    def save() -> None:
        res["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        res["summary"] = summarize(res)
        results_path.parent.mkdir(parents=True, exist_ok=True)
        results_path.write_text(json.dumps(res, indent=1))

    for i in range(a.repeats):
        for mode in (("off", "on") if i % 2 == 0 else ("on", "off")):
            res["runs"].append(measure(ctx, mode, i + 1))
            save()
    if a.micro > 0:
        log(f"in-process: {a.micro:,} downloads with and without counting")
        res["micro"] = micro(a.micro)
    save()
    report(res, results_path)
    bad = [r for r in res["runs"] if "error" in r or r.get("non200") or r.get("socket_errors")
           or not r.get("written_matches_served")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
