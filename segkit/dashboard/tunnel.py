"""The public ngrok link to a local port: pyngrok, basic-auth credentials (read with
`segkit.credentials`), and the scrubbing that keeps secrets out of every error and log line."""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segkit.credentials import AUTH_ENV, TOKEN_ENV, read_secret
from segkit.dashboard.common import DIRECT_OPENER, HOST, INSTALL_HINT, DashboardError
from segkit.progress import watching

log = logging.getLogger("segkit")

GENERATED_USER = "segkit"
REDACTED = "[redacted]"
NO_TOKEN_HELP = (
    "no ngrok token: the public link needs a (free) ngrok account. Get your authtoken at "
    "https://dashboard.ngrok.com/get-started/your-authtoken and set it: `export NGROK_AUTHTOKEN=...` "
    "in a terminal, or on Kaggle add a secret named NGROK_AUTHTOKEN (Add-ons > Secrets) and tick it "
    "for this notebook. Never paste the token into a notebook cell."
)


# ----------------------------------------------------------------------------- secrets


@dataclass(frozen=True)
class _Credentials:
    user: str
    password: str = field(repr=False)
    generated: bool = False

    @property
    def pair(self) -> str:
        return f"{self.user}:{self.password}"


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
    value = read_secret(AUTH_ENV)
    if value is None:
        if not watching():
            raise DashboardError(
                "a generated dashboard password can only be shown to a person (terminal or live notebook), and "
                f"this run is headless. Set {AUTH_ENV}=user:password (on Kaggle: a secret of that name, Add-ons > "
                "Secrets), or pass auth=False / --no-auth to open the link without a password"
            )
        return _Credentials(GENERATED_USER, secrets.token_urlsafe(12), generated=True)
    user, sep, password = value.partition(":")
    if not sep or not user or not 8 <= len(password) <= 128:
        found = "no ':'" if not sep else ("an empty user" if not user else f"a password of {len(password)} characters")
        raise DashboardError(
            f"{AUTH_ENV} must be user:password with a password of 8-128 characters (ngrok's rule); it has {found}"
        )
    return _Credentials(user, password)


def _show_once(creds: _Credentials, public_url: str) -> None:
    """The generated password goes to the person, not to the log (headless runs never get here)."""
    stream = sys.stderr if sys.stderr.isatty() else sys.stdout
    print(
        f"dashboard password (shown once, not saved): user {creds.user!r}, password {creds.password!r} "
        f"for {public_url}. Set {AUTH_ENV}=user:password to choose your own.",
        file=stream,
        flush=True,
    )


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


@dataclass(frozen=True)
class Tunnel:
    """An open public ngrok link to a local port. `close()` ends it and the ngrok agent."""

    public_url: str  # https://<random>.ngrok-free.app
    auth_user: str | None  # basic-auth user; None: open to anyone with the link (the password is never kept)
    _pyngrok_config: Any = field(repr=False, compare=False)  # the agent serving it (holds the token)

    def close(self) -> None:
        """Disconnect the link and stop its ngrok agent."""
        from pyngrok import exception as exc
        from pyngrok import ngrok

        try:
            ngrok.disconnect(self.public_url, self._pyngrok_config)
            ngrok.kill(self._pyngrok_config)
        except (exc.PyngrokError, OSError) as e:
            log.warning("dashboard: closing the tunnel failed: %s", scrub(str(e), list(_REDACT.secrets)))


def open_tunnel(port: int, auth: bool = True) -> Tunnel:
    """Open a public ngrok link to a local dashboard on 127.0.0.1:`port`.

    Args:
        port: The local port TensorBoard serves on (`Dashboard.port`).
        auth: Basic auth (default); False opens the link to anyone who has it.

    Returns:
        The open `Tunnel`; the caller closes it.

    Raises:
        DashboardError: no pyngrok, no token, unusable credentials, no agent / internet, ngrok
            refused, or the link did not ask for the password (then it is closed). The message
            never contains the token or the password.
    """
    ngrok, conf = _import_pyngrok()
    config = conf.PyngrokConfig()  # honours $PYNGROK_NGROK_PATH for a manually installed agent
    token = read_secret(TOKEN_ENV) or _token_from_ngrok_config(conf.get_config_path(config))
    if not token:
        raise DashboardError(NO_TOKEN_HELP)
    creds = _credentials(auth)
    secret_values = [token] + ([creds.password, creds.pair] if creds else [])
    _guard_pyngrok_logs(secret_values)
    config.auth_token = token
    options = _auth_options(config, creds)
    with _explained_pyngrok_errors(secret_values):
        connected = ngrok.connect(f"http://{HOST}:{port}", "http", pyngrok_config=config, **options)
    tunnel = Tunnel(connected.public_url, creds.user if creds else None, config)
    if creds is None:
        log.warning("dashboard: %s is open to anyone who has the link (auth disabled)", tunnel.public_url)
    else:
        try:
            _check_protected(tunnel.public_url)
        except BaseException:  # also Ctrl-C while checking: no link stays open without its password
            tunnel.close()
            raise
        if creds.generated:
            _show_once(creds, tunnel.public_url)
    log.info("dashboard: public link %s -> http://%s:%d/", tunnel.public_url, HOST, port)
    return tunnel


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
            "agent yourself (https://ngrok.com/download) and point pyngrok at it: "
            "export PYNGROK_NGROK_PATH=/path/to/ngrok"
        ) from None
    except exc.PyngrokNgrokHTTPError as e:
        raise DashboardError(
            f"ngrok refused the tunnel: {scrub(_ngrok_http_message(e), secret_values)}. On the free plan one agent "
            "session runs at a time: stop other ngrok agents (https://dashboard.ngrok.com/agents)"
        ) from None
    except exc.PyngrokNgrokError as e:
        message = scrub(str(e.ngrok_error or e), secret_values)
        hint = (
            " Check the token (https://dashboard.ngrok.com/get-started/your-authtoken)."
            if _auth_failure(message)
            else ""
        )
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
    return any(
        code in message for code in ("ERR_NGROK_105", "ERR_NGROK_107", "ERR_NGROK_4018", "authentication failed")
    )


def _check_protected(public_url: str) -> None:
    """Fail closed: raise if the link serves the dashboard without the password (the caller closes it)."""
    request = urllib.request.Request(public_url, headers={"ngrok-skip-browser-warning": "1"})
    status = None
    for _ in range(3):
        try:
            with DIRECT_OPENER.open(request, timeout=10) as response:
                status = response.status
        except urllib.error.HTTPError as e:
            status = e.code
        except OSError:
            status = None
        if status in (401, 407) or (status is not None and status < 400):
            break
        time.sleep(1)
    if status not in (401, 407):
        got = "no answer" if status is None else f"HTTP {status}"
        raise DashboardError(
            f"the public link did not ask for a password ({got} without credentials), so it was closed. "
            "Your ngrok agent may not support the basic-auth traffic policy: update it (`ngrok update`) and retry"
        )
