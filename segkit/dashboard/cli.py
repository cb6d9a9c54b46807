"""`segkit dashboard`: serve TensorBoard until Ctrl-C, optionally with a public ngrok link."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any

from segkit.config import DashboardConfig
from segkit.dashboard.common import DashboardError
from segkit.dashboard.server import Dashboard, launch
from segkit.reflect import add_config_flags, config_from_args


def register_cli(sub: Any) -> None:
    """`segkit dashboard`: every DashboardConfig field is a flag (--public, --no-auth, ...)."""
    p = sub.add_parser(
        "dashboard", help="serve TensorBoard on 127.0.0.1 (--public: + ngrok link with basic auth)", description=__doc__
    )
    add_config_flags(p, DashboardConfig)
    p.set_defaults(func=cmd_dashboard)


def cmd_dashboard(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C (or SIGTERM); exit 1 if the public link was asked for and failed."""
    cfg, _ = config_from_args(DashboardConfig, args)
    logdir = Path(cfg.logdir)
    if not logdir.is_dir():
        raise DashboardError(
            f"--logdir {logdir} does not exist: expected a run's tb/ folder or a folder of runs. "
            "Train first (segkit train --run-dir runs/NAME) or pass an existing folder"
        )
    # ngrok's raw log lines (already redacted) would repeat what the error below says.
    logging.getLogger("pyngrok").setLevel(logging.CRITICAL)
    dash = launch(logdir, cfg.port, cfg.public, cfg.auth, cfg.wait)
    print(f"TensorBoard: {dash.url}  (logdir {dash.logdir}{', already running' if dash.reused else ''})", flush=True)
    if dash.public_url:
        protection = f"basic auth, user {dash.auth_user!r}" if dash.auth_user else "NO password"
        print(f"public link: {dash.public_url}  ({protection})", flush=True)
    if dash.error:  # launch() logged the reason; say what it means for this command
        print(
            "segkit dashboard: error: no public link (reason above); serving locally only", file=sys.stderr, flush=True
        )
    if dash.reused and not dash.public_url:
        return 1 if dash.error else 0
    return _serve_until_stopped(dash, 1 if dash.error else 0)


def _serve_until_stopped(dash: Dashboard, status: int) -> int:
    print("serving; Ctrl-C stops", flush=True)
    # Installed explicitly: a process started in the background by a shell inherits SIGINT ignored,
    # and Python then never raises KeyboardInterrupt.
    previous = {sig: signal.signal(sig, _raise_interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while dash.alive():
            time.sleep(0.5)
        print("segkit dashboard: error: TensorBoard stopped by itself", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return status
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        dash.stop()


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt
