"""Measures the transparency log at scale: appending events, serving tiles, verifying.

    python bench/log_bench.py [--events 100000] [--batch 1000]

Appends N events through the same code path every change takes (services.events.append_event,
which writes the event and its log leaf in one transaction), in transactions of --batch
events; starts `moorage serve` on the result; fetches every entry tile and every hash tile,
cold then warm; and runs `moorage verify` against it. Prints one JSON document; every figure
is wall-clock seconds or a rate, measured once on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from moorage.config import Settings
from moorage.log.tiles import TILE_WIDTH, tile_path
from moorage.services.context import open_context
from moorage.services.events import append_event


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=120) as resp:
        return bytes(resp.read())


def _tiles(base: str, size: int) -> list[str]:
    paths = []
    for n in range((size + TILE_WIDTH - 1) // TILE_WIDTH):
        width = min(TILE_WIDTH, size - n * TILE_WIDTH)
        paths += [tile_path("entries", n, width), tile_path(0, n, width)]
    level1 = size // TILE_WIDTH
    for n in range((level1 + TILE_WIDTH - 1) // TILE_WIDTH):
        paths.append(tile_path(1, n, min(TILE_WIDTH, level1 - n * TILE_WIDTH)))
    return [base + "log/" + p for p in paths]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    result: dict[str, object] = {"events": args.events, "batch": args.batch}
    with tempfile.TemporaryDirectory(prefix="moorage-log-bench-") as tmp:
        data = Path(tmp) / "data"
        ctx = open_context(Settings(data_dir=data), migrate=True)
        now = datetime.now(UTC)
        started = time.perf_counter()
        done = 0
        while done < args.events:
            with ctx.db.write() as conn:
                for _ in range(min(args.batch, args.events - done)):
                    append_event(conn, now=now, actor="bench", action="bench-event", subject=f"bench:{done}",
                                 payload={"n": done, "sha256": "ab" * 32, "size": done})
                    done += 1
        append_s = time.perf_counter() - started
        ctx.close()
        result["append_s"] = round(append_s, 2)
        result["append_events_per_s"] = round(args.events / append_s)

        port = _port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
        server = subprocess.Popen([sys.executable, "-m", "moorage", "serve", "--data-dir", str(data), "--port",
                                   str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        base = f"http://127.0.0.1:{port}/"
        try:
            for _ in range(300):
                try:
                    _get(base + "healthz")
                    break
                except OSError:
                    time.sleep(0.1)
            started = time.perf_counter()
            size = int(_get(base + "log/checkpoint").decode().split("\n")[1])  # + the first start's events
            result["first_checkpoint_s"] = round(time.perf_counter() - started, 3)
            result["log_size"] = size
            urls = _tiles(base, size)
            for label in ("tiles_cold_s", "tiles_warm_s"):
                started = time.perf_counter()
                total = sum(len(_get(url)) for url in urls)
                result[label] = round(time.perf_counter() - started, 2)
            result["tiles"] = len(urls)
            result["tile_bytes"] = total
            started = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "moorage", "verify", "--index", base, "--json"],
                                  capture_output=True, text=True, env=env, timeout=600)
            result["verify_s"] = round(time.perf_counter() - started, 2)
            report = json.loads(proc.stdout)
            result["verify_ok"] = report["ok"]
            result["verify_exit"] = proc.returncode
        finally:
            server.terminate()
            server.wait(30)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
