"""Released Cityscapes models (smp's save_pretrained folders and hub repos) wherever a checkpoint is taken.

A tiny SegFormer is saved with segmentation_models_pytorch's own `save_pretrained` and its
preprocessing with albumentations' own `Compose.save_pretrained`, then laid out as a Hugging Face
cache the test makes; everything runs offline (HF_HUB_OFFLINE=1; the CLI tests also in a network
namespace with no network when the machine allows one). Known answers come from the reference
libraries: the logits equal `smp.from_pretrained`'s, the input equals albumentations' preprocessing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_cityscapes
from PIL import Image

from segkit.errors import CheckpointError, ConfigError
from segkit.inference import predict_image, to_input
from segkit.models import at_image_size, facts, model_from_checkpoint, open_checkpoint
from segkit.models.weights import WeightsUnavailable

REPO_ID = "smp-hub/segformer-test-64x128-city"
MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]  # mmseg's, in pixel units (max_pixel_value 1)
ENV = {**os.environ, "OMP_NUM_THREADS": "2", "HF_HUB_OFFLINE": "1", "SEGKIT_PROGRESS": "log"}


def save_released(folder: Path) -> Path:
    """A SegFormer (mit_b0, a non-default decoder width) saved as smp-hub's Cityscapes models are."""
    import albumentations as A
    import segmentation_models_pytorch as smp

    torch.manual_seed(0)
    model = smp.create_model(
        "segformer", encoder_name="mit_b0", encoder_weights=None, classes=19, decoder_segmentation_channels=32
    )
    model.save_pretrained(str(folder), dataset="cityscapes")
    A.Compose([A.Resize(64, 128), A.Normalize(mean=MEAN, std=STD, max_pixel_value=1.0)]).save_pretrained(str(folder))
    return folder


def write_hub_repo(cache: Path, repo_id: str, folder: Path, revision: str = "0" * 40) -> Path:
    """`folder`'s files laid out as huggingface_hub's cache holds a download: blobs, snapshot links, refs/main."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir(exist_ok=True)
    for path in folder.iterdir():
        data = path.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snapshot / path.name).symlink_to(Path("..", "..", "blobs", blob.name))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    return snapshot


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> Path:
    return save_released(tmp_path_factory.mktemp("released") / "segformer-test-64x128-city")


@pytest.fixture
def hub(tmp_path: Path, released: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The released model in a test-made hub cache, offline, nothing else on the machine's paths."""
    from huggingface_hub import constants

    for name in ("HF_HOME", "HUGGINGFACE_HUB_CACHE", "SEGKIT_WEIGHTS_DIR", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    cache = tmp_path / "hf"
    write_hub_repo(cache, REPO_ID, released)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.chdir(tmp_path)  # derived files go to ./runs/released/
    return cache


def _image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(64, 128, 3), dtype=np.uint8)


def test_a_hub_repo_id_opens_offline_as_smp_itself_loads_it(hub: Path, released: Path) -> None:
    import albumentations as A
    import segmentation_models_pytorch as smp

    ckpt = open_checkpoint(REPO_ID)
    assert ckpt["released"]["repo_id"] == REPO_ID and Path(ckpt["released"]["folder"]).parent.name == "snapshots"
    assert ckpt["image_size"] == [64, 128] and ckpt["model_spec"]["decoder_segmentation_channels"] == 32
    ours = model_from_checkpoint(ckpt)
    reference = smp.from_pretrained(str(released)).eval()
    preprocessing = A.Compose.from_pretrained(str(released))
    image = _image()
    theirs_input = torch.from_numpy(preprocessing(image=image)["image"]).permute(2, 0, 1)[None].float()
    our_input = to_input(image, ckpt["normalization"])
    assert torch.allclose(our_input, theirs_input, atol=1e-5)  # the same normalisation as its own preprocessing
    with torch.no_grad():
        assert torch.allclose(ours(our_input), reference(theirs_input), atol=1e-5)
    assert facts(ours).mean == pytest.approx((0.485, 0.456, 0.406)) and facts(ours).size_divisor == 32
    assert predict_image(ours, ckpt, image).shape == image.shape[:2]


def test_the_folder_itself_and_the_weights_dirs_find_it_too(
    hub: Path, released: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert open_checkpoint(released)["released"]["folder"] == str(released)
    shutil.rmtree(hub)
    with pytest.raises(
        WeightsUnavailable,
        match=r"(?s)released model 'smp-hub/segformer-test-64x128-city'.*"
        r"hf download smp-hub/segformer-test-64x128-city model.safetensors "
        r"config.json albumentations_config_eval.json",
    ):
        open_checkpoint(REPO_ID)
    kaggle = tmp_path / "kaggle_input" / "segformer-test-64x128-city"  # a Kaggle dataset's slug of the repo name
    shutil.copytree(released, kaggle)
    monkeypatch.setenv("SEGKIT_KAGGLE_INPUT", str(kaggle.parent))
    assert open_checkpoint(REPO_ID)["released"]["folder"] == str(kaggle)


def test_evaluate_predict_and_export_take_a_released_model_with_no_network(hub: Path, tmp_path: Path) -> None:
    data = write_cityscapes(tmp_path / "data", splits={"val": 2}, size=(64, 128))
    image = tmp_path / "in.png"
    Image.fromarray(_image()).save(image)
    env = {**ENV, "HF_HUB_CACHE": str(hub)}
    prefix = ["unshare", "-n"] if _can_unshare() else []  # no network at all, where the machine allows it
    commands = {
        "evaluate": ["evaluate", "--checkpoint", REPO_ID, "--data-root", str(data), "--split", "val"],
        "predict": [
            "predict",
            "--checkpoint",
            REPO_ID,
            "--img",
            str(image),
            "--output",
            "preds",
            "--format",
            "trainIds",
        ],
        "export": ["export", "--checkpoint", REPO_ID],
    }
    for name, args in commands.items():
        done = subprocess.run(
            [*prefix, sys.executable, "-m", "segkit", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, f"{name}: {done.stderr[-2000:]}"
    report = json.loads((tmp_path / "runs/released/segformer-test-64x128-city/eval_val_whole_label.json").read_text())
    assert report["protocol"]["images"] == 2 and report["checkpoint"] == REPO_ID and 0 <= report["miou"] <= 1
    ckpt = open_checkpoint(REPO_ID)
    expected = predict_image(model_from_checkpoint(ckpt), ckpt, _image())
    assert np.array_equal(np.array(Image.open(tmp_path / "preds" / "in_trainIds.png")), expected)
    assert (tmp_path / "runs/released/segformer-test-64x128-city/model.onnx").stat().st_size > 100_000


def _can_unshare() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True, check=False).returncode == 0


def test_fine_tuning_starts_from_the_released_weights_and_records_it(hub: Path, tmp_path: Path) -> None:
    from segkit.config import TrainConfig
    from segkit.engine import fit
    from segkit.launch import resolve_train_config

    data = write_cityscapes(tmp_path / "data", splits={"train": 2, "val": 1}, size=(64, 128))
    cfg = TrainConfig(
        data_root=str(data),
        run_dir=str(tmp_path / "run"),
        init_from=REPO_ID,
        image_size=(64, 128),
        batch_size=2,
        epochs=1,
        lr=1e-9,
        num_workers=0,
        num_vis=1,
        eval_resolution="train",
    )
    cfg = resolve_train_config(
        cfg,
        {
            "data_root",
            "run_dir",
            "init_from",
            "image_size",
            "batch_size",
            "epochs",
            "lr",
            "num_workers",
            "num_vis",
            "eval_resolution",
        },
    )
    assert (cfg.model, cfg.encoder, cfg.encoder_weights) == ("segformer", "mit_b0", "")  # its architecture, taken
    fit(cfg)
    config = json.loads((tmp_path / "run" / "config.json").read_text())["config"]
    assert config["init_from"] == REPO_ID
    best = torch.load(tmp_path / "run" / "best_model.pth", weights_only=True)
    assert best["pretrained"]["init_from"] == REPO_ID and "released model" in best["pretrained"]["source"]
    assert best["model_spec"]["decoder_segmentation_channels"] == 32
    start = open_checkpoint(REPO_ID)["model"]
    assert all(
        torch.allclose(best["model"][k].float(), v.float(), atol=1e-6)
        for k, v in start.items()
        if v.is_floating_point() and "running" not in k
    )  # lr 1e-9: still the released weights


def test_init_from_refuses_an_architecture_the_user_set_otherwise(hub: Path, tmp_path: Path) -> None:
    from segkit.config import TrainConfig
    from segkit.launch import resolve_train_config

    cfg = TrainConfig(init_from=REPO_ID, model="fpn", encoder="resnet18", image_size=(64, 128))
    with pytest.raises(ConfigError, match=r"holds another network.*name 'segformer' there, 'fpn' asked"):
        resolve_train_config(cfg, {"init_from", "model", "encoder", "image_size"})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("classes", r"predicts 21 classes \(Pascal VOC's 21\?\).*19 train classes"),
        ("not-smp", r"is not a segmentation model saved by segmentation_models_pytorch: its _model_class is None"),
        ("no-weights", r"has config.json but no model.safetensors"),
        ("no-preprocessing", r"has no albumentations_config_eval.json, which holds its preprocessing"),
        ("other-preprocessing", r"holds \['LongestMaxSize', 'Normalize'\]; segkit reproduces at most one Resize"),
        ("no-dataset", r"cannot tell whether .* 19 outputs are Cityscapes' trainIds.*dataset='cityscapes'"),
        ("wrong-order", r"classes are \['sidewalk', 'road'.*Cityscapes' 19 trainIds in order"),
    ],
)
def test_a_released_model_segkit_cannot_use_is_refused_naming_what_was_found(
    released: Path, tmp_path: Path, change: str, message: str
) -> None:
    import albumentations as A

    folder = Path(shutil.copytree(released, tmp_path / ("model" if change == "no-dataset" else "model-city")))
    config = json.loads((folder / "config.json").read_text())
    if change == "classes":  # what an smp model saved with classes=21 writes (refused before any weight is read)
        (folder / "config.json").write_text(json.dumps({**config, "classes": 21}))
    elif change == "not-smp":  # e.g. a timm classifier's folder
        (folder / "config.json").write_text(json.dumps({"architecture": "resnet50", "num_classes": 1000}))
    elif change == "no-weights":
        (folder / "model.safetensors").unlink()
    elif change == "no-preprocessing":
        (folder / "albumentations_config_eval.json").unlink()
    elif change == "other-preprocessing":
        A.Compose([A.LongestMaxSize(128), A.Normalize()]).save_pretrained(str(folder))
    elif change == "no-dataset":  # no class names, no Cityscapes in the model card, no "city" in the name
        (folder / "README.md").write_text(
            (folder / "README.md").read_text().replace("cityscapes", "[More Information Needed]")
        )
    elif change == "wrong-order":
        from segkit.labels import CLASS_NAMES

        names = [CLASS_NAMES[1], CLASS_NAMES[0], *CLASS_NAMES[2:]]
        (folder / "config.json").write_text(json.dumps({**config, "id2label": dict(enumerate(names))}))
    with pytest.raises(CheckpointError, match=message):
        open_checkpoint(folder)


def test_a_missing_checkpoint_names_what_is_accepted(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"does not exist.*best_model.pth.*save_pretrained.*smp-hub/"):
        open_checkpoint(tmp_path / "nothing" / "best_model.pth")
    (tmp_path / "run").mkdir()
    with pytest.raises(CheckpointError, match=r"is a folder without config.json.*found nothing"):
        open_checkpoint(tmp_path / "run")


def test_a_released_model_with_normalize_alone_runs_at_each_images_own_size(tmp_path: Path) -> None:
    """smp-hub's ADE20K SegFormers save a Normalize and no Resize: segkit runs them on each image at
    its own size (padded to the size divisor), as their own preprocessing would, and says so."""
    import albumentations as A
    import segmentation_models_pytorch as smp

    from segkit.evaluation.network import evaluate_split
    from segkit.export import export_onnx

    folder = tmp_path / "segformer-test-city-normalize-only"
    torch.manual_seed(0)
    net = smp.create_model("segformer", encoder_name="mit_b0", encoder_weights=None, classes=19)
    net.save_pretrained(str(folder), dataset="cityscapes")
    A.Compose([A.Normalize(mean=MEAN, std=STD, max_pixel_value=1.0)]).save_pretrained(str(folder))
    ckpt = open_checkpoint(folder)
    assert tuple(ckpt["image_size"]) == (0, 0)  # metrics.OWN_SIZE
    model = model_from_checkpoint(ckpt)
    seen = []
    model.register_forward_pre_hook(lambda _m, args: seen.append(tuple(args[0].shape[-2:])))
    image = np.random.default_rng(0).integers(0, 256, size=(70, 100, 3), dtype=np.uint8)
    assert predict_image(model, ckpt, image).shape == (70, 100)
    assert seen == [(96, 128)]  # 70x100 as it is, padded to multiples of 32; never resized
    sized = at_image_size(ckpt, (32, 32))  # --image-size 32 32: resized to cover 32x32, aspect kept (32x46 -> 32x64)
    assert predict_image(model, sized, image).shape == (70, 100) and seen[-1] == (32, 64)
    assert at_image_size(ckpt, (0, 0)) is ckpt and tuple(ckpt["image_size"]) == (0, 0)  # the checkpoint untouched
    data = write_cityscapes(tmp_path / "data", splits={"val": 1}, size=(64, 96))
    from segkit.data.discover import find_data_roots

    summary = evaluate_split(model, roots=find_data_roots(data), image_size=tuple(ckpt["image_size"]), split="val")
    assert "its own size" in summary["protocol"]["input"] and summary["protocol"]["resolution"] == "label"
    with pytest.raises(Exception, match="drop --static"):
        export_onnx(folder, tmp_path / "m.onnx", dynamic=False, ckpt=ckpt)
