"""`moorage serve`: start the index (the first start makes the data directory and an admin)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from moorage import __version__
from moorage.cli.common import common, err, settings
from moorage.config import Settings
from moorage.services import bootstrap
from moorage.services.context import Context, open_context


def register(sub: Any) -> None:
    serve = sub.add_parser("serve", help="serve the index")
    common(serve)
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8080)")
    serve.add_argument("--workers", type=int, help="worker processes (default 1)")
    serve.add_argument("--access-log", action="store_true",
                       help="also log every request (refusals and changes are always logged)")
    serve.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    import logging.config

    from moorage import oplog

    chosen = settings(args, host=args.host, port=args.port, workers=args.workers)
    log_config = oplog.serve_logging(args.access_log)
    logging.config.dictConfig(log_config)
    # The first start makes the data directory; every start checks it can write what it must.
    try:
        ctx = bootstrap.open_for_serving(chosen)
    except bootstrap.SchemaNotCurrent:
        err.print("moorage: the database schema is not current; run `moorage db upgrade` first")
        return 2
    swept = bootstrap.sweep_temporary(ctx)  # left by a crash, older than an hour
    if swept:
        print(f"moorage: removed {swept} temporary file(s) older than an hour from {ctx.blobs.tmp}", flush=True)
    bootstrap.ensure_log_key(chosen)  # before the workers: one key
    _first_start(ctx, chosen.host, chosen.port)
    _start_daily_jobs(chosen)
    print(f"moorage {__version__} serving {chosen.data_dir.resolve()} on http://{chosen.host}:{chosen.port}/",
          flush=True)
    _run(ctx, chosen, log_config, args.access_log)
    return 0


def _first_start(ctx: Context, host: str, port: int) -> None:
    """On a first start: an admin account and a one-time upload token, with usage lines."""
    made = bootstrap.first_start(ctx)
    if made is None:
        return
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    base = f"http://{shown}:{port}"
    print(f"""
moorage: first start, created the admin account.
  user:     {made.user}
  password: {made.password}
  upload token (shown once, keep it safe):
    {made.token}

Install:
  pip install --index-url {base}/simple/ PROJECT
  uv pip install --index-url {base}/simple/ PROJECT
Upload:
  twine upload --repository-url {base}/legacy/ -u __token__ -p {made.token} dist/*
  uv publish --publish-url {base}/legacy/ --token {made.token} dist/*
""", flush=True)


def _start_daily_jobs(chosen: Settings) -> None:
    """One thread in this (the supervising) process, however many workers serve requests."""
    import threading

    from moorage.services.critical import keep_running_daily

    threading.Thread(target=keep_running_daily, args=(open_context(chosen), threading.Event()),
                     name="daily-jobs", daemon=True).start()


def _run(ctx: Context, chosen: Settings, log_config: dict[str, Any], access_log: bool) -> None:
    import uvicorn

    # The operator's log (refusals, events) on standard error; uvicorn's access log only when asked for.
    common_options = dict(host=chosen.host, port=chosen.port, log_config=log_config, log_level=None,
                          access_log=access_log, http="httptools", loop="uvloop", server_header=False)
    if chosen.workers > 1:
        ctx.close()
        os.environ["MOORAGE_DATA_DIR"] = str(chosen.data_dir.resolve())
        if chosen.config_file:
            os.environ["MOORAGE_CONFIG"] = str(chosen.config_file.resolve())
        from moorage.web.metrics import multiprocess_directory

        # Metrics of all workers add up through files in a fresh directory (docs/api.md).
        with multiprocess_directory(chosen.data_dir.resolve()):
            uvicorn.run("moorage.web.app:from_environment", factory=True, workers=chosen.workers,
                        **common_options)  # type: ignore[arg-type]
        return
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)  # one process: the in-memory registry
    from moorage.web.app import create_app

    uvicorn.run(create_app(ctx), **common_options)  # type: ignore[arg-type]
