"""Shared fixtures: tiny data sets in the official Cityscapes layout, written as real PNG files."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# Tests run on CPU with few threads so that parallel helpers and CI stay predictable. Under
# pytest-xdist (`make test`: one worker per core) each worker gets its share of the cores: two
# workers of two OpenMP threads each on two cores spin against each other, and a test that takes
# 6 s alone was seen taking 150 s. Subprocesses (torchrun, papermill kernels) inherit the setting.
os.environ.setdefault("SEGKIT_SMOKE", "0")
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
os.environ.setdefault("OMP_NUM_THREADS", str(max(1, min(2, (os.cpu_count() or 1) // _WORKERS))))

# A few labelIds of evaluated classes (road 7, sidewalk 8, building 11, vegetation 21, sky 23,
# car 26, person 24) plus two that are not evaluated (unlabeled 0, ego vehicle 1).
_LABEL_IDS = np.array([7, 8, 11, 21, 23, 26, 24, 0, 1], dtype=np.uint8)


def write_cityscapes(
    root: Path,
    splits: dict[str, int] | None = None,
    size: tuple[int, int] = (64, 128),
    cities: tuple[str, ...] = ("aachen", "bremen"),
    seed: int = 0,
    train_ids: bool = False,
    color: bool = False,
) -> Path:
    """Write a small data set in the official layout under `root` and return `root`.

    Images are colour-coded blocks so that a model can learn them; labels are labelIds
    (and `_gtFine_labelTrainIds.png` too when `train_ids`).
    """
    from segkit.labels import LABEL_TO_TRAIN, train_to_color

    rng = np.random.default_rng(seed)
    splits = splits or {"train": 4, "val": 2}
    h, w = size
    for split, n in splits.items():
        for i in range(n):
            city = cities[i % len(cities)]
            stem = f"{city}_{i:06d}_{19:06d}"
            label = _random_blocks(rng, h, w)
            image = _image_for(label, rng)
            img_dir = root / "leftImg8bit" / split / city
            gt_dir = root / "gtFine" / split / city
            img_dir.mkdir(parents=True, exist_ok=True)
            gt_dir.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(img_dir / f"{stem}_leftImg8bit.png")
            Image.fromarray(label).save(gt_dir / f"{stem}_gtFine_labelIds.png")
            if train_ids:
                Image.fromarray(LABEL_TO_TRAIN[label]).save(gt_dir / f"{stem}_gtFine_labelTrainIds.png")
            if color:
                Image.fromarray(train_to_color(LABEL_TO_TRAIN[label])).save(gt_dir / f"{stem}_gtFine_color.png")
    return root


def write_image_pairs(
    root: Path,
    splits: dict[str, int] | None = None,
    size: tuple[int, int] = (64, 128),
    half: tuple[int, int] = (64, 64),
    seed: int = 0,
    suffix: str = ".jpg",
) -> Path:
    """Kaggle's Cityscapes Image Pairs in miniature: `root/<split>/<n>.jpg` (n = 1, 2, ...), each a
    photo and its colour mask drawn at `size`, squashed to `half` and put side by side, JPEG quality 75,
    as pix2pix made them (`segkit.data.pairs.make_pair`). Returns `root`; the true labelIds of
    `<split>/<n>` (at `size`) are in `<root>-truth/<split>/<n>.png`, beside the layout, not in it."""
    from segkit.data.pairs import make_pair

    rng = np.random.default_rng(seed)
    for split, n in (splits or {"train": 4, "val": 2}).items():
        (root / split).mkdir(parents=True, exist_ok=True)
        (truth := root.with_name(root.name + "-truth") / split).mkdir(parents=True, exist_ok=True)
        for i in range(1, n + 1):
            label = _random_blocks(rng, *size)
            (root / split / f"{i}{suffix}").write_bytes(make_pair(_image_for(label, rng), label, half, suffix=suffix))
            Image.fromarray(label).save(truth / f"{i}.png")
    return root


def _random_blocks(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A labelId map made of horizontal bands and a few rectangles."""
    label = np.empty((h, w), dtype=np.uint8)
    bands = rng.choice(_LABEL_IDS[:5], size=4, replace=False)
    edges = np.linspace(0, h, 5).astype(int)
    for b, (top, bottom) in enumerate(itertools.pairwise(edges)):
        label[top:bottom] = bands[b]
    for _ in range(3):
        y, x = rng.integers(0, h - 8), rng.integers(0, w - 8)
        label[y : y + rng.integers(4, h // 3), x : x + rng.integers(4, w // 3)] = rng.choice(_LABEL_IDS)
    return label


def _image_for(label: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """RGB image whose colour is a noisy function of the label (learnable, not trivial)."""
    ids = label.astype(np.int32)  # uint8 arithmetic would overflow
    base = np.stack([(ids * 37) % 256, (ids * 91) % 256, (ids * 53) % 256], axis=-1)
    noise = rng.normal(0, 12, size=base.shape)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


@pytest.fixture
def cityscapes_factory(tmp_path: Path):
    """Call with the keyword arguments of `write_cityscapes`; returns the data root."""
    counter = iter(range(1000))

    def make(**kwargs) -> Path:
        return write_cityscapes(tmp_path / f"cityscapes{next(counter)}", **kwargs)

    return make


@pytest.fixture
def tiny_cityscapes(cityscapes_factory) -> Path:
    """4 train + 2 val images of 64x128 in the official layout, labelIds only."""
    return cityscapes_factory()


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """One finished tiny training run (2 epochs at 32x64, TensorBoard every step), trained once per
    session and shared: read it, copy it, never change it."""
    from segkit.config import TrainConfig
    from segkit.engine import fit

    root = write_cityscapes(tmp_path_factory.mktemp("tiny-run-data"), splits={"train": 4, "val": 2}, size=(32, 64))
    run_dir = tmp_path_factory.mktemp("tiny-run") / "run"
    fit(
        TrainConfig(
            data_root=str(root),
            run_dir=str(run_dir),
            image_size=(32, 64),
            epochs=2,
            base_channels=4,
            depth=2,
            batch_size=2,
            lr=3e-3,
            num_workers=0,
            num_vis=1,
            log_every=1,
            device="cpu",
        )
    )
    return run_dir


def write_hub_cache(cache: Path, repo_id: str, revision: str, weights: Path) -> Path:
    """Lay out one repo as huggingface_hub does: blobs/<hash>, snapshot symlinks, refs/main."""
    repo_dir = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo_dir / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (repo_dir / "blobs").mkdir()
    config = json.dumps({"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}).encode()
    for name, data in (("model.safetensors", weights.read_bytes()), ("config.json", config)):
        blob = hashlib.sha256(data).hexdigest()
        (repo_dir / "blobs" / blob).write_bytes(data)
        (snapshot / name).symlink_to(Path("..", "..", "blobs", blob))
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(revision)
    return snapshot / "model.safetensors"


@pytest.fixture
def offline_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """HF_HUB_OFFLINE=1 with an empty hub cache in tmp_path; call it with an encoder name to put
    pretrained weights for it there (a random init the test can recognise), as a download would.

    Returns (from the call) the state dict written, as the encoder's weights file holds it.
    """
    from safetensors.torch import save_file

    for name in ("HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_OFFLINE", "HF_ENDPOINT", "SEGKIT_WEIGHTS_DIR"):
        monkeypatch.delenv(name, raising=False)
    cache = tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("SEGKIT_KAGGLE_INPUT", str(tmp_path / "kaggle_input"))

    def put(encoder: str, variant: str = "imagenet") -> dict:
        import segmentation_models_pytorch as smp
        import timm
        import torch

        from segkit.models.weights import weights_source
        from segkit.models.zoo import timm_name

        source = weights_source(encoder, variant)
        torch.manual_seed(1234)  # not the training seed: the test can tell these weights apart
        name = timm_name(encoder)
        if name is not None:  # timm's hub files hold the whole classifier
            state = timm.create_model(f"{name.split('.')[0]}.{source.variant}", pretrained=False).state_dict()
        else:
            state = smp.encoders.get_encoder(encoder, weights=None).state_dict()
        file = tmp_path / "made" / f"{encoder}.safetensors"
        file.parent.mkdir(exist_ok=True)
        save_file({k: v.contiguous() for k, v in state.items()}, str(file))
        write_hub_cache(cache, source.repo_id, source.revision or "0" * 40, file)
        return state

    return put


class Kernel:
    """A real Jupyter kernel driven as a front end drives it."""

    def __init__(self, client) -> None:
        self.client = client

    def run(self, code: str, allow_stdin: bool) -> list[dict]:
        """Execute a cell; the iopub messages it caused, in order. JupyterLab, Notebook, VS Code and
        Kaggle send allow_stdin=True (they answer input()); papermill, nbclient and nbval send False."""
        msg_id = self.client.execute(code, allow_stdin=allow_stdin)
        messages = []
        while True:
            msg = self.client.get_iopub_msg(timeout=300)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return messages
            messages.append(msg)


def kernel_streams(messages: list[dict], name: str) -> str:
    """What a cell wrote to stdout or stderr."""
    return "".join(m["content"]["text"] for m in messages if m["msg_type"] == "stream" and m["content"]["name"] == name)


@pytest.fixture(scope="module")
def jupyter_kernel():
    """A python3 kernel running this checkout's segkit, without the environment's progress choices."""
    from jupyter_client.manager import start_new_kernel

    repo = Path(__file__).resolve().parents[1]
    drop = ("CI", "SEGKIT_PROGRESS", "RANK", "JPY_SESSION_NAME")
    env = {**{k: v for k, v in os.environ.items() if k not in drop}, "PYTHONPATH": str(repo)}
    manager, client = start_new_kernel(kernel_name="python3", env=env, cwd=str(repo))
    yield Kernel(client)
    client.stop_channels()
    manager.shutdown_kernel(now=True)
