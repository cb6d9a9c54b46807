"""What the server, the tunnel and the CLI share: the loopback host, the secrets' names, the
error class, and dashboard.json (the URLs written for notebooks)."""

from __future__ import annotations

import json
import logging
import os
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from segkit.errors import SegkitError

if TYPE_CHECKING:
    from segkit.dashboard.server import Dashboard

log = logging.getLogger("segkit")

HOST = "127.0.0.1"  # never 0.0.0.0: the public route is the authenticated tunnel, not the LAN
TOKEN_ENV = "NGROK_AUTHTOKEN"
AUTH_ENV = "SEGKIT_DASHBOARD_AUTH"
# Removed from TensorBoard's environment: it needs none of them.
SECRET_ENV = (TOKEN_ENV, AUTH_ENV, "NGROK_API_KEY", "KAGGLE_KEY")
INFO_FILE = "dashboard.json"
INSTALL_HINT = "pip install 'segkit[dashboard]'"
# Never through a proxy: these requests go to loopback (or, for the auth check, to ngrok).
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class DashboardError(SegkitError):
    """TensorBoard or the public tunnel could not be started; the message says why and the fix."""


# ----------------------------------------------------------------------------- dashboard.json


def info_path(logdir: Path) -> Path:
    """Where the URLs are written: next to a run's `tb/` (the run directory), else in logdir."""
    return logdir.parent / INFO_FILE if logdir.name == "tb" else logdir / INFO_FILE


def _write_info(dash: Dashboard) -> None:
    """URLs for notebooks and people (no token, no password); skipped if the folder is missing."""
    if dash.reused:
        return
    path = info_path(dash.logdir)
    if not path.parent.is_dir():
        return
    info = {"url": dash.url, "public_url": dash.public_url, "basic_auth_user": dash.auth_user,
            "public_error": dash.error, "logdir": str(dash.logdir), "pid": os.getpid()}
    try:
        path.write_text(json.dumps(info, indent=2) + "\n")
    except OSError as e:
        log.warning("dashboard: could not write %s (%s); the URLs are printed instead", path, e.strerror)
        return
    dash.info_file = path
