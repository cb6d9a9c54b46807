"""The secrets segkit knows: the ngrok authtoken and API key (the dashboard's public link), the
dashboard's basic-auth credentials, and the Kaggle CLI's API token (and its legacy key).

They come from the environment or, inside a Kaggle kernel, from Kaggle Secrets (Add-ons >
Secrets), never from a notebook cell or a file in git. segkit never prints, logs or writes them:
subprocesses that need none of them (TensorBoard, the wheel build) get an environment without
them, and a Kaggle bundle that holds one of their values is refused.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger("segkit")

TOKEN_ENV = "NGROK_AUTHTOKEN"  # the ngrok agent's authtoken, for the dashboard's public link
AUTH_ENV = "SEGKIT_DASHBOARD_AUTH"  # "user:password", the public link's basic auth
# Every secret's variable name: kept out of subprocess environments and out of Kaggle bundles.
SECRET_ENV = ("KAGGLE_API_TOKEN", "KAGGLE_KEY", TOKEN_ENV, "NGROK_API_KEY", AUTH_ENV)


def kaggle_secret(name: str) -> str | None:
    """A Kaggle Secret attached to this notebook, else None (also off Kaggle).

    Args:
        name: The secret's label in Add-ons > Secrets.
    """
    try:
        from kaggle_secrets import UserSecretsClient  # only importable inside Kaggle kernels
    except ImportError:
        return None
    try:
        value = UserSecretsClient().get_secret(name)
    except Exception as e:  # noqa: BLE001 -- its error classes are Kaggle-internal; absent secret = None
        log.info("Kaggle secret %s is not available (%s)", name, type(e).__name__)
        return None
    return (value.strip() or None) if isinstance(value, str) else None


def read_secret(name: str) -> str | None:
    """A secret from the environment variable `name`, else the Kaggle Secret of that name.

    Args:
        name: The variable's name, e.g. `TOKEN_ENV`.

    Returns:
        The value without surrounding whitespace, or None if neither is set (or both are blank).
    """
    return os.environ.get(name, "").strip() or kaggle_secret(name)
