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

from segkit.credentials import (
    AUTH_ENV,
    SECRET_ENV,
    TOKEN_ENV,
)
from segkit.dashboard.cli import (
    cmd_dashboard,
    register_cli,
)
from segkit.dashboard.common import (
    HOST,
    INFO_FILE,
    INSTALL_HINT,
    DashboardError,
    info_path,
)
from segkit.dashboard.server import (
    PORT_TRIES,
    WINDOW_TITLE,
    Dashboard,
    launch,
)
from segkit.dashboard.tunnel import (
    GENERATED_USER,
    NO_TOKEN_HELP,
    REDACTED,
    Tunnel,
    open_tunnel,
    scrub,
)

__all__ = [
    "AUTH_ENV",
    "GENERATED_USER",
    "HOST",
    "INFO_FILE",
    "INSTALL_HINT",
    "NO_TOKEN_HELP",
    "PORT_TRIES",
    "REDACTED",
    "SECRET_ENV",
    "TOKEN_ENV",
    "WINDOW_TITLE",
    "Dashboard",
    "DashboardError",
    "Tunnel",
    "cmd_dashboard",
    "info_path",
    "launch",
    "open_tunnel",
    "register_cli",
    "scrub",
]
