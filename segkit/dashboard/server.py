"""TensorBoard as a subprocess on 127.0.0.1: the `Dashboard` handle, `launch`, ports, probes and
dashboard.json."""

from __future__ import annotations

import atexit
import contextlib
import http.client
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segkit.config import DashboardConfig
from segkit.credentials import SECRET_ENV
from segkit.dashboard.common import DIRECT_OPENER, HOST, DashboardError, info_path
from segkit.dashboard.tunnel import Tunnel, open_tunnel
from segkit.files import write_json

if TYPE_CHECKING:
    from typing_extensions import Self

log = logging.getLogger("segkit")

WINDOW_TITLE = "segkit"  # marks our TensorBoards, so a busy port serving the same logdir is reused
PORT_TRIES = 20  # ports tried after a busy one


# ----------------------------------------------------------------------------- the handle


@dataclass(eq=False)
class Dashboard:
    """A running dashboard. `stop()` ends what this process started (never a reused server)."""

    logdir: Path
    port: int
    process: subprocess.Popen | None = field(default=None, repr=False)  # None: reused server
    public_url: str | None = None  # the ngrok link, None when not asked for or failed
    error: str | None = None  # why the public link is missing although it was asked for
    auth_user: str | None = None  # basic-auth user of the public link (the password is never kept)
    info_file: Path | None = None  # dashboard.json written for notebooks (URLs only)
    _tunnel: Tunnel | None = field(default=None, repr=False)  # None: no link, or closed by stop()
    _log_file: Any = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """The local URL (loopback only)."""
        return f"http://{HOST}:{self.port}/"

    @property
    def reused(self) -> bool:
        """True when an already running segkit TensorBoard for this logdir is being reused."""
        return self.process is None

    def alive(self) -> bool:
        """Whether the TensorBoard this handle started still runs (a reused one: still answers)."""
        if self.process is not None:
            return self.process.poll() is None
        return _segkit_logdir_at(self.port) is not None

    def stop(self) -> None:
        """Close the tunnel, stop TensorBoard (and its data server), remove dashboard.json."""
        if self._tunnel is not None:
            self._tunnel.close()
            self._tunnel = None
        if self.process is not None:
            _terminate(self.process)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self.info_file is not None:
            with contextlib.suppress(FileNotFoundError):
                self.info_file.unlink()
            self.info_file = None
        _LIVE.discard(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


_LIVE: set[Dashboard] = set()


@atexit.register
def _stop_all() -> None:
    """No stray TensorBoard or tunnel outlives the Python process that started it."""
    for dash in list(_LIVE):
        dash.stop()


# ----------------------------------------------------------------------------- launch


def launch(
    logdir: str | Path,
    port: int = DashboardConfig.port,
    public: bool = False,
    auth: bool = True,
    wait: float = DashboardConfig.wait,
) -> Dashboard:
    """Serve TensorBoard for `logdir` on 127.0.0.1 and, if asked, open a public ngrok link.

    Args:
        logdir: A run's `tb/` folder, or a folder of runs (`runs/`). It may not exist yet
            (TensorBoard shows the runs once training writes them).
        port: The preferred port; if busy, a segkit TensorBoard of the same logdir there is
            reused, otherwise the next free port is taken (and logged). 0 = any free port.
        public: Also open an ngrok tunnel (needs `pyngrok`, a token and internet).
        auth: Protect the tunnel with HTTP basic auth (default). False opens it to anyone with the link.
        wait: Seconds to wait for TensorBoard to answer.

    Returns:
        The running `Dashboard`. A public link that failed leaves `public_url=None` and `error`
        set; the local dashboard keeps running.
    """
    logdir = Path(logdir).expanduser().resolve()
    if not logdir.is_dir():
        log.info("dashboard: %s does not exist yet; TensorBoard shows runs once they are written", logdir)
    dash = _serve_locally(logdir, port, wait)
    if public:
        try:
            link = open_tunnel(dash.port, auth)
        except DashboardError as e:
            dash.error = str(e)
            log.warning("dashboard: no public link: %s (local dashboard still at %s)", e, dash.url)
        else:
            dash._tunnel, dash.public_url, dash.auth_user = link, link.public_url, link.auth_user
    _write_info(dash)
    return dash


def _write_info(dash: Dashboard) -> None:
    """URLs for notebooks and people (no token, no password); skipped if the folder is missing."""
    if dash.reused:
        return
    path = info_path(dash.logdir)
    if not path.parent.is_dir():
        return
    info = {
        "url": dash.url,
        "public_url": dash.public_url,
        "basic_auth_user": dash.auth_user,
        "public_error": dash.error,
        "logdir": str(dash.logdir),
        "pid": os.getpid(),
    }
    try:
        write_json(path, info)
    except OSError as e:
        log.warning("dashboard: could not write %s (%s); the URLs are printed instead", path, e.strerror)
        return
    dash.info_file = path


def _serve_locally(logdir: Path, port: int, wait: float) -> Dashboard:
    """Reuse our TensorBoard for the same logdir on a busy port, else start one on a free port."""
    chosen = _free_port() if port == 0 else None
    for candidate in [] if chosen else range(port, port + PORT_TRIES):
        if _port_free(candidate):
            chosen = candidate
            break
        if _segkit_logdir_at(candidate) == logdir:
            log.info("dashboard: reusing the segkit TensorBoard for %s at http://%s:%d/", logdir, HOST, candidate)
            return Dashboard(logdir, candidate)
    if chosen is None:
        raise DashboardError(
            f"ports {port}-{port + PORT_TRIES - 1} on {HOST} are all busy; pass another --port "
            "(or port=0 for any free port)"
        )
    if port not in (0, chosen):
        log.warning("dashboard: port %d is busy (not a segkit TensorBoard of %s); using port %d", port, logdir, chosen)
    dash = _start_tensorboard(logdir, chosen)
    _LIVE.add(dash)
    try:
        _wait_until_serving(dash, wait)
    except BaseException:  # also Ctrl-C while waiting: no half-started TensorBoard stays behind
        dash.stop()
        raise
    return dash


def _start_tensorboard(logdir: Path, port: int) -> Dashboard:
    """TensorBoard as a subprocess in its own process group (its data server is a grandchild)."""
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        raise DashboardError("TensorBoard is not installed; install it with `pip install tensorboard`")
    cmd = [
        sys.executable,
        "-m",
        "tensorboard.main",
        "--logdir",
        str(logdir),
        "--host",
        HOST,
        "--port",
        str(port),
        "--window_title",
        WINDOW_TITLE,
    ]
    env = {k: v for k, v in os.environ.items() if k not in SECRET_ENV}  # TensorBoard needs none of them
    # Kept open for the server's lifetime (closed by stop()); read back only to explain a failed start.
    log_file = tempfile.TemporaryFile()  # noqa: SIM115
    # preexec_fn only calls prctl(), which is safe between fork and exec even with threads.
    process = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
        preexec_fn=_die_with_parent,  # noqa: PLW1509
    )
    return Dashboard(logdir, port, process, _log_file=log_file)


def _die_with_parent() -> None:
    """Linux: TensorBoard gets SIGTERM if its parent dies (a notebook kernel restarted, kill -9)."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def _wait_until_serving(dash: Dashboard, wait: float) -> None:
    """Poll until TensorBoard answers for our logdir; explain an early exit or a timeout."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if dash.process.poll() is not None:
            raise DashboardError(
                f"TensorBoard exited with code {dash.process.returncode} before serving on port {dash.port}:\n"
                f"{_log_tail(dash)}"
            )
        if _segkit_logdir_at(dash.port) == dash.logdir:
            log.info("dashboard: TensorBoard for %s at %s", dash.logdir, dash.url)
            return
        time.sleep(0.25)
    raise DashboardError(
        f"TensorBoard did not answer on port {dash.port} within {wait:g} s (a slow machine? pass a longer "
        f"wait / --wait). Its output:\n{_log_tail(dash)}"
    )


def _log_tail(dash: Dashboard, lines: int = 15) -> str:
    dash._log_file.seek(0)
    text = dash._log_file.read().decode(errors="replace").strip().splitlines()
    return "\n".join(text[-lines:]) or "(no output)"


def _terminate(process: subprocess.Popen) -> None:
    """SIGTERM the process group, wait, then SIGKILL: TensorBoard and its data server both end."""
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
        try:
            process.wait(grace)
            break
        except subprocess.TimeoutExpired:
            continue
    # A group member that ignored SIGTERM (the data server) must not survive its leader.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


# ----------------------------------------------------------------------------- ports and probes


def _port_free(port: int) -> bool:
    """Whether TensorBoard could listen on HOST:port (TIME_WAIT leftovers do not count as busy)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _segkit_logdir_at(port: int) -> Path | None:
    """The logdir of a segkit TensorBoard answering on HOST:port, else None."""
    try:
        with DIRECT_OPENER.open(f"http://{HOST}:{port}/data/environment", timeout=2) as response:
            env = json.loads(response.read().decode())
    except (OSError, ValueError, http.client.HTTPException):
        return None
    if not isinstance(env, dict) or env.get("window_title") != WINDOW_TITLE:
        return None
    return Path(str(env.get("data_location", "")))
