"""The TensorBoard dashboard: a real TensorBoard subprocess on 127.0.0.1, and an optional public
ngrok link protected by HTTP basic auth.

    dash = launch("runs/train/tb")                # local: http://127.0.0.1:6006/
    dash = launch("runs/train/tb", public=True)   # + https://<random>.ngrok-free.app (basic auth)
    dash.stop()                                    # or `with launch(...) as dash:`

Failure policy: TensorBoard itself failing to start raises `DashboardError`. A public link that
cannot be opened (no token, no ngrok agent, no internet, ngrok refused the tunnel) does NOT raise:
`launch` returns the running local dashboard with `public_url=None` and the reason in `error`
(also logged), so a training notebook goes on; the CLI prints the error, keeps serving locally
until Ctrl-C and then exits with status 1.

Secrets: the ngrok token comes from `$NGROK_AUTHTOKEN`, a Kaggle Secret of that name, or the
ngrok agent's own config file; the basic-auth credentials from `$SEGKIT_DASHBOARD_AUTH`
("user:password", or a Kaggle Secret of that name) or are generated and shown once to a person
watching (never in a headless run). Neither is printed, logged or written to a file: pyngrok's
loggers get a filter that redacts them, and pyngrok/ngrok error texts are scrubbed before they
are re-raised (ngrok's ERR_NGROK_105 message echoes the token). TensorBoard's environment has
them removed. The token does reach the ngrok agent's command line (pyngrok passes
`--authtoken`), visible to processes of the same machine, as with any ngrok use.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import http.client
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segkit.errors import SegkitError

if TYPE_CHECKING:
    from typing_extensions import Self

log = logging.getLogger("segkit")

HOST = "127.0.0.1"  # never 0.0.0.0: the public route is the authenticated tunnel, not the LAN
WINDOW_TITLE = "segkit"  # marks our TensorBoards, so a busy port serving the same logdir is reused
TOKEN_ENV = "NGROK_AUTHTOKEN"
AUTH_ENV = "SEGKIT_DASHBOARD_AUTH"
# Removed from TensorBoard's environment: it needs none of them.
SECRET_ENV = (TOKEN_ENV, AUTH_ENV, "NGROK_API_KEY", "KAGGLE_KEY")
INFO_FILE = "dashboard.json"
INSTALL_HINT = "pip install 'segkit[dashboard]'"
PORT_TRIES = 20  # ports tried after a busy one
GENERATED_USER = "segkit"
REDACTED = "[redacted]"
NO_TOKEN_HELP = (
    "no ngrok token: the public link needs a (free) ngrok account. Get your authtoken at "
    "https://dashboard.ngrok.com/get-started/your-authtoken and set it: `export NGROK_AUTHTOKEN=...` "
    "in a terminal, or on Kaggle add a secret named NGROK_AUTHTOKEN (Add-ons > Secrets) and tick it "
    "for this notebook. Never paste the token into a notebook cell."
)


class DashboardError(SegkitError):
    """TensorBoard or the public tunnel could not be started; the message says why and the fix."""


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
    _tunnel: Any = field(default=None, repr=False)
    _pyngrok_config: Any = field(default=None, repr=False)
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
        _close_tunnel(self)
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
    logdir: str | Path, port: int = 6006, public: bool = False, auth: bool = True, wait: float = 60.0
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
            open_tunnel(dash, auth)
        except DashboardError as e:
            dash.error = str(e)
            log.warning("dashboard: no public link: %s (local dashboard still at %s)", e, dash.url)
    _write_info(dash)
    return dash


def _serve_locally(logdir: Path, port: int, wait: float) -> Dashboard:
    """Reuse our TensorBoard for the same logdir on a busy port, else start one on a free port."""
    chosen = _free_port() if port == 0 else None
    for candidate in ([] if chosen else range(port, port + PORT_TRIES)):
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
    cmd = [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", HOST,
           "--port", str(port), "--window_title", WINDOW_TITLE]
    env = {k: v for k, v in os.environ.items() if k not in SECRET_ENV}
    # Kept open for the server's lifetime (closed by stop()); read back only to explain a failed start.
    log_file = tempfile.TemporaryFile()  # noqa: SIM115
    # preexec_fn only calls prctl(), which is safe between fork and exec even with threads.
    process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, env=env,
                               start_new_session=True, preexec_fn=_die_with_parent)  # noqa: PLW1509
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


# Never through a proxy: these requests go to loopback (or, for the auth check, to ngrok).
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _segkit_logdir_at(port: int) -> Path | None:
    """The logdir of a segkit TensorBoard answering on HOST:port, else None."""
    try:
        with _OPENER.open(f"http://{HOST}:{port}/data/environment", timeout=2) as response:
            env = json.loads(response.read().decode())
    except (OSError, ValueError, http.client.HTTPException):
        return None
    if not isinstance(env, dict) or env.get("window_title") != WINDOW_TITLE:
        return None
    return Path(str(env.get("data_location", "")))


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


# ----------------------------------------------------------------------------- secrets


@dataclass(frozen=True)
class _Credentials:
    user: str
    password: str = field(repr=False)
    generated: bool = False

    @property
    def pair(self) -> str:
        return f"{self.user}:{self.password}"


def _kaggle_secret(name: str) -> str | None:
    """A Kaggle Secret attached to this notebook, else None (also off Kaggle)."""
    try:
        from kaggle_secrets import UserSecretsClient  # only importable inside Kaggle kernels
    except ImportError:
        return None
    try:
        value = UserSecretsClient().get_secret(name)
    except Exception as e:  # noqa: BLE001 -- its error classes are Kaggle-internal; absent secret = None
        log.info("dashboard: Kaggle secret %s is not available (%s)", name, type(e).__name__)
        return None
    return (value.strip() or None) if isinstance(value, str) else None


def _secret(name: str) -> str | None:
    return os.environ.get(name, "").strip() or _kaggle_secret(name)


def _token_from_ngrok_config(path: str) -> str | None:
    """A token saved with `ngrok config add-authtoken` (read only to pass on and to redact)."""
    try:
        import yaml

        config = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, ImportError, ValueError):
        return None
    agent = config.get("agent") if isinstance(config.get("agent"), dict) else {}
    token = agent.get("authtoken") or config.get("authtoken")
    return str(token) if token else None


def _credentials(auth: bool) -> _Credentials | None:
    """Basic-auth credentials: $SEGKIT_DASHBOARD_AUTH / Kaggle Secret, else generated."""
    if not auth:
        return None
    value = _secret(AUTH_ENV)
    if value is None:
        if not _person_watching():
            raise DashboardError(
                "a generated dashboard password can only be shown to a person (terminal or live notebook), and "
                f"this run is headless. Set {AUTH_ENV}=user:password (on Kaggle: a secret of that name, Add-ons > "
                "Secrets), or pass auth=False / --no-auth to open the link without a password"
            )
        return _Credentials(GENERATED_USER, secrets.token_urlsafe(12), generated=True)
    user, sep, password = value.partition(":")
    if not sep or not user or not 8 <= len(password) <= 128:
        found = "no ':'" if not sep else ("an empty user" if not user else f"a password of {len(password)} characters")
        raise DashboardError(f"{AUTH_ENV} must be user:password with a password of 8-128 characters "
                             f"(ngrok's rule); it has {found}")
    return _Credentials(user, password)


def _person_watching() -> bool:
    from segkit.runtime import person_is_watching  # lazy: imports torch

    return person_is_watching()


def _show_once(creds: _Credentials, public_url: str) -> None:
    """The generated password goes to the person, not to the log (headless runs never get here)."""
    stream = sys.stderr if sys.stderr.isatty() else sys.stdout
    print(f"dashboard password (shown once, not saved): user {creds.user!r}, password {creds.password!r} "
          f"for {public_url}. Set {AUTH_ENV}=user:password to choose your own.", file=stream, flush=True)


def scrub(text: str, secret_values: list[str]) -> str:
    """`text` with every secret replaced by [redacted] (before an error or log line leaves)."""
    for value in sorted((s for s in secret_values if s and len(s) >= 4), key=len, reverse=True):
        text = text.replace(value, REDACTED)
    return text


class _RedactFilter(logging.Filter):
    """Installed on pyngrok's loggers: ngrok's own log lines can echo the token."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = scrub(message, list(self.secrets))
        if clean != message:
            record.msg, record.args = clean, None
        return True


_REDACT = _RedactFilter()


def _guard_pyngrok_logs(secret_values: list[str]) -> None:
    _REDACT.secrets.update(s for s in secret_values if s)
    names = {n for n in logging.root.manager.loggerDict if n.startswith("pyngrok")}
    for name in names | {"pyngrok", "pyngrok.ngrok", "pyngrok.process", "pyngrok.process.ngrok", "pyngrok.installer"}:
        logger = logging.getLogger(name)
        if _REDACT not in logger.filters:
            logger.addFilter(_REDACT)


# ----------------------------------------------------------------------------- the tunnel


def _import_pyngrok() -> tuple[Any, Any]:
    try:
        from pyngrok import conf, ngrok
    except ImportError:
        raise DashboardError(f"the public link needs pyngrok: {INSTALL_HINT}") from None
    return ngrok, conf


def open_tunnel(dash: Dashboard, auth: bool = True) -> None:
    """Open a public ngrok link to a running local dashboard (sets `dash.public_url`).

    Args:
        dash: From `launch`.
        auth: Basic auth (default); False opens the link to anyone who has it.

    Raises:
        DashboardError: no pyngrok, no token, unusable credentials, no agent / internet, ngrok
            refused, or the link did not ask for the password (then it is closed). The message
            never contains the token or the password.
    """
    if dash.public_url:
        return
    ngrok, conf = _import_pyngrok()
    config = conf.PyngrokConfig()  # honours $PYNGROK_NGROK_PATH for a manually installed agent
    token = _secret(TOKEN_ENV) or _token_from_ngrok_config(conf.get_config_path(config))
    if not token:
        raise DashboardError(NO_TOKEN_HELP)
    creds = _credentials(auth)
    secret_values = [token] + ([creds.password, creds.pair] if creds else [])
    _guard_pyngrok_logs(secret_values)
    config.auth_token = token
    options = _auth_options(config, creds)
    with _explained_pyngrok_errors(secret_values):
        tunnel = ngrok.connect(f"http://{HOST}:{dash.port}", "http", pyngrok_config=config, **options)
    dash._tunnel, dash._pyngrok_config = tunnel, config
    dash.public_url = tunnel.public_url
    if creds is None:
        log.warning("dashboard: %s is open to anyone who has the link (auth disabled)", dash.public_url)
    else:
        _check_protected(dash)
        dash.auth_user = creds.user
        if creds.generated:
            _show_once(creds, dash.public_url)
    log.info("dashboard: public link %s -> %s", dash.public_url, dash.url)
    if dash.info_file is not None:
        _write_info(dash)


def _auth_options(config: Any, creds: _Credentials | None) -> dict[str, Any]:
    """Basic auth: a traffic-policy action for ngrok v3 endpoints, `basic_auth` for v2 tunnels."""
    if creds is None:
        return {}
    if str(getattr(config, "config_version", "2")) == "3":
        action = {"type": "basic-auth", "config": {"credentials": [creds.pair]}}
        return {"traffic_policy": {"on_http_request": [{"actions": [action]}]}}
    return {"auth": creds.pair}  # pyngrok turns it into basic_auth: [user:pass]


@contextlib.contextmanager
def _explained_pyngrok_errors(secret_values: list[str]):
    """Turn pyngrok's errors into DashboardErrors with the fix, scrubbed of every secret."""
    from pyngrok import exception as exc

    try:
        yield
    except exc.PyngrokNgrokInstallError as e:
        raise DashboardError(
            f"could not download the ngrok agent (pyngrok fetches it on first use): {scrub(str(e), secret_values)}. "
            "This machine seems to have no internet access (on Kaggle: Settings > Internet on). Or install the "
            "agent yourself (https://ngrok.com/download) and point pyngrok at it: export PYNGROK_NGROK_PATH=/path/to/ngrok"
        ) from None
    except exc.PyngrokNgrokHTTPError as e:
        raise DashboardError(
            f"ngrok refused the tunnel: {scrub(_ngrok_http_message(e), secret_values)}. On the free plan one agent "
            "session runs at a time: stop other ngrok agents (https://dashboard.ngrok.com/agents)"
        ) from None
    except exc.PyngrokNgrokError as e:
        message = scrub(str(e.ngrok_error or e), secret_values)
        hint = " Check the token (https://dashboard.ngrok.com/get-started/your-authtoken)." if _auth_failure(message) else ""
        raise DashboardError(f"the ngrok agent failed: {message}.{hint}") from None
    except (exc.PyngrokError, OSError) as e:
        raise DashboardError(f"ngrok error: {scrub(str(e), secret_values)}") from None


def _ngrok_http_message(e: Any) -> str:
    """ngrok's own message from an API error body (JSON with msg/details), else the raw text."""
    try:
        body = json.loads(e.body or "{}")
    except ValueError:
        return str(e.body or e)
    details = body.get("details") or {}
    return " ".join(str(x) for x in (body.get("msg"), details.get("err")) if x) or str(e.body)


def _auth_failure(message: str) -> bool:
    return any(code in message for code in ("ERR_NGROK_105", "ERR_NGROK_107", "ERR_NGROK_4018", "authentication failed"))


def _check_protected(dash: Dashboard) -> None:
    """Fail closed: a tunnel that serves the dashboard without the password is shut at once."""
    request = urllib.request.Request(dash.public_url, headers={"ngrok-skip-browser-warning": "1"})
    status = None
    for _ in range(3):
        try:
            with _OPENER.open(request, timeout=10) as response:
                status = response.status
        except urllib.error.HTTPError as e:
            status = e.code
        except OSError:
            status = None
        if status in (401, 407) or (status is not None and status < 400):
            break
        time.sleep(1)
    if status not in (401, 407):
        _close_tunnel(dash)
        dash.public_url = None
        got = "no answer" if status is None else f"HTTP {status}"
        raise DashboardError(
            f"the public link did not ask for a password ({got} without credentials), so it was closed. "
            "Your ngrok agent may not support the basic-auth traffic policy: update it (`ngrok update`) and retry"
        )


def _close_tunnel(dash: Dashboard) -> None:
    if dash._tunnel is None:
        return
    from pyngrok import exception as exc
    from pyngrok import ngrok

    try:
        ngrok.disconnect(dash._tunnel.public_url, dash._pyngrok_config)
        ngrok.kill(dash._pyngrok_config)
    except (exc.PyngrokError, OSError) as e:
        log.warning("dashboard: closing the tunnel failed: %s", scrub(str(e), list(_REDACT.secrets)))
    dash._tunnel = None


# ----------------------------------------------------------------------------- CLI


def register_cli(sub: Any) -> None:
    """`segkit dashboard --logdir DIR [--port N] [--public] [--no-auth] [--wait S]`."""
    p = sub.add_parser("dashboard", help="serve TensorBoard on 127.0.0.1 (--public: + ngrok link with basic auth)",
                       description=__doc__.split("\n\n")[0])
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
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        while dash.alive():
            time.sleep(0.5)
        print("segkit dashboard: error: TensorBoard stopped by itself", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return status
    finally:
        signal.signal(signal.SIGTERM, previous)
        dash.stop()


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt
