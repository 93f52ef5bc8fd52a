"""Times moorage's pages for people (server-rendered HTML) on an indexbench corpus.

    INDEXBENCH=/path/to/indexbench python bench/pages.py [--scale medium] [--reuse-state]

Run it with the Python of a virtual environment that has moorage installed (the server is that
environment's `moorage`, unless --venv names another). Steps:

1. Loading (skipped with --reuse-state): the harness generates (or re-uses) the corpus, wipes
   the state directory, starts the server from moorage's harness profile
   (bench/profiles/moorage.toml: `moorage serve`, one worker, embedded SQLite) and uploads
   every file with the harness's own upload code (twine, 25 projects per invocation, as
   `__token__` with a token from the profile's password_cmd). The server is then stopped.
2. The server is started again on that state, and left until its start-up work (page-cache
   warming) is done. The admin signs in through the sign-in form (its password is the one the
   server printed on its first start).
3. Each page: a fresh keep-alive connection (http.client), --warmup requests not recorded, then
   --requests sequential GETs, each timed from sending the request to the last byte of the body.
   Public pages are fetched signed out (with the CSRF cookie a returning browser has), the
   others with the admin's session cookie. Every response must be 200.

Per-project pages are timed on the project with the most files (then releases, events,
metadata: the worst case) and on the median project by the same order (a typical one).
Prints a table and writes bench/results/pages-<scale>.json. Exits 1 if a page's median reaches
--budget-ms (default 50) or a page failed.
"""

from __future__ import annotations

import argparse
import http.client
import http.cookies
import json
import math
import os
import platform
import re
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CSRF_COOKIE = "moorage_csrf"
SESSION_COOKIE = "moorage_session"
MARKER = "pages-loaded.json"  # written in the state directory once the corpus is loaded
HARNESS_MARKER = ".indexbench-loaded.json"  # a state loaded by `indexbench.py run` is accepted too


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def import_harness(path: str | None) -> None:
    if not path or not os.path.isfile(os.path.join(path, "indexbench.py")):
        raise SystemExit("set INDEXBENCH (or --indexbench) to the directory of the indexbench harness (indexbench.py)")
    sys.path.insert(0, os.path.abspath(path))


# ------------------------------------------------------------------------------ HTTP
class Client:
    """One keep-alive connection; counts how many connections it had to open."""

    def __init__(self, base: str, timeout: float = 60) -> None:
        u = urllib.parse.urlsplit(base)
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 80
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        self.opened = 0
        self._sock: object = None

    def request(self, method: str, path: str, headers: dict[str, str], body: bytes | None = None
                ) -> tuple[int, http.client.HTTPMessage, bytes, float]:
        t0 = time.perf_counter()
        self.conn.request(method, path, body=body, headers=headers)
        resp = self.conn.getresponse()
        data = resp.read()
        dt = time.perf_counter() - t0
        if self.conn.sock is not self._sock:  # http.client (re)connected for this request
            self.opened += 1
            self._sock = self.conn.sock
        if resp.will_close:
            self.conn.close()
            self._sock = None
        return resp.status, resp.headers, data, dt

    def close(self) -> None:
        self.conn.close()


def cookies_from(headers: http.client.HTTPMessage) -> dict[str, str]:
    jar: dict[str, str] = {}
    for line in headers.get_all("set-cookie") or []:
        c = http.cookies.SimpleCookie()
        c.load(line)
        jar.update({k: m.value for k, m in c.items()})
    return jar


def cookie_header(jar: dict[str, str]) -> str:
    return "; ".join(f"{k}={v}" for k, v in jar.items())


def sign_in(base: str, user: str, password: str) -> dict[str, str]:
    """The cookies of a signed-in browser: GET the form, POST it back with its CSRF token."""
    c = Client(base)
    try:
        st, h, body, _ = c.request("GET", "/account/login/", {"Accept": "text/html"})
        jar = cookies_from(h)
        m = re.search(r'name="csrf_token" value="([^"]+)"', body.decode())
        if st != 200 or CSRF_COOKIE not in jar or not m:
            raise RuntimeError(f"sign-in form: status {st}, cookies {sorted(jar)}, token found: {bool(m)}")
        form = urllib.parse.urlencode({"username": user, "password": password, "csrf_token": m.group(1),
                                       "next": "/account/"}).encode()
        st, h, body, _ = c.request("POST", "/account/login/", {
            "Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie_header(jar),
            "Accept": "text/html"}, form)
        jar.update(cookies_from(h))
        if st != 303 or SESSION_COOKIE not in jar:
            raise RuntimeError(f"sign-in post: status {st}, cookies {sorted(jar)}: {body[:300]!r}")
        return jar
    finally:
        c.close()


def csrf_cookie(base: str) -> dict[str, str]:
    """The per-browser cookie a signed-out visitor has after the first page."""
    c = Client(base)
    try:
        _st, h, _b, _ = c.request("GET", "/account/login/", {"Accept": "text/html"})
        return {k: v for k, v in cookies_from(h).items() if k == CSRF_COOKIE}
    finally:
        c.close()


def pct(xs: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted xs."""
    return xs[max(0, min(len(xs) - 1, math.ceil(q * len(xs)) - 1))]


# ------------------------------------------------------------------------------ loading
def tools_venv(venv: str, explicit: str | None = None) -> str:
    """The venv whose twine uploads: the one given, else `venv` if it has twine, else the harness's."""
    return explicit or (venv if os.path.exists(os.path.join(venv, "bin", "twine")) else "/tmp/bench-venvs/tools")


def load_corpus(prof, sut, manifest: dict, corpus_dir: str, scale: str, tools: str, upload_batch: int = 25,
                upload_timeout: float = 3600) -> dict:
    """Upload the whole corpus into the started server `sut` with the harness's own code (twine,
    `upload_batch` projects per invocation, sequential, credentials from the profile's [upload]);
    returns the harness's upload result with the server's CPU seconds and peak RSS added."""
    from ib.runner import Run

    run = Run(argparse.Namespace(scale=scale, tools_venv=tools, upload_batch=upload_batch,
                                 upload_timeout=upload_timeout, batch_timeout=600))
    run.prof, run.sut, run.manifest, run.corpus_dir = prof, sut, manifest, corpus_dir
    run.up = run.upload_settings()
    cpu0 = sut.monitor.cpu_seconds()
    upload = run.upload_twine()
    upload["server_cpu_s"] = round(sut.monitor.cpu_seconds() - cpu0, 1)
    upload.pop("progress_files_elapsed_batchrate", None)
    upload["peak_server_rss_mib"] = round(sut.monitor.overall["rss_kb"] / 1024, 1)
    return upload


# ------------------------------------------------------------------------------ corpus facts
def choose_projects(db: Path) -> dict[str, dict]:
    """Worst case (most files, then releases, events, metadata bytes) and the median project."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute("""
            SELECT p.normalized_name,
              (SELECT count(*) FROM files f WHERE f.project_id = p.id AND f.deleted_at IS NULL),
              (SELECT count(*) FROM releases r WHERE r.project_id = p.id AND r.deleted_at IS NULL),
              (SELECT count(*) FROM events e WHERE e.project = p.normalized_name),
              (SELECT coalesce(sum(length(r.metadata)), 0) FROM releases r WHERE r.project_id = p.id)
            FROM projects p WHERE p.deleted_at IS NULL AND p.status != 'quarantined'""").fetchall()
        if not rows:
            raise RuntimeError("no projects in the database")
        rows.sort(key=lambda r: (-r[1], -r[2], -r[3], -r[4], r[0]))
        out = {}
        for label, r in (("worst", rows[0]), ("typical", rows[len(rows) // 2])):
            version, summary = conn.execute("""
                SELECT r.version, json_extract(r.metadata, '$.summary') FROM releases r
                JOIN projects p ON p.id = r.project_id
                WHERE p.normalized_name = ? AND r.deleted_at IS NULL ORDER BY r.id DESC LIMIT 1""",
                                            (r[0],)).fetchone()
            out[label] = {"name": r[0], "files": r[1], "releases": r[2], "events": r[3], "metadata_bytes": r[4],
                          "newest_version": version, "summary": summary or ""}
        files = sorted(r[1] for r in rows)
        out["all"] = {"projects": len(rows), "files_min": files[0], "files_median": files[len(files) // 2],
                      "files_max": files[-1]}
        return out
    finally:
        conn.close()


def search_words(project: dict) -> tuple[str, str]:
    """A word from the project's summary (at least 4 letters) and the first word of its name."""
    words = [w for w in re.findall(r"[A-Za-z]+", project["summary"]) if len(w) >= 4]
    return (words[0].lower() if words else project["name"].split("-")[0]), project["name"].split("-")[0]


def admin_password(state: Path) -> str | None:
    """The password `moorage serve` printed on the first start (the harness keeps its output)."""
    try:
        text = (state / "server.log").read_text(errors="replace")
    except OSError:
        return None
    m = re.search(r"^  password: (\S+)$", text, re.M)
    return m.group(1) if m else None


def code_identity(venv: str) -> dict:
    """Which moorage is served: this checkout (editable: its commit and the uncommitted files
    under src/ at the start of the run) or an installed copy."""
    out: dict = {}
    try:
        out["module"] = subprocess.run([os.path.join(venv, "bin", "python"), "-c",
                                        "import moorage; print(moorage.__file__)"],
                                       capture_output=True, text=True, timeout=60).stdout.strip()
        git = ["git", "-C", str(REPO)]
        out["checkout_commit"] = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True,
                                                timeout=30).stdout.strip()
        if out["module"].startswith(str(REPO / "src")):
            out["served_from"] = "this checkout (editable install)"
            out["uncommitted_in_src"] = subprocess.run(git + ["status", "--porcelain", "--", "src"],
                                                       capture_output=True, text=True,
                                                       timeout=30).stdout.splitlines()
        else:
            out["served_from"] = "an installed copy (not this checkout's files)"
    except OSError as e:
        out["error"] = str(e)
    return out


# ------------------------------------------------------------------------------ measuring
def wait_settled(sut, limit_s: float = 60, idle_cores: float = 0.05) -> float:
    """Wait until the server's start-up work (cache warming) is done: two quiet half-seconds."""
    t0 = time.monotonic()
    quiet = 0
    last = sut.monitor.cpu_seconds()
    while time.monotonic() - t0 < limit_s and quiet < 2:
        time.sleep(0.5)
        now = sut.monitor.cpu_seconds()
        quiet = quiet + 1 if (now - last) / 0.5 < idle_cores else 0
        last = now
    return round(time.monotonic() - t0, 2)


def wait_quiet(roots: list[int], limit_s: float, cores: float) -> float:
    """Like the harness: wait (bounded) until other processes use fewer than `cores` CPUs."""
    from ib.server import foreign_cpu_delta, foreign_cpu_ticks

    hz = os.sysconf("SC_CLK_TCK")
    t0 = time.monotonic()
    while limit_s > 0:
        a = foreign_cpu_ticks(roots)
        time.sleep(1)
        if foreign_cpu_delta(a, foreign_cpu_ticks(roots)) / hz < cores or time.monotonic() - t0 > limit_s:
            break
    return round(time.monotonic() - t0, 1)


def measure(base: str, path: str, jar: dict[str, str], warmup: int, n: int, sut, roots: list[int]) -> dict:
    from ib.server import foreign_cpu_delta, foreign_cpu_ticks

    c = Client(base)
    headers = {"Accept": "text/html", "Accept-Encoding": "identity", "Cookie": cookie_header(jar)}
    out: dict = {"url": path}
    try:
        for _ in range(warmup):
            st, _h, body, _dt = c.request("GET", path, headers)
            if st != 200:
                return out | {"error": f"status {st} during warm-up: {body[:200]!r}"}
        times = []
        cpu0 = sut.monitor.cpu_seconds()
        f0 = foreign_cpu_ticks(roots)
        t0 = time.perf_counter()
        size = 0
        for _ in range(n):
            st, _h, body, dt = c.request("GET", path, headers)
            if st != 200:
                return out | {"error": f"status {st}: {body[:200]!r}"}
            times.append(dt * 1000)
            size = len(body)
        wall = time.perf_counter() - t0
        cpu = sut.monitor.cpu_seconds() - cpu0
        foreign = foreign_cpu_delta(f0, foreign_cpu_ticks(roots)) / os.sysconf("SC_CLK_TCK")
    finally:
        c.close()
    s = sorted(times)
    return out | {
        "status": 200, "bytes": size, "requests": n, "warmup": warmup, "connections_opened": c.opened,
        "median_ms": round(statistics.median(s), 2), "p90_ms": round(pct(s, 0.90), 2),
        "p99_ms": round(pct(s, 0.99), 2), "max_ms": round(s[-1], 2), "min_ms": round(s[0], 2),
        "mean_ms": round(statistics.fmean(s), 2),
        "server_cpu_ms_per_request": round(cpu * 1000 / n, 2),
        "foreign_cpu_cores_avg": round(foreign / wall, 2),
        "all_ms": [round(t, 3) for t in times],
    }


# ------------------------------------------------------------------------------ main
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--indexbench", default=os.environ.get("INDEXBENCH"),
                    help="directory of the indexbench harness (default: $INDEXBENCH)")
    ap.add_argument("--scale", default="medium", help="harness corpus scale (tiny, small, medium, large)")
    ap.add_argument("--venv", default=sys.prefix,
                    help="virtual environment whose `moorage` is served (default: the one running this script)")
    ap.add_argument("--tools-venv", default=None,
                    help="venv with twine for loading (default: --venv if it has twine, else the harness's)")
    ap.add_argument("--profile", default=str(HERE / "profiles" / "moorage.toml"))
    ap.add_argument("--port", type=int, default=None, help="override the profile's port")
    ap.add_argument("--state-dir", default=None, help="default /tmp/bench-state-moorage-pages-<scale> (wiped!)")
    ap.add_argument("--reuse-state", action="store_true",
                    help="serve a state this script (or `indexbench.py run`) loaded before: no wipe, no upload")
    ap.add_argument("--upload-batch", type=int, default=25, help="projects per twine invocation (harness default)")
    ap.add_argument("--upload-timeout", type=float, default=3600)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--budget-ms", type=float, default=50.0, help="the median every page must stay under")
    ap.add_argument("--quiet-wait", type=float, default=30,
                    help="before each page wait up to this long for other processes to go idle (0: no wait)")
    ap.add_argument("--quiet-cores", type=float, default=0.25)
    ap.add_argument("--results", default=None, help="default bench/results/pages-<scale>.json")
    ap.add_argument("--show", metavar="JSON", help="print the table of an earlier run's results file and exit")
    a = ap.parse_args()
    if a.show:
        report(json.loads(Path(a.show).read_text()), Path(a.show))
        return 0

    import_harness(a.indexbench)
    from ib import corpus
    from ib.server import ServerUnderTest, load_profile

    P, R = corpus.SCALES[a.scale]
    corpus_dir = corpus.corpus_dir_for(a.scale)
    state = Path(a.state_dir or f"/tmp/bench-state-moorage-pages-{a.scale}")
    manifest = corpus.generate(corpus_dir, P, R, log=log)
    prof = load_profile(a.profile, str(state), corpus_dir, a.scale, a.port)
    prof.vars["venv"] = os.path.abspath(a.venv)  # serve this environment's moorage
    tools = tools_venv(a.venv, a.tools_venv)
    base = f"http://127.0.0.1:{prof.port}"
    results_path = Path(a.results or HERE / "results" / f"pages-{a.scale}.json")
    res: dict = {
        "schema": 1, "scale": a.scale, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "corpus": manifest["stats"], "profile": os.path.relpath(prof.path, REPO) if prof.path.startswith(str(REPO))
        else os.path.basename(prof.path),
        "method": f"{a.warmup} warm-up then {a.requests} sequential GETs per page over one keep-alive connection "
                  "(http.client), each timed from request to last body byte",
        "budget_ms": a.budget_ms,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "kernel": platform.release()},
    }
    res["code"] = code_identity(a.venv)

    sut = ServerUnderTest(prof, str(state), log)
    res["versions"] = sut.versions()
    marker = state / MARKER
    try:
        if a.reuse_state:
            found = next((m for m in (marker, state / HARNESS_MARKER) if m.exists()), None)
            if found is None:
                raise SystemExit(f"--reuse-state: {state} holds no loaded corpus; run once without it")
            loaded = json.loads(found.read_text())
            if loaded.get("corpus_params") != manifest["params"]:
                raise SystemExit("--reuse-state: the state was loaded with another corpus")
            res["load"] = {"reused_from": loaded.get("loaded"), "upload": loaded.get("upload"),
                           "load_wall_s": loaded.get("load_wall_s")}
        else:
            log(f"loading the {a.scale} corpus ({manifest['stats']['files']} files) into {state}")
            t0 = time.perf_counter()
            sut.prepare()
            sut.start()
            upload = load_corpus(prof, sut, manifest, corpus_dir, a.scale, tools, a.upload_batch, a.upload_timeout)
            sut.stop()
            load_wall = round(time.perf_counter() - t0, 1)
            if upload.get("failed_batch_count") or upload.get("timed_out"):
                raise SystemExit(f"loading failed: {json.dumps(upload)[:2000]}")
            res["load"] = {"upload": upload, "load_wall_s": load_wall}
            marker.write_text(json.dumps({"profile": prof.name, "corpus_params": manifest["params"],
                                          "loaded": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "upload": upload,
                                          "load_wall_s": load_wall}))
            log(f"loaded in {load_wall} s ({upload['files_per_s']} files/s through twine)")

        sut.start(post_start=False)
        res["server"] = {"cmd": prof.get("start")["cmd"], "pid": sut.proc.pid, "startup_s": round(sut.startup_s, 3),
                         "settle_s": wait_settled(sut)}
        log(f"server settled after {res['server']['settle_s']} s")
        password = admin_password(state)
        if password is None:
            raise SystemExit(f"no admin password in {state}/server.log (the first start prints it)")
        admin = sign_in(base, "admin", password)
        anon = csrf_cookie(base)
        chosen = choose_projects(state / "data" / "moorage.db")
        res["projects"] = chosen
        worst, typical = chosen["worst"], chosen["typical"]
        summary_word, name_word = search_words(worst)
        q = urllib.parse.quote
        pages: list[tuple[str, str, bool]] = [
            ("home", "/", False),
            (f"search, summary word ({summary_word})", f"/search/?q={q(summary_word)}", False),
            (f"search, name word ({name_word})", f"/search/?q={q(name_word)}", False),
        ]
        for label, p in (("worst", worst), ("typical", typical)):
            n, v = p["name"], p["newest_version"]
            pages += [(f"project ({label})", f"/project/{n}/", False),
                      (f"release ({label})", f"/project/{n}/{q(v)}/", False),
                      (f"history ({label})", f"/project/{n}/history/", False)]
        pages += [
            ("log", "/log/", False),
            ("sign-in form", "/account/login/", False),
            ("account (admin)", "/account/", True),
            ("admin", "/admin/", True),
            ("manage (worst)", f"/manage/project/{worst['name']}/", True),
            ("manage (typical)", f"/manage/project/{typical['name']}/", True),
            ("history (worst), as admin", f"/project/{worst['name']}/history/", True),
        ]
        roots = [os.getpid(), sut.proc.pid]
        res["pages"] = []
        for label, path, signed_in in pages:
            waited = wait_quiet(roots, a.quiet_wait, a.quiet_cores)
            r = measure(base, path, admin if signed_in else anon, a.warmup, a.requests, sut, roots)
            r = {"page": label, "signed_in": signed_in, "waited_for_quiet_s": waited} | r
            res["pages"].append(r)
            log(f"{label:32} {path:55} " + (f"median {r['median_ms']:6.2f}  p90 {r['p90_ms']:6.2f}  "
                                            f"max {r['max_ms']:7.2f} ms" if "error" not in r else r["error"]))
        res["server"]["peak_rss_mib"] = round(sut.monitor.overall["rss_kb"] / 1024, 1)
        res["server"]["peak_pss_mib"] = round(sut.monitor.overall["pss_kb"] / 1024, 1)
    finally:
        sut.stop()
        res["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        results_path.parent.mkdir(parents=True, exist_ok=True)
        results_path.write_text(json.dumps(res, indent=1))
    report(res, results_path)
    bad = [p for p in res["pages"] if "error" in p or p["median_ms"] >= a.budget_ms]
    return 1 if bad else 0


def report(res: dict, path: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    c = res["corpus"]
    up = (res.get("load") or {}).get("upload") or {}
    title = (f"moorage pages, {res['scale']} corpus ({c['projects']:,} projects x {c['releases']} releases, "
             f"{c['files']:,} files); {res['pages'][0].get('requests', '?')} requests per page after "
             f"{res['pages'][0].get('warmup', '?')} warm-up, one keep-alive connection")
    t = Table(title=title)
    for col, just in (("page", "left"), ("URL", "left"), ("median ms", "right"), ("p90 ms", "right"),
                      ("max ms", "right"), ("server CPU ms/req", "right"), ("KiB", "right"),
                      ("others' CPU, cores", "right")):
        t.add_column(col, justify=just, overflow="fold")  # type: ignore[arg-type]
    for p in res["pages"]:
        if "error" in p:
            t.add_row(p["page"], p["url"], "[red]error[/red]", p["error"][:60], "", "", "", "")
            continue
        over = p["median_ms"] >= res["budget_ms"]
        med = f"[red]{p['median_ms']:.2f}[/red]" if over else f"{p['median_ms']:.2f}"
        t.add_row(p["page"], p["url"], med, f"{p['p90_ms']:.2f}", f"{p['max_ms']:.2f}",
                  f"{p['server_cpu_ms_per_request']:.2f}", f"{p['bytes'] / 1024:.1f}",
                  f"{p['foreign_cpu_cores_avg']:.2f}")
    console = Console(width=max(150, Console().width))
    console.print(t)
    load = res.get("load") or {}
    if load.get("reused_from"):
        console.print(f"state loaded earlier ({load['reused_from']}), in {load.get('load_wall_s')} s")
    elif up:
        console.print(f"loading: {load['load_wall_s']} s in all; upload {up['wall_s']} s, {up['files_per_s']} files/s "
                      f"({up['method']})")
    code = res.get("code", {})
    console.print(f"moorage served from {code.get('served_from', '?')}: {code.get('module')}; checkout at "
                  f"{code.get('checkout_commit', '?')[:10]}"
                  + (f", {len(code['uncommitted_in_src'])} uncommitted file(s) under src/"
                     if code.get("uncommitted_in_src") else ""))
    s = res.get("server", {})
    console.print(f"server: {' '.join(s.get('cmd', []))}; peak RSS {s.get('peak_rss_mib')} MiB; "
                  f"start-up work done {s.get('settle_s')} s after ready")
    console.print("others' CPU: cores used by processes other than this script and the server while the page "
                  "was measured (client and server share the machine)")
    console.print(f"results -> {path}")


if __name__ == "__main__":
    sys.exit(main())
