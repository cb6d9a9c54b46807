"""The Kaggle CLI's credentials as segkit needs them: the username a kernel id starts with, and the
secret values a bundle must never contain. Read-only, standard library only, nothing printed.

The CLI (kaggle >= 1.8) signs in with an API token: `kaggle auth login`, `$KAGGLE_API_TOKEN`, or
the file `~/.kaggle/access_token`. Such a token does not say whose it is, so the username comes
from `--username` or `$KAGGLE_USERNAME`; a legacy `kaggle.json` ({"username", "key"}) still
gives one. The token and the legacy key are read only to check that a bundle holds neither.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

TOKEN_ENV = "KAGGLE_API_TOKEN"  # the CLI's API token (new style), also in segkit.credentials.SECRET_ENV
CONFIG_DIR_ENV = "KAGGLE_CONFIG_DIR"  # where the CLI keeps access_token and kaggle.json
TOKEN_FILE = "access_token"
LEGACY_FILE = "kaggle.json"
_MIN_SECRET = 6  # shorter values would match by chance (and are no real credential)


def config_dirs() -> list[Path]:
    """Where the CLI looks for its files: `$KAGGLE_CONFIG_DIR`, else ~/.kaggle and ~/.config/kaggle."""
    if os.environ.get(CONFIG_DIR_ENV):
        return [Path(os.environ[CONFIG_DIR_ENV]).expanduser()]
    xdg = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return [Path.home() / ".kaggle", xdg / "kaggle"]


def _legacy_config() -> dict:
    """The first readable kaggle.json as a dict ({} when there is none)."""
    for folder in config_dirs():
        try:
            config = json.loads((folder / LEGACY_FILE).read_text())
        except (OSError, ValueError):
            continue
        if isinstance(config, dict):
            return config
    return {}


def legacy_username() -> str | None:
    """The `username` of a legacy kaggle.json, else None."""
    username = _legacy_config().get("username")
    return str(username) if username else None


def no_username_message() -> str:
    """What to do when no username is known (the fix first, then why it is needed)."""
    searched = ", ".join(str(d / LEGACY_FILE) for d in config_dirs())
    return (
        "no Kaggle username: pass --username NAME or set KAGGLE_USERNAME=NAME (NAME as in your profile "
        "URL kaggle.com/NAME). The kernel's id is NAME/<slug>, and an API token (kaggle auth login, "
        f"{TOKEN_ENV}, ~/.kaggle/{TOKEN_FILE}) does not say whose it is; no legacy kaggle.json found "
        f"({searched})."
    )


def file_secrets() -> list[str]:
    """The secret values the CLI keeps in files: access_token, kaggle.json's key (never printed)."""
    values = []
    for folder in config_dirs():
        try:
            values.append((folder / TOKEN_FILE).read_text().strip())
        except (OSError, UnicodeDecodeError):
            pass
    values.append(str(_legacy_config().get("key") or ""))
    return [v for v in values if len(v) >= _MIN_SECRET]
