"""Pretrained weights: the registries, every accepted layout, the offline message, the download.

Real files only: a real resnet18 state dict saved with safetensors, hub caches laid out the way
huggingface_hub writes them, and (online) a tiny fake hub served on 127.0.0.1.

How the hub cache is redirected: huggingface_hub copies HF_HOME / HF_HUB_CACHE / HF_HUB_OFFLINE /
HF_ENDPOINT into `huggingface_hub.constants` once, at import, so setting them here would not move
*its* default. segkit.models.weights reads them at call time instead (`hub_cache_dir()`,
`hub_offline()`) and passes `cache_dir=` / `endpoint=` to huggingface_hub explicitly, so
monkeypatch.setenv is enough and the library cannot look elsewhere. Cross-checks call
huggingface_hub with `cache_dir=hub_cache_dir()` for the same reason. Only the online tests also
patch `constants.HF_HUB_OFFLINE`, in case pytest itself was started with HF_HUB_OFFLINE=1.
"""

from __future__ import annotations

import hashlib
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import segmentation_models_pytorch as smp
import timm
from conftest import write_hub_cache
from huggingface_hub import constants, hf_hub_download
from safetensors.torch import load_file, save_file

from segkit.errors import ConfigError
from segkit.models.weights import (
    WEIGHTS_DIR_ENV,
    WeightsSource,
    WeightsUnavailable,
    fetch,
    find_local,
    hub_cache_dir,
    reachability,
    weights_source,
)

REPO = "smp-hub/resnet18.imagenet"
REVISION = smp.encoders.encoders["resnet18"]["pretrained_settings"]["imagenet"]["revision"]
CACHE_DIR_NAME = "models--smp-hub--resnet18.imagenet"  # huggingface_hub's name for REPO


@pytest.fixture(scope="session")
def weights_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real resnet18 encoder state dict (random init) saved as safetensors."""
    path = tmp_path_factory.mktemp("weights") / "model.safetensors"
    save_file(smp.encoders.get_encoder("resnet18", weights=None).state_dict(), str(path))
    return path


@pytest.fixture(autouse=True)
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Offline, an empty hub cache and Kaggle mount in tmp_path, no weights folder."""
    for name in ("HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_OFFLINE", "HF_ENDPOINT", WEIGHTS_DIR_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("SEGKIT_KAGGLE_INPUT", str(tmp_path / "kaggle_input"))
    return tmp_path


def place(root: Path, relative: str, weights: Path) -> Path:
    """Copy the weights to root/relative and return that path."""
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(weights, path)
    return path


# --- what to fetch: derived from smp's and timm's registries ------------------------------


def test_smp_variants_resolve_to_their_pinned_repos() -> None:
    for encoder, variant in [("resnet18", "imagenet"), ("resnet18", "ssl"), ("resnet50", "ssl")]:
        source = weights_source(encoder, variant)
        settings = smp.encoders.encoders[encoder]["pretrained_settings"][variant]
        assert source.repo_id == f"smp-hub/{encoder}.{variant}" == settings["repo_id"]
        assert source.revision == settings["revision"]
        assert source.variant == variant
        assert (source.filename, source.path) == ("model.safetensors", None)
    source = weights_source("resnet34", "imagenet")
    assert source.describe() == "smp-hub/resnet34.imagenet (model.safetensors @ 7a57b34)"


def test_tu_encoder_resolves_to_timm_repo_and_default_tag() -> None:
    source = weights_source("tu-resnet18", "imagenet")
    assert source.repo_id == timm.models.get_pretrained_cfg("resnet18").hf_hub_id
    assert (source.repo_id, source.variant) == ("timm/resnet18.a1_in1k", "a1_in1k")
    assert (source.revision, source.filename) == (None, "model.safetensors")
    tagged = weights_source("tu-resnet18.tv_in1k", "imagenet")
    assert (tagged.repo_id, tagged.variant) == ("timm/resnet18.tv_in1k", "tv_in1k")
    assert tagged.describe() == "timm/resnet18.tv_in1k (model.safetensors @ main)"


@pytest.mark.parametrize(
    ("encoder", "weights", "expected"),
    [
        ("resnet35", "imagenet", "did you mean .*'resnet34'"),
        ("tu-resnet181", "imagenet", "did you mean 'tu-resnet18'"),
        ("resnet18", "imagnet", "did you mean 'imagenet'"),
        ("resnet34", "ssl", r"Its variants: \['imagenet'\]"),
        ("tu-resnet18.tv_in1kk", "imagenet", "did you mean 'tv_in1k'"),
        ("tu-resnet18", "tv_in1k", "e.g. tu-resnet18.tv_in1k"),
        ("tu-botnet50ts_256", "imagenet", "timm has no pretrained weights for 'botnet50ts_256'"),
        ("tu-gcvit_tiny", "imagenet", "not from the Hugging Face hub"),
        ("resnet18", "none", "random initialisation"),
        ("resnet18", "", "random initialisation"),
        ("resnet18", "missing/resnet18.safetensors", "does not exist"),
    ],
)
def test_bad_requests_raise_config_errors_with_the_fix(encoder: str, weights: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):  # a regex
        weights_source(encoder, weights)


# --- where it is ----------------------------------------------------------------------------


def test_hub_cache_is_found_where_huggingface_hub_finds_it(env: Path, weights_file: Path) -> None:
    expected = write_hub_cache(env / "hf" / "hub", REPO, REVISION, weights_file)
    found = find_local(weights_source("resnet18", "imagenet"))
    assert found == expected
    hub_path = hf_hub_download(
        REPO,
        "model.safetensors",
        revision=REVISION,
        cache_dir=hub_cache_dir(),
        local_files_only=True,
    )
    assert Path(hub_path) == found
    encoder = smp.encoders.get_encoder("resnet18", weights=None)
    encoder.load_state_dict(load_file(found))  # strict: the file is a real resnet18 encoder


def test_hub_cache_follows_hf_home(env: Path, weights_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(env / "other_home"))
    assert hub_cache_dir() == env / "other_home" / "hub"
    expected = write_hub_cache(env / "other_home" / "hub", REPO, REVISION, weights_file)
    assert find_local(weights_source("resnet18", "imagenet")) == expected


def test_timm_source_is_found_through_refs_main(env: Path, weights_file: Path) -> None:
    expected = write_hub_cache(env / "hf" / "hub", "timm/resnet18.a1_in1k", "a" * 40, weights_file)
    assert find_local(weights_source("tu-resnet18", "imagenet")) == expected


@pytest.mark.parametrize(
    "relative",
    [
        f"{CACHE_DIR_NAME}/snapshots/{REVISION}/model.safetensors",  # a copy of a hub cache
        "resnet18.imagenet/model.safetensors",  # hf download ... --local-dir resnet18.imagenet
        "resnet18.imagenet.safetensors",  # one renamed file
        "encoders/resnet18.imagenet/model.safetensors",  # any of them a few levels down
    ],
)
def test_weights_dir_layouts(env: Path, weights_file: Path, monkeypatch: pytest.MonkeyPatch, relative: str) -> None:
    monkeypatch.setenv(WEIGHTS_DIR_ENV, str(env / "my_weights"))
    expected = place(env / "my_weights", relative, weights_file)
    assert find_local(weights_source("resnet18", "imagenet")) == expected


@pytest.mark.parametrize(
    "relative",
    [
        "resnet18-imagenet/model.safetensors",  # a dataset made from the folder: Kaggle's slug
        "datasets/someone/my-weights/resnet18.imagenet/model.safetensors",  # newer dataset mount
        "my-weights/resnet18.imagenet.safetensors",
        f"my-weights/hub/{CACHE_DIR_NAME}/snapshots/{REVISION}/model.safetensors",
        "resnet18-imagenet/pytorch/default/1/model.safetensors",  # Kaggle Model, files at top
        "encoders/pytorch/default/1/resnet18.imagenet/model.safetensors",  # Model with the folder
        "models/someone/encoders/pytorch/default/1/resnet18.imagenet/model.safetensors",
    ],
)
def test_kaggle_input_layouts(env: Path, weights_file: Path, relative: str) -> None:
    expected = place(env / "kaggle_input", relative, weights_file)
    assert find_local(weights_source("resnet18", "imagenet")) == expected


@pytest.mark.parametrize(
    "relative",
    [
        "cityscapes/leftImg8bit/train/resnet18.imagenet.safetensors",  # data trees are not walked
        "my-weights/model.safetensors",  # a bare file: which encoder's is it?
        "resnet34.imagenet/model.safetensors",  # another encoder
        "a/b/c/d/e/f/g/resnet18.imagenet.safetensors",  # deeper than the bound
    ],
)
def test_kaggle_input_ignores(env: Path, weights_file: Path, relative: str) -> None:
    place(env / "kaggle_input", relative, weights_file)
    assert find_local(weights_source("resnet18", "imagenet")) is None


def test_search_order_cache_then_weights_dir_then_kaggle(
    env: Path, weights_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = weights_source("resnet18", "imagenet")
    kaggle = place(env / "kaggle_input", "w/resnet18.imagenet.safetensors", weights_file)
    assert find_local(source) == kaggle
    monkeypatch.setenv(WEIGHTS_DIR_ENV, str(env / "my_weights"))
    mine = place(env / "my_weights", "resnet18.imagenet.safetensors", weights_file)
    assert find_local(source) == mine
    cached = write_hub_cache(env / "hf" / "hub", REPO, REVISION, weights_file)
    assert find_local(source) == cached


def test_other_snapshot_is_used_with_a_warning(env: Path, weights_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    expected = write_hub_cache(env / "hf" / "hub", REPO, "b" * 40, weights_file)
    assert find_local(weights_source("resnet18", "imagenet")) == expected
    assert "not at the pinned revision" in caplog.text


def test_user_file(env: Path, weights_file: Path) -> None:
    path = place(env, "downloads/r18.safetensors", weights_file)
    source = weights_source("resnet18", str(path))
    assert source == WeightsSource("resnet18", "file", None, None, "r18.safetensors", path)
    assert source.describe() == str(path)
    assert find_local(source) == fetch(source) == path
    with pytest.raises(ConfigError, match="is a folder"):
        weights_source("resnet18", str(path.parent))


# --- get it ---------------------------------------------------------------------------------


def test_offline_and_missing_says_exactly_what_to_do() -> None:
    source = weights_source("resnet50", "imagenet")
    started = time.monotonic()
    with pytest.raises(WeightsUnavailable) as caught:
        fetch(source)
    assert time.monotonic() - started < 2  # nothing was attempted on the network
    message = str(caught.value)
    for part in [
        "'imagenet' for encoder 'resnet50'",
        "offline mode is on",
        "smp-hub/resnet50.imagenet",
        source.revision,
        "hf download smp-hub/resnet50.imagenet model.safetensors --revision",
        "/kaggle/input",
        "SEGKIT_WEIGHTS_DIR",
        "--encoder-weights",
        "none",
        "Searched:",
    ]:
        assert part in message, part
    assert "Traceback" not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__ is False


def test_reachability_three_states(env: Path, weights_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ok, text = reachability("resnet18", "imagenet")
    assert not ok and "smp-hub/resnet18.imagenet" in text and "--encoder-weights" in text
    online(monkeypatch)
    ok, text = reachability("resnet18", "imagenet")
    assert ok and text.startswith("not on disk; will download smp-hub/resnet18.imagenet")
    expected = write_hub_cache(env / "hf" / "hub", REPO, REVISION, weights_file)
    assert reachability("resnet18", "imagenet") == (True, f"found: {expected}")


# --- the online path, against a fake hub on 127.0.0.1 --------------------------------------


def online(monkeypatch: pytest.MonkeyPatch, endpoint: str | None = None) -> None:
    """Leave offline mode, even if pytest was started with HF_HUB_OFFLINE=1 (see module doc)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    if endpoint is not None:
        monkeypatch.setenv("HF_ENDPOINT", endpoint)


class FakeHub(BaseHTTPRequestHandler):
    """The two requests hf_hub_download makes: HEAD for metadata, GET for the bytes."""

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def _answer(self, send_body: bool) -> None:
        self.server.requests.append(f"{self.command} {self.path}")  # type: ignore[attr-defined]
        data = self.server.files.get(self.path)  # type: ignore[attr-defined]
        if data is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("X-Repo-Commit", REVISION)  # the hub's headers that the client needs
        self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if send_body:
            self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_hub(weights_file: Path) -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    server.files = {  # type: ignore[attr-defined]
        f"/{REPO}/resolve/{REVISION}/model.safetensors": weights_file.read_bytes()
    }
    server.requests = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_online_download_goes_into_the_hub_cache(
    env: Path, weights_file: Path, fake_hub: ThreadingHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    online(monkeypatch, f"http://127.0.0.1:{fake_hub.server_port}")
    source = weights_source("resnet18", "imagenet")
    path = fetch(source)
    snapshot = env / "hf" / "hub" / CACHE_DIR_NAME / "snapshots" / REVISION
    assert path == snapshot / "model.safetensors"
    assert path.read_bytes() == weights_file.read_bytes()
    assert fake_hub.requests[-1].startswith("GET ")  # type: ignore[attr-defined]
    count = len(fake_hub.requests)  # type: ignore[attr-defined]
    assert fetch(source) == find_local(source) == path
    assert len(fake_hub.requests) == count  # type: ignore[attr-defined] # found, not fetched


def test_unreachable_hub_fails_fast_without_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:  # a port with nothing listening: connection refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    online(monkeypatch, f"http://127.0.0.1:{port}")
    started = time.monotonic()
    with pytest.raises(WeightsUnavailable) as caught:
        fetch(weights_source("resnet18", "imagenet"))
    # hf_hub_download alone would retry with backoff (1+2+4+8+8 s) before giving up.
    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert "ConnectError" in message and f"127.0.0.1:{port}" in message
    assert "Turn the kernel's Internet on" in message and "Traceback" not in message
