"""Today's Kaggle CLI credentials: API tokens (`KAGGLE_API_TOKEN`, ~/.kaggle/access_token) and the
legacy kaggle.json, as the bundle's username lookup and secret check see them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_kaggle import write_standin_notebook

from segkit.credentials import SECRET_ENV
from segkit.kaggle import BundleError, auth, bundle, bundling, kaggle_username

TOKEN = "KGAT_SENTINEL0123456789abcdef"  # shaped like a new-style API token
LEGACY_KEY = "SENTINEL-legacy-key-3f2a"


@pytest.fixture(autouse=True)
def kaggle_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty home: no KAGGLE_* variables, no ~/.kaggle, no ~/.config/kaggle."""
    for name in ("KAGGLE_CONFIG_DIR", "KAGGLE_USERNAME", "KAGGLE_KEY", auth.TOKEN_ENV, "XDG_CONFIG_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_the_api_token_is_a_secret() -> None:
    assert auth.TOKEN_ENV == "KAGGLE_API_TOKEN" and auth.TOKEN_ENV in SECRET_ENV and "KAGGLE_KEY" in SECRET_ENV


@pytest.mark.parametrize("where", [".kaggle", ".config/kaggle"])
def test_username_from_a_legacy_kaggle_json(kaggle_home: Path, where: str) -> None:
    _write(kaggle_home / where / "kaggle.json", json.dumps({"username": "legacy-user", "key": LEGACY_KEY}))
    assert kaggle_username() == "legacy-user"


def test_an_api_token_alone_names_no_user(kaggle_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(kaggle_home / ".kaggle" / "access_token", TOKEN + "\n")
    monkeypatch.setenv(auth.TOKEN_ENV, TOKEN)
    with pytest.raises(BundleError) as err:
        kaggle_username()
    message = str(err.value)
    assert "--username NAME" in message and "KAGGLE_USERNAME=NAME" in message and "kaggle auth login" in message
    assert str(kaggle_home / ".kaggle" / "kaggle.json") in message and TOKEN not in message
    monkeypatch.setenv("KAGGLE_USERNAME", "from-env")
    assert kaggle_username() == "from-env" and kaggle_username("explicit") == "explicit"


def test_kaggle_config_dir_replaces_the_home_folders(
    kaggle_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(kaggle_home / ".kaggle" / "kaggle.json", json.dumps({"username": "home-user"}))
    _write(tmp_path / "cfg" / "kaggle.json", json.dumps({"username": "cfg-user", "key": LEGACY_KEY}))
    _write(tmp_path / "cfg" / "access_token", f"  {TOKEN}  \n")
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "cfg"))
    assert auth.config_dirs() == [tmp_path / "cfg"] and kaggle_username() == "cfg-user"
    assert sorted(auth.file_secrets()) == sorted([TOKEN, LEGACY_KEY])


def _bundle_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, params: dict) -> Path:
    monkeypatch.setattr(bundling, "build_wheel", lambda dest, root=None: dest.mkdir(parents=True, exist_ok=True))
    monkeypatch.setattr(bundling, "smp_wheel", lambda dest, wheels_dir=None: None)
    notebook = write_standin_notebook(tmp_path / "nb.ipynb")
    return bundle(tmp_path / "out", params, username="tester", notebook=notebook)


@pytest.mark.parametrize("source", ["environment", "access_token file", "kaggle.json key"])
def test_a_pasted_kaggle_credential_is_refused(
    kaggle_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    secret = LEGACY_KEY if source == "kaggle.json key" else TOKEN
    if source == "environment":
        monkeypatch.setenv(auth.TOKEN_ENV, TOKEN)
    elif source == "access_token file":
        _write(kaggle_home / ".kaggle" / "access_token", TOKEN)
    else:
        _write(kaggle_home / ".kaggle" / "kaggle.json", json.dumps({"username": "u", "key": LEGACY_KEY}))
    with pytest.raises(BundleError, match="a secret .* ended up in") as err:
        _bundle_with(tmp_path, monkeypatch, {"run_dir": f"runs/{secret}"})
    assert secret not in str(err.value) and not (tmp_path / "out" / "kernel").exists()


def test_a_bundle_without_credentials_in_it_passes(
    kaggle_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(kaggle_home / ".kaggle" / "access_token", TOKEN)
    monkeypatch.setenv(auth.TOKEN_ENV, TOKEN)
    out = _bundle_with(tmp_path, monkeypatch, {"run_dir": "runs/fine"})
    assert (out / "kernel" / "02_train.ipynb").is_file()
    assert auth.TOKEN_ENV not in bundling._env_without_secrets()  # the wheel build's pip never sees it
