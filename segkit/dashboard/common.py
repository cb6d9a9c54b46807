"""What the server, the tunnel and the CLI share: the loopback host, the error class, the install
hint, a proxy-free URL opener, and where dashboard.json (the URLs written for notebooks) goes."""

from __future__ import annotations

import urllib.request
from pathlib import Path

from segkit.errors import SegkitError

HOST = "127.0.0.1"  # never 0.0.0.0: the public route is the authenticated tunnel, not the LAN
INFO_FILE = "dashboard.json"
INSTALL_HINT = "pip install 'segkit[dashboard]'"
# Never through a proxy: these requests go to loopback (or, for the auth check, to ngrok).
DIRECT_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class DashboardError(SegkitError):
    """TensorBoard or the public tunnel could not be started; the message says why and the fix."""


def info_path(logdir: Path) -> Path:
    """Where the URLs are written: next to a run's `tb/` (the run directory), else in logdir."""
    return logdir.parent / INFO_FILE if logdir.name == "tb" else logdir / INFO_FILE
