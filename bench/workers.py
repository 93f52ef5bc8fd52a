"""Requests per second of /simple/<project>/ with 1, 2 and 4 worker processes, on SQLite and on
PostgreSQL, and upload throughput with 1 and 8 concurrent twine processes.

    INDEXBENCH=/path/to/indexbench python bench/workers.py [--scale medium]
    INDEXBENCH=/path/to/indexbench python bench/workers.py --databases sqlite --workers 1 2
    python bench/workers.py --show bench/results/workers-medium.json      # print an earlier table

Run it with the Python of a virtual environment that has moorage installed (its `moorage` is the
server, as for bench/pages.py). PostgreSQL is reached at --pg-url (default
postgresql+psycopg://postgres@127.0.0.1:5432/moorage_bench_workers_<scale>, or
$MOORAGE_BENCH_PG_URL); the script creates and drops that database and `<name>_base`, through the
maintenance database --pg-maintenance-db. Steps:

1. Loaded states, made once and never written afterwards ("base"):
   - SQLite: the state bench/pages.py loads (/tmp/bench-state-moorage-pages-<scale>, --sqlite-source)
     if it holds the corpus; otherwise the corpus is loaded into <state-root>/sqlite-base.
   - PostgreSQL: database `<name>_base` with its data directory <state-root>/postgresql-base (blobs,
     keys), loaded once: `moorage db upgrade`, `moorage serve` (one worker), the whole corpus
     uploaded with the harness's own upload code (bench/pages.py's load_corpus: twine, 25 projects
     per invocation). --reload-postgresql loads it again.
   Loading uses moorage's harness profile (bench/profiles/moorage.toml).
2. Each run works on fresh copies, so every run starts from the same corpus and uploads never
   reach the base: the SQLite database is copied with SQLite's backup API, the PostgreSQL one with
   CREATE DATABASE ... TEMPLATE; blobs are hard-linked (they are content-addressed and never
   rewritten), the key files copied.
3. Reads, per database and per worker count (--workers, default 1 2 4): `moorage serve --workers N`,
   wait until the start-up cache warming is done, then the harness's own wrk phase (its Run.wrk:
   `wrk -t2 -c32 -d15s --timeout 10s` with its random_project.lua over all project names,
   Accept: text/html, an unrecorded 3 s warm-up, then --wrk-repeats runs; the median-rps run is
   reported, with all runs' rps).
4. Uploads, per database and per worker count (--upload-workers, default 4 1): new releases of
   corpus projects (sdist and two wheels each, built with the harness's corpus code before the
   clock starts), --upload-files files per trial, uploaded by 1 twine process (all of them) or by
   8 concurrent twine processes (each its own eighth: its own projects), as `__token__`, each
   process with its own API token of the admin (`moorage token create`; --upload-tokens shared: one
   token for all of them). Wall time from starting the first twine to the end of the last;
   files/s = files / wall. --upload-repeats trials each; the median of the trials in which every
   twine exited 0 and every file is on its project's page afterwards (the others are counted as
   failed trials, with twine's output in the JSON).

Before each measurement the script waits (bounded, --quiet-wait) until processes other than itself
and the server use fewer than --quiet-cores CPUs, and records what they used during it. Client and
server share the machine: on 2 cores, 4 workers share them with wrk (or with 8 twine processes).
Prints two tables and writes bench/results/workers-<scale>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from pages import (  # noqa: E402  (bench/pages.py: shared helpers)
    HARNESS_MARKER,
    MARKER,
    code_identity,
    import_harness,
    load_corpus,
    log,
    tools_venv,
    wait_quiet,
    wait_settled,
)

LOADED = "workers-loaded.json"  # written in a base state once the corpus is in it
DATABASES = ("sqlite", "postgresql")


# ------------------------------------------------------------------------------ PostgreSQL
def pg_names(url: str) -> tuple[str, str]:
    """The run database's name (from the URL) and the base database's (`<name>_base`)."""
    import sqlalchemy as sa

    name = sa.engine.make_url(url).database
    if not name or not name.replace("_", "").isalnum():
        raise SystemExit(f"--pg-url: the database name must be letters, digits and _: {name!r}")
    return name, f"{name}_base"


def pg_url_for(url: str, database: str) -> str:
    import sqlalchemy as sa

    return sa.engine.make_url(url).set(database=database).render_as_string(hide_password=False)


def pg_admin(url: str, maintenance_db: str):  # type: ignore[no-untyped-def]
    import psycopg
    import sqlalchemy as sa

    u = sa.engine.make_url(url)
    return psycopg.connect(host=u.host or "127.0.0.1", port=u.port or 5432, user=u.username,
                           password=u.password, dbname=maintenance_db, autocommit=True, connect_timeout=10)


def pg_recreate(url: str, maintenance_db: str, name: str, template: str | None = None) -> None:
    with pg_admin(url, maintenance_db) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))


def pg_drop(url: str, maintenance_db: str, name: str) -> None:
    with pg_admin(url, maintenance_db) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ------------------------------------------------------------------------------ states
def set_database(url: str | None) -> None:
    """The server and the CLI (password_cmd, db upgrade) inherit this process's environment."""
    if url:
        os.environ["MOORAGE_DATABASE_URL"] = url
    else:
        os.environ.pop("MOORAGE_DATABASE_URL", None)


def loaded_marker(state: Path, params: dict) -> dict | None:
    """The marker of a state that holds this corpus (ours, bench/pages.py's or the harness's)."""
    for m in (state / LOADED, state / MARKER, state / HARNESS_MARKER):
        if m.exists():
            found = json.loads(m.read_text())
            if found.get("corpus_params") == params:
                return found | {"marker": m.name}
    return None


def load_base(ctx: dict, db: str, state: Path, pg_url: str | None) -> dict:
    """Load the whole corpus into a fresh base state (and, for PostgreSQL, a fresh database)."""
    from ib.server import ServerUnderTest

    a, manifest = ctx["args"], ctx["manifest"]
    prof = ctx["profile"](state, workers=1)
    log(f"loading the {a.scale} corpus ({manifest['stats']['files']} files) into {db} at {state}"
        + (f" ({pg_url})" if pg_url else ""))
    t0 = time.perf_counter()
    sut = ServerUnderTest(prof, str(state), log)
    sut.prepare()  # wipes the state directory
    set_database(pg_url)
    if pg_url:
        cli(ctx, state, "db", "upgrade")
    try:
        sut.start()
        upload = load_corpus(prof, sut, manifest, ctx["corpus_dir"], a.scale, ctx["tools"])
    finally:
        sut.stop()
    if upload.get("failed_batch_count") or upload.get("timed_out"):
        raise SystemExit(f"loading {db} failed: {json.dumps(upload)[:2000]}")
    marker = {"database": db, "database_url": pg_url, "corpus_params": manifest["params"],
              "loaded": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "upload": upload,
              "load_wall_s": round(time.perf_counter() - t0, 1)}
    (state / LOADED).write_text(json.dumps(marker))
    log(f"loaded {db} in {marker['load_wall_s']} s ({upload['files_per_s']} files/s through twine)")
    return marker | {"marker": LOADED}


def copy_data_dir(src: Path, dst: Path, sqlite_db: bool) -> None:
    """A working copy of a data directory: the database through SQLite's backup API (consistent
    even if a server has it open), blobs hard-linked (content-addressed, never rewritten), the
    key files copied."""
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    shutil.copytree(src / "blobs", dst / "blobs", copy_function=os.link,
                    ignore=lambda d, names: ["tmp"] if Path(d) == src / "blobs" else [])
    (dst / "blobs" / "tmp").mkdir()
    for key in ("log-signing-key", "web-secret"):
        if (src / key).exists():
            shutil.copy2(src / key, dst / key)
    if sqlite_db:
        source = sqlite3.connect(f"file:{src / 'moorage.db'}?mode=ro", uri=True)
        target = sqlite3.connect(dst / "moorage.db")
        try:
            source.backup(target)
        finally:
            source.close()
            target.close()


def sqlite_base(ctx: dict) -> tuple[Path, dict]:
    """The loaded SQLite state: --sqlite-source (bench/pages.py's) if it holds the corpus, else ours."""
    a, params = ctx["args"], ctx["manifest"]["params"]
    set_database(None)
    source = Path(a.sqlite_source or f"/tmp/bench-state-moorage-pages-{a.scale}")
    base = loaded_marker(source, params)
    if base is None:
        source = ctx["state_root"] / "sqlite-base"
        base = loaded_marker(source, params) or load_base(ctx, "sqlite", source, None)
    return source, base


def migrate_base(ctx: dict, state: Path, pg_url: str) -> dict:
    """The PostgreSQL base as a copy of the SQLite base: `moorage db migrate-from-sqlite`."""
    sqlite_state, sqlite_marker = sqlite_base(ctx)
    if state.exists():
        shutil.rmtree(state)
    (state / "data").mkdir(parents=True)
    t0 = time.perf_counter()
    set_database(pg_url)
    cli(ctx, state, "db", "upgrade")
    log(f"migrating {sqlite_state} into {pg_url}")
    summary = cli(ctx, state, "db", "migrate-from-sqlite", str(sqlite_state / "data"))
    marker = {"database": "postgresql", "database_url": pg_url, "corpus_params": ctx["manifest"]["params"],
              "loaded": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "migrated_from": str(sqlite_state),
              "sqlite_loaded": sqlite_marker.get("loaded"), "load_wall_s": round(time.perf_counter() - t0, 1),
              "summary": summary[-2000:]}
    (state / LOADED).write_text(json.dumps(marker))
    log(f"migrated in {marker['load_wall_s']} s")
    return marker | {"marker": LOADED}


def prepare_run_state(ctx: dict, db: str) -> dict:
    """Fresh working copies of the base state of `db`: (state dir, database URL or None, base info)."""
    a, params = ctx["args"], ctx["manifest"]["params"]
    root = ctx["state_root"]
    if db == "sqlite":
        source, base = sqlite_base(ctx)
        run = root / "sqlite"
        t0 = time.perf_counter()
        if run.exists():
            shutil.rmtree(run)
        copy_data_dir(source / "data", run / "data", sqlite_db=True)
        log(f"sqlite: working copy of {source} in {time.perf_counter() - t0:.1f} s")
        return {"state": run, "url": None, "base_state": str(source), "base": base}
    name, base_name = pg_names(a.pg_url)
    base_url = pg_url_for(a.pg_url, base_name)
    source = root / "postgresql-base"
    base = None if a.reload_postgresql else loaded_marker(source, params)
    if base is not None and base.get("database_url") != base_url:
        base = None
    if base is None:
        pg_recreate(a.pg_url, a.pg_maintenance_db, base_name)
        if a.pg_load == "migrate":
            base = migrate_base(ctx, source, base_url)
        else:
            base = load_base(ctx, "postgresql", source, base_url)
    run = root / "postgresql"
    t0 = time.perf_counter()
    if run.exists():
        shutil.rmtree(run)
    copy_data_dir(source / "data", run / "data", sqlite_db=False)
    pg_recreate(a.pg_url, a.pg_maintenance_db, name, template=base_name)
    set_database(a.pg_url)
    log(f"postgresql: working copy of {base_name} as {name} in {time.perf_counter() - t0:.1f} s")
    return {"state": run, "url": a.pg_url, "base_state": str(source), "base_database": base_name, "base": base}


def cli(ctx: dict, state: Path, *args: str) -> str:
    from ib.server import _clean_env

    cmd = [os.path.join(ctx["venv"], "bin", "moorage"), *args, "--data-dir", str(state / "data")]
    cp = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=_clean_env())
    if cp.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: rc={cp.returncode}\n{cp.stdout[-1000:]}\n{cp.stderr[-1000:]}")
    return cp.stdout


# ------------------------------------------------------------------------------ reads
def measure_reads(ctx: dict, db: str, state: Path, workers: int) -> dict:
    from ib.httpc import ACCEPT_HTML, ACCEPT_JSON
    from ib.runner import Run
    from ib.server import ServerUnderTest, foreign_cpu_delta, foreign_cpu_ticks

    a = ctx["args"]
    prof = ctx["profile"](state, workers=workers)
    sut = ServerUnderTest(prof, str(state), log)
    out: dict = {"database": db, "workers": workers}
    try:
        sut.start(post_start=False)
        out["cmd"] = prof.get("start")["cmd"]
        out["startup_s"] = round(sut.startup_s, 3)
        out["settle_s"] = wait_settled(sut, limit_s=180)
        run = Run(argparse.Namespace(scale=a.scale, tools_venv=ctx["tools"], wrk_threads=a.wrk_threads,
                                     wrk_connections=a.wrk_connections, wrk_duration=a.wrk_duration,
                                     wrk_warmup=a.wrk_warmup, wrk_repeats=a.wrk_repeats))
        run.prof, run.sut, run.names_file = prof, sut, ctx["names_file"]
        roots = [os.getpid(), sut.proc.pid]
        for label, accept in (("html", ACCEPT_HTML), ("json", ACCEPT_JSON))[: 2 if a.json else 1]:
            waited = wait_quiet(roots, a.quiet_wait, a.quiet_cores)
            f0, t0 = foreign_cpu_ticks(roots), time.perf_counter()
            r = run.wrk(accept)
            r["foreign_cpu_cores_avg"] = round(foreign_cpu_delta(f0, foreign_cpu_ticks(roots))
                                               / os.sysconf("SC_CLK_TCK") / (time.perf_counter() - t0), 2)
            r["waited_for_quiet_s"] = waited
            out[label] = r
            log(f"{db:10} {workers} worker(s) {label}: {r['rps']:,.0f} req/s (runs {r['repeats_rps_sorted']}), "
                f"p50 {r['p50_ms']} p90 {r['p90_ms']} p99 {r['p99_ms']} ms, non-2xx {r['non2xx']}, "
                f"socket errors {r['socket_errors']}, others' CPU {r['foreign_cpu_cores_avg']} cores")
        out["peak_rss_mib"] = round(sut.monitor.overall["rss_kb"] / 1024, 1)
        out["peak_pss_mib"] = round(sut.monitor.overall["pss_kb"] / 1024, 1)
        out["processes"] = sut.monitor.overall["nproc"]
    except Exception as e:  # noqa: BLE001  (recorded; the other configurations still run)
        out["error"] = f"{type(e).__name__}: {e}"
        log(f"!! {db} {workers} worker(s): {out['error']}")
    finally:
        sut.stop()
    return out


# ------------------------------------------------------------------------------ uploads
def build_trial(ctx: dict, outdir: Path, trial: int, procs: int, nfiles: int) -> tuple[list[list[str]], dict]:
    """`nfiles` new files (releases of 3: sdist and two wheels) split into `procs` sets, each set
    the releases of its own projects; version <major>.<100 + trial>.0 is new in every project."""
    from ib import corpus

    projects = ctx["manifest"]["projects"]
    releases = nfiles // 3
    if releases % procs or releases > len(projects):
        raise SystemExit(f"--upload-files {nfiles}: need a multiple of {3 * procs} and at most "
                         f"{3 * len(projects)}")
    per = releases // procs
    sets: list[list[str]] = []
    expected: dict[str, list[str]] = {}
    for i in range(procs):
        d = outdir / f"t{trial:02d}-p{i}"
        d.mkdir(parents=True, exist_ok=True)
        files = []
        for k in range(per):
            pd = projects[(trial * 131 + i * per + k) % len(projects)]
            p = corpus.project_from_manifest(pd)
            version = f"{p.major}.{100 + trial}.0"
            for fi, data in corpus.build_release(p, version):
                path = d / fi.filename
                path.write_bytes(data)
                files.append(str(path))
                expected.setdefault(p.name, []).append(fi.filename)
        sets.append(files)
    return sets, expected


def upload_trial(ctx: dict, up: dict, tokens: list[str], sets: list[list[str]], expected: dict[str, list[str]],
                 sut) -> dict:  # type: ignore[no-untyped-def]
    from ib import httpc
    from ib.server import _clean_env

    a = ctx["args"]
    env = _clean_env({"TWINE_NON_INTERACTIVE": "1", "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring"})
    twine = os.path.join(ctx["tools"], "bin", "twine")
    cpu0 = sut.monitor.cpu_seconds()
    ends: list[float] = [0.0] * len(sets)
    failures: list[dict] = []

    def wait_for(i: int, proc: subprocess.Popen, n: int) -> None:  # type: ignore[type-arg]
        try:
            output, _ = proc.communicate(timeout=a.upload_timeout)
        except subprocess.TimeoutExpired:
            proc.kill()  # a twine process this script started
            output, _ = proc.communicate()
        ends[i] = time.perf_counter() - t0
        if proc.returncode != 0:
            failures.append({"process": i, "files": n, "rc": proc.returncode,
                             "tail": output.decode(errors="replace")[-600:]})

    t0 = time.perf_counter()
    running = []
    for i, files in enumerate(sets):
        cmd = [twine, "upload", "--non-interactive", "--disable-progress-bar", "--repository-url", up["url"],
               "-u", up["username"], "-p", tokens[i % len(tokens)], *files]
        running.append((subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env), len(files)))
    waiters = [threading.Thread(target=wait_for, args=(i, proc, n)) for i, (proc, n) in enumerate(running)]
    for w in waiters:
        w.start()
    for w in waiters:
        w.join()
    wall = max(ends)
    server_cpu = sut.monitor.cpu_seconds() - cpu0
    missing = 0
    for name, filenames in expected.items():  # every file is on its project's page
        st, _h, body, _t = httpc.get(f"{sut.p.simple_url}{name}/", httpc.ACCEPT_HTML, timeout=30)
        text = body.decode("utf-8", "replace")
        missing += len(filenames) if st != 200 else sum(1 for f in filenames if f not in text)
    nfiles = sum(len(s) for s in sets)
    return {"processes": len(sets), "files": nfiles, "wall_s": round(wall, 3),
            "files_per_s": round(nfiles / wall, 1), "process_wall_s": sorted(round(e, 2) for e in ends),
            "server_cpu_s": round(server_cpu, 2), "server_cpu_ms_per_file": round(server_cpu * 1000 / nfiles, 2),
            "failures": failures, "files_missing_from_pages": missing}


def measure_uploads(ctx: dict, db: str, state: Path, workers: int, first_trial: int) -> dict:
    from ib.server import ServerUnderTest, foreign_cpu_delta, foreign_cpu_ticks

    a = ctx["args"]
    prof = ctx["profile"](state, workers=workers)
    sut = ServerUnderTest(prof, str(state), log)
    out: dict = {"database": db, "workers": workers, "runs": {}}
    trial = first_trial
    staging = state / "upload-files"
    try:
        sut.start(post_start=False)
        out["settle_s"] = wait_settled(sut, limit_s=180)
        up = dict(prof.get("upload"))
        # One token per twine process (independent publishers), or one for all (one CI job's token).
        tokens = [cli(ctx, state, "token", "create", "admin", "--description", f"bench/workers.py {i}").strip()
                  for i in range(max(a.upload_processes) if a.upload_tokens == "per-process" else 1)]
        out["tokens"] = a.upload_tokens
        roots = [os.getpid(), sut.proc.pid]
        for procs in a.upload_processes:
            trials = []
            for _rep in range(a.upload_repeats):
                sets, expected = build_trial(ctx, staging, trial, procs, a.upload_files)
                trial += 1
                waited = wait_quiet(roots, a.quiet_wait, a.quiet_cores)
                f0, t0 = foreign_cpu_ticks(roots), time.perf_counter()
                r = upload_trial(ctx, up, tokens, sets, expected, sut)
                r["foreign_cpu_cores_avg"] = round(foreign_cpu_delta(f0, foreign_cpu_ticks(roots))
                                                   / os.sysconf("SC_CLK_TCK") / (time.perf_counter() - t0), 2)
                r["waited_for_quiet_s"] = waited
                trials.append(r)
                log(f"{db:10} {workers} worker(s), {procs} twine: {r['files']} files in {r['wall_s']} s = "
                    f"{r['files_per_s']} files/s; failures {len(r['failures'])}, "
                    f"missing {r['files_missing_from_pages']}, "
                    f"others' CPU {r['foreign_cpu_cores_avg']} cores")
                shutil.rmtree(staging, ignore_errors=True)
            ok = [t for t in trials if not t["failures"] and not t["files_missing_from_pages"]]
            walls = sorted(t["wall_s"] for t in ok)
            out["runs"][str(procs)] = {
                "processes": procs, "files": a.upload_files, "trials": trials, "failed_trials": len(trials) - len(ok),
                "median_wall_s": round(statistics.median(walls), 3) if walls else None,
                "median_files_per_s": round(a.upload_files / statistics.median(walls), 1) if walls else None,
                "files_per_s_sorted": sorted(t["files_per_s"] for t in ok),
            }
        out["peak_rss_mib"] = round(sut.monitor.overall["rss_kb"] / 1024, 1)
    except Exception as e:  # noqa: BLE001
        out["error"] = f"{type(e).__name__}: {e}"
        log(f"!! uploads {db} {workers} worker(s): {out['error']}")
    finally:
        sut.stop()
    out["next_trial"] = trial
    return out


# ------------------------------------------------------------------------------ main
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--indexbench", default=os.environ.get("INDEXBENCH"),
                    help="directory of the indexbench harness (default: $INDEXBENCH)")
    ap.add_argument("--scale", default="medium", help="harness corpus scale (tiny, small, medium, large)")
    ap.add_argument("--venv", default=sys.prefix,
                    help="virtual environment whose `moorage` is served (default: the one running this script)")
    ap.add_argument("--tools-venv", default=None,
                    help="venv with twine (default: --venv if it has twine, else the harness's)")
    ap.add_argument("--profile", default=str(HERE / "profiles" / "moorage.toml"))
    ap.add_argument("--port", type=int, default=18093, help="the servers' port (default 18093)")
    ap.add_argument("--databases", nargs="+", choices=DATABASES, default=list(DATABASES))
    ap.add_argument("--workers", nargs="+", type=int, default=[1, 2, 4], help="worker counts for the reads")
    ap.add_argument("--upload-workers", nargs="+", type=int, default=[4, 1], help="worker counts for uploads")
    ap.add_argument("--upload-processes", nargs="+", type=int, default=[1, 8],
                    help="concurrent twine processes (default 1 8)")
    ap.add_argument("--upload-files", type=int, default=384, help="files per upload trial (default 384)")
    ap.add_argument("--upload-repeats", type=int, default=3)
    ap.add_argument("--upload-tokens", choices=("per-process", "shared"), default="per-process",
                    help="each twine process has its own API token (default), or all share one")
    ap.add_argument("--upload-timeout", type=float, default=900, help="one upload trial, s")
    ap.add_argument("--skip-reads", action="store_true")
    ap.add_argument("--skip-uploads", action="store_true")
    ap.add_argument("--json", action="store_true", help="also drive PEP 691 JSON pages")
    ap.add_argument("--wrk-threads", type=int, default=2)
    ap.add_argument("--wrk-connections", type=int, default=32)
    ap.add_argument("--wrk-duration", type=int, default=15, help="seconds per measured wrk run (harness: 15)")
    ap.add_argument("--wrk-warmup", type=int, default=3, help="unrecorded warm-up seconds (harness: 3)")
    ap.add_argument("--wrk-repeats", type=int, default=3)
    ap.add_argument("--quiet-wait", type=float, default=60,
                    help="before each measurement wait up to this long for other processes to go idle (0: no wait)")
    ap.add_argument("--quiet-cores", type=float, default=0.25)
    ap.add_argument("--sqlite-source", default=None,
                    help="a loaded SQLite state (default /tmp/bench-state-moorage-pages-<scale>, bench/pages.py's); "
                         "read only")
    ap.add_argument("--state-root", default=None, help="default /tmp/bench-state-moorage-workers-<scale>")
    ap.add_argument("--pg-url", default=os.environ.get("MOORAGE_BENCH_PG_URL"),
                    help="PostgreSQL URL of the run database (created and dropped; <name>_base holds the corpus); "
                         "default postgresql+psycopg://postgres@127.0.0.1:5432/moorage_bench_workers_<scale>")
    ap.add_argument("--pg-maintenance-db", default=os.environ.get("MOORAGE_BENCH_PG_MAINTENANCE_DB", "postgres"),
                    help="database to connect to for CREATE/DROP DATABASE (default postgres)")
    ap.add_argument("--reload-postgresql", action="store_true", help="load the PostgreSQL base again")
    ap.add_argument("--pg-load", choices=("upload", "migrate"), default="upload",
                    help="how the PostgreSQL base is loaded: the corpus uploaded with twine (default), or the "
                         "SQLite base copied with `moorage db migrate-from-sqlite`")
    ap.add_argument("--keep-run-database", action="store_true", help="do not drop the PostgreSQL run database")
    ap.add_argument("--results", default=None, help="default bench/results/workers-<scale>.json")
    ap.add_argument("--show", metavar="JSON", help="print the tables of an earlier run's results file and exit")
    a = ap.parse_args()
    if a.show:
        report(json.loads(Path(a.show).read_text()), Path(a.show))
        return 0
    a.pg_url = a.pg_url or f"postgresql+psycopg://postgres@127.0.0.1:5432/moorage_bench_workers_{a.scale}"
    for k in [k for k in os.environ if k.startswith(("MOORAGE_CONFIG", "MOORAGE_DATA_DIR", "MOORAGE_DATABASE_URL",
                                                      "MOORAGE_BLOB_"))]:
        os.environ.pop(k)  # the embedded default and the URL given here, nothing inherited

    import_harness(a.indexbench)
    from ib import corpus
    from ib.server import load_profile

    P, R = corpus.SCALES[a.scale]
    corpus_dir = corpus.corpus_dir_for(a.scale)
    manifest = corpus.generate(corpus_dir, P, R, log=log)
    state_root = Path(a.state_root or f"/tmp/bench-state-moorage-workers-{a.scale}")
    state_root.mkdir(parents=True, exist_ok=True)
    names_file = state_root / "names.txt"
    names_file.write_text("\n".join(p["name"] for p in manifest["projects"]) + "\n")
    venv = os.path.abspath(a.venv)

    def profile(state: Path, workers: int):  # type: ignore[no-untyped-def]
        prof = load_profile(a.profile, str(state), corpus_dir, a.scale, a.port)
        prof.vars["venv"] = venv  # serve this environment's moorage
        prof.vars["workers"] = str(workers)
        return prof

    ctx = {"args": a, "manifest": manifest, "corpus_dir": corpus_dir, "state_root": state_root,
           "names_file": str(names_file), "venv": venv, "tools": tools_venv(venv, a.tools_venv), "profile": profile}
    results_path = Path(a.results or HERE / "results" / f"workers-{a.scale}.json")
    res: dict = {
        "schema": 1, "scale": a.scale, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "corpus": manifest["stats"],
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "kernel": platform.release()},
        "code": code_identity(venv),
        "method": {
            "reads": f"harness wrk phase: wrk -t{a.wrk_threads} -c{a.wrk_connections} -d{a.wrk_duration}s "
                     f"--timeout 10s, random_project.lua over all {P} project names, {a.wrk_warmup} s warm-up, "
                     f"{a.wrk_repeats} runs, the median-rps run reported",
            "uploads": f"{a.upload_files} new files per trial (releases of sdist + 2 wheels of corpus projects), "
                       f"split among N concurrent twine processes, each its own projects, "
                       f"{'each its own API token' if a.upload_tokens == 'per-process' else 'all one API token'}; "
                       f"wall from the first start to the last exit; {a.upload_repeats} trials, the median",
        },
        "reads": [], "uploads": [], "states": {},
    }

    def save() -> None:
        res["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        results_path.parent.mkdir(parents=True, exist_ok=True)
        results_path.write_text(json.dumps(res, indent=1))

    trial = 0
    try:
        for db in a.databases:
            st = prepare_run_state(ctx, db)
            res["states"][db] = {k: v for k, v in st.items() if k != "state"} | {"state": str(st["state"])}
            if not a.skip_reads:
                for n in a.workers:
                    res["reads"].append(measure_reads(ctx, db, st["state"], n))
                    save()
            if not a.skip_uploads:
                for n in a.upload_workers:
                    r = measure_uploads(ctx, db, st["state"], n, trial)
                    trial = r.pop("next_trial")
                    res["uploads"].append(r)
                    save()
            if db == "postgresql" and not a.keep_run_database:
                pg_drop(a.pg_url, a.pg_maintenance_db, pg_names(a.pg_url)[0])
    finally:
        set_database(None)
        save()
    report(res, results_path)
    bad = [r for r in res["reads"] + res["uploads"] if "error" in r]
    return 1 if bad else 0


def report(res: dict, path: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    c = res["corpus"]
    cpus = res["machine"]["cpus"]
    console = Console(width=max(150, Console().width))
    shared = (f"client and server share the machine's {cpus} cores: with 4 workers the server's processes "
              f"share them with wrk (reads) or with the twine processes (uploads)")
    if res["reads"]:
        t = Table(title=f"/simple/<project>/ (HTML), {res['scale']} corpus ({c['projects']:,} projects, "
                        f"{c['files']:,} files); {res['method']['reads']}")
        for col in ("database", "workers", "req/s", "runs req/s", "p50 ms", "p90 ms", "p99 ms", "non-2xx",
                    "socket errors", "server CPU ms/req", "peak RSS MiB", "others' CPU, cores"):
            t.add_column(col, justify="left" if col in ("database", "runs req/s") else "right")
        for r in res["reads"]:
            h = r.get("html") or {}
            if "error" in r or "rps" not in h:
                why = r.get("error") or h.get("error", "")
                t.add_row(r["database"], str(r["workers"]), "[red]error[/red]", why[:60])
                continue
            t.add_row(r["database"], str(r["workers"]), f"{h['rps']:,.0f}",
                      " / ".join(f"{x:,.0f}" for x in h["repeats_rps_sorted"]), f"{h['p50_ms']:.2f}",
                      f"{h['p90_ms']:.2f}", f"{h['p99_ms']:.2f}", str(h["non2xx"]), str(h["socket_errors"]),
                      f"{h['server_cpu_ms_per_req']}", f"{r.get('peak_rss_mib')}", f"{h['foreign_cpu_cores_avg']}")
        console.print(t)
    if res["uploads"]:
        t = Table(title=f"uploads with twine, {res['method']['uploads']}")
        for col in ("database", "workers", "twine processes", "files", "median wall s", "files/s (median)",
                    "trials files/s", "failed trials", "server CPU ms/file", "others' CPU, cores"):
            t.add_column(col, justify="left" if col in ("database", "trials files/s") else "right")
        for r in res["uploads"]:
            if "error" in r and not r["runs"]:
                t.add_row(r["database"], str(r["workers"]), "[red]error[/red]", r["error"][:60])
                continue
            for procs, u in r["runs"].items():
                tr = u["trials"]
                cpu = statistics.median([x["server_cpu_ms_per_file"] for x in tr]) if tr else None
                foreign = statistics.median([x["foreign_cpu_cores_avg"] for x in tr]) if tr else None
                t.add_row(r["database"], str(r["workers"]), procs, str(u["files"]), f"{u['median_wall_s']}",
                          f"{u['median_files_per_s']}", " / ".join(str(x) for x in u["files_per_s_sorted"]),
                          str(u["failed_trials"]), f"{cpu}", f"{foreign}")
        console.print(t)
    code = res.get("code", {})
    console.print(f"moorage served from {code.get('served_from', '?')}: {code.get('module')}; checkout at "
                  f"{code.get('checkout_commit', '?')[:10]}")
    console.print(shared)
    console.print("others' CPU: cores used by processes other than this script (with its wrk and twine) and the "
                  "server during the measurement; on PostgreSQL that includes the database server's own processes")
    console.print(f"results -> {path}")


if __name__ == "__main__":
    sys.exit(main())
