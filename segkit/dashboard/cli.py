"""`segkit dashboard`: serve TensorBoard until Ctrl-C, optionally with a public ngrok link."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any

from segkit.credentials import AUTH_ENV, TOKEN_ENV
from segkit.dashboard.common import INSTALL_HINT, DashboardError
from segkit.dashboard.server import Dashboard, launch


def register_cli(sub: Any) -> None:
    """`segkit dashboard --logdir DIR [--port N] [--public] [--no-auth] [--wait S]`."""
    p = sub.add_parser("dashboard", help="serve TensorBoard on 127.0.0.1 (--public: + ngrok link with basic auth)",
                       description=__doc__)
    p.add_argument("--logdir", default="runs", help="a run's tb/ folder or a folder of runs (default: runs)")
    p.add_argument("--port", type=int, default=6006, help="preferred local port (default: 6006; 0 = any free)")
    p.add_argument("--public", action="store_true",
                   help=f"open an ngrok link (token from ${TOKEN_ENV} or a Kaggle Secret; {INSTALL_HINT})")
    p.add_argument("--no-auth", dest="auth", action="store_false",
                   help=f"no basic auth on the public link (default: on; credentials from ${AUTH_ENV} or generated)")
    p.add_argument("--wait", type=float, default=60.0, help="seconds to wait for TensorBoard (default: 60)")
    p.set_defaults(func=cmd_dashboard)


def cmd_dashboard(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C (or SIGTERM); exit 1 if the public link was asked for and failed."""
    logdir = Path(args.logdir)
    if not logdir.is_dir():
        raise DashboardError(f"--logdir {logdir} does not exist: expected a run's tb/ folder or a folder of runs. "
                             "Train first (segkit train --run-dir runs/NAME) or pass an existing folder")
    # ngrok's raw log lines (already redacted) would repeat what the error below says.
    logging.getLogger("pyngrok").setLevel(logging.CRITICAL)
    dash = launch(logdir, args.port, args.public, args.auth, args.wait)
    print(f"TensorBoard: {dash.url}  (logdir {dash.logdir}{', already running' if dash.reused else ''})", flush=True)
    if dash.public_url:
        protection = f"basic auth, user {dash.auth_user!r}" if dash.auth_user else "NO password"
        print(f"public link: {dash.public_url}  ({protection})", flush=True)
    if dash.error:  # launch() logged the reason; say what it means for this command
        print("segkit dashboard: error: no public link (reason above); serving locally only", file=sys.stderr,
              flush=True)
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
