"""The model zoo, family by family: pretrained weights through the library's real loading path
(a hub cache the test fills, offline), training through `fit` with the features Kaggle runs use,
exact resume, checkpoints that rebuild with no network, every inference mode, ONNX parity, and
torch.compile's graph capture.

Families: U-Net on ResNet-18, DeepLabV3+ on ResNet-18 (dilated, output stride 16), FPN on a timm
encoder (tu-resnet10t), SegFormer (mit_b0). Tiny data (64x64), tiny steps: minutes, not hours.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from segkit.checkpoint import load_checkpoint
from segkit.config import TrainConfig
from segkit.data.cityscapes import read_image
from segkit.data.discover import find_data_roots
from segkit.engine import fit
from segkit.evaluation import evaluate_split
from segkit.inference import load_predictor, predict_image
from segkit.launch import resolve_train_config
from segkit.models import create_model, facts, model_from_checkpoint
from segkit.models.weights import WeightsUnavailable

FAMILIES = [("unet", "resnet18"), ("deeplabv3plus", "resnet18"), ("fpn", "tu-resnet10t"), ("segformer", "mit_b0")]
IDS = [f"{m}+{e}" for m, e in FAMILIES]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    from conftest import write_cityscapes

    return write_cityscapes(tmp_path_factory.mktemp("zoo") / "cityscapes", splits={"train": 4, "val": 2}, size=(64, 64))


def config(data: Path, run_dir: Path, model: str, encoder: str, **changes) -> TrainConfig:
    base = TrainConfig(
        data_root=str(data),
        run_dir=str(run_dir),
        model=model,
        encoder=encoder,
        encoder_weights="imagenet",
        image_size=(64, 64),
        batch_size=2,
        epochs=2,
        lr=1e-3,
        num_workers=0,
        num_vis=1,
        log_every=1,
        scale_range=(0.75, 1.25),
        device="cpu",
    )
    return replace(base, **changes)


def encoder_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.encoder.state_dict().items() if v.is_floating_point()}


# ----------------------------------------------------------------------------- pretrained weights


@pytest.mark.parametrize(("model", "encoder"), FAMILIES, ids=IDS)
def test_pretrained_encoder_weights_load_from_the_hub_cache_offline(offline_hub, model, encoder):
    written = offline_hub(encoder)
    net = create_model(model, 19, encoder=encoder, encoder_weights="imagenet")
    random = create_model(model, 19, encoder=encoder, encoder_weights="none")
    loaded, fresh = encoder_tensors(net), encoder_tensors(random)
    # timm's features-only encoder drops the classifier, smp's encoders drop `fc`: compare what is kept.
    names = {k.removeprefix("model.") for k in loaded}
    assert names <= set(written) and len(names) > 10
    for key, value in loaded.items():
        assert torch.equal(value, written[key.removeprefix("model.")]), key
    assert any(not torch.equal(loaded[k], fresh[k]) for k in loaded)  # not a random init
    assert facts(net).pretrained["encoder_weights"] == "imagenet"


@pytest.mark.parametrize(
    ("alias", "timm_encoder", "mean"),
    [
        ("timm-mobilenetv3_large_100", "tu-tf_mobilenetv3_large_100", (0.5, 0.5, 0.5)),  # TF's Inception normalisation
        ("timm-regnetx_002", "tu-regnetx_002", (0.485, 0.456, 0.406)),
    ],
)
def test_an_smp_alias_of_a_timm_model_is_that_timm_encoder(offline_hub, alias, timm_encoder, mean):
    """smp builds its old `timm-*` names as `tu-` encoders: the same weights file, loaded by timm, and
    timm's normalisation for it (not ImageNet's: TF MobileNetV3 was trained on inputs in -1..1)."""
    written = offline_hub(alias)
    net = create_model("unet", 19, encoder=alias, encoder_weights="imagenet")
    same = create_model("unet", 19, encoder=timm_encoder, encoder_weights="imagenet")
    loaded = encoder_tensors(net)
    assert loaded.keys() == encoder_tensors(same).keys() and len(loaded) > 10
    for key, value in loaded.items():
        assert torch.equal(value, written[key.removeprefix("model.")]), key
    for weights in ("imagenet", "none"):
        built = net if weights == "imagenet" else create_model("unet", 19, encoder=alias, encoder_weights=weights)
        assert facts(built).mean == mean and facts(built).normalization == facts(same).normalization


def test_asked_for_weights_missing_offline_stop_before_training(offline_hub, data, tmp_path):
    cfg = config(data, tmp_path / "run", "segformer", "mit_b0")
    with pytest.raises(WeightsUnavailable) as err:
        resolve_train_config(cfg, {"model", "encoder"})
    message = str(err.value)
    assert "smp-hub/mit_b0.imagenet" in message and "/kaggle/input" in message and "--encoder-weights none" in message
    assert not (tmp_path / "run").exists()  # nothing was started


def test_a_weights_file_path_works_and_a_wrong_file_is_refused(offline_hub, tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(7)
    state = create_model("unet", 19, encoder="resnet18", encoder_weights="none").encoder.state_dict()
    path = tmp_path / "my_resnet18.safetensors"
    save_file(state, str(path))
    net = create_model("unet", 19, encoder="resnet18", encoder_weights=str(path))
    assert torch.equal(net.encoder.conv1.weight, state["conv1.weight"])
    other = create_model("unet", 19, encoder="resnet34", encoder_weights="none").encoder.state_dict()
    save_file(other, str(tmp_path / "resnet34.safetensors"))
    with pytest.raises(Exception, match="do not fit encoder resnet18"):
        create_model("unet", 19, encoder="resnet18", encoder_weights=str(tmp_path / "resnet34.safetensors"))


# ----------------------------------------------------------------------------- training and everything after


# Exact resume is checked on a CNN with BatchNorm (U-Net on ResNet-18) and on the transformer (SegFormer, with
# drop-path drawing from the RNG); DeepLabV3+ and FPN hold no state of another kind, and train and rebuild here too.
RESUMED = {("unet", "resnet18"), ("segformer", "mit_b0")}


@pytest.mark.slow
@pytest.mark.parametrize(("model", "encoder"), FAMILIES, ids=IDS)
def test_family_trains_resumes_exactly_and_rebuilds_offline(offline_hub, data, tmp_path, model, encoder):
    offline_hub(encoder)
    cfg = resolve_train_config(config(data, tmp_path / "straight", model, encoder), {"model", "encoder"})
    straight = fit(cfg)
    assert (
        straight.status == "completed" and straight.history[-1]["train_loss"] < straight.history[0]["train_loss"] * 1.5
    )
    if (model, encoder) in RESUMED:
        first = fit(replace(cfg, run_dir=str(tmp_path / "resumed")), stop_at_step=3)  # 2 steps per epoch
        assert first.status == "stopped"
        resumed_cfg = resolve_train_config(replace(cfg, run_dir=str(tmp_path / "resumed"), resume=True), {"resume"})
        fit(resumed_cfg)
        a, b = (load_checkpoint(tmp_path / name / "last.pth") for name in ("straight", "resumed"))
        for key in a["model"]:
            assert torch.equal(a["model"][key], b["model"][key]), key
        assert b["pretrained"]["encoder_weights"] == "imagenet"  # the resumed run records its start as well
    assert load_checkpoint(tmp_path / "straight" / "last.pth")["pretrained"]["encoder_weights"] == "imagenet"

    # The checkpoint rebuilds with no network and no weights on disk (smp issue #957).
    for repo in (Path(tmp_path / "hf" / "hub")).glob("models--*"):
        for f in repo.rglob("*"):
            if f.is_file() or f.is_symlink():
                f.unlink()
    ckpt = load_checkpoint(tmp_path / "straight" / "best_model.pth")
    rebuilt = model_from_checkpoint(ckpt)
    image = read_image(min((data / "leftImg8bit" / "val").rglob("*.png")))
    torch_pred = predict_image(rebuilt, ckpt, image)
    assert torch_pred.shape == image.shape[:2]
    onnx_pred = load_predictor(tmp_path / "straight" / "best_model.pth", backend="onnx")(image)
    assert (onnx_pred == torch_pred).mean() >= 0.999


@pytest.mark.slow
def test_kaggle_features_on_an_smp_model(offline_hub, data, tmp_path):
    """OHEM + class weights, the preprocessing cache, bf16 autocast (CPU), TensorBoard, a time
    budget, and every inference mode, on DeepLabV3+."""
    offline_hub("resnet18")
    cfg = config(
        data,
        tmp_path / "run",
        "deeplabv3plus",
        "resnet18",
        loss="ohem",
        class_weights="median",
        cache="build",
        amp="bf16",
        time_budget=5.0,
        epochs=2,
    )
    result = fit(resolve_train_config(cfg, {"model", "encoder", "loss", "class_weights", "cache", "amp"}))
    assert result.status == "completed" and result.metrics["protocol"]["resolution"] == "label"
    assert list((tmp_path / "run" / "tb").glob("events.out.tfevents.*")) and (tmp_path / "run" / "cache").is_dir()
    ckpt = load_checkpoint(tmp_path / "run" / "best_model.pth")
    net = model_from_checkpoint(ckpt)
    roots = find_data_roots(data)
    for mode in ("whole", "slide", "flip", "ms"):
        summary = evaluate_split(net, roots=roots, image_size=(64, 64), inference=mode)
        assert summary["protocol"]["inference"] == mode and 0 <= summary["miou"] <= 1


@pytest.mark.parametrize(("model", "encoder"), FAMILIES, ids=IDS)
def test_torch_compile_captures_forward_and_backward(model, encoder):
    """Dynamo + AOT autograd trace each family (the inductor code generation, a minute per model on
    this CPU, is left to GPU runs)."""
    torch._dynamo.reset()
    net = create_model(model, 19, encoder=encoder, encoder_weights="none")
    compiled = torch.compile(net, backend="aot_eager", fullgraph=False)
    x = torch.randn(2, 3, 64, 64)
    out = compiled(x)
    out.mean().backward()
    with torch.no_grad():
        net.eval()
        assert np.allclose(torch.compile(net, backend="aot_eager")(x).numpy(), net(x).numpy(), atol=1e-4)


def test_cli_without_the_weights_exits_2_with_the_fix_and_no_traceback(offline_hub, data, tmp_path, capsys):
    from segkit.cli import main

    code = main(
        [
            "train",
            "--data-root",
            str(data),
            "--run-dir",
            str(tmp_path / "run"),
            "--model",
            "fpn",
            "--encoder",
            "resnet18",
            "--image-size",
            "64",
            "64",
            "--device",
            "cpu",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "segkit train: error: pretrained weights 'imagenet' for encoder 'resnet18'" in err
    assert "hf download smp-hub/resnet18.imagenet model.safetensors" in err and "--encoder-weights none" in err
    assert not (tmp_path / "run").exists()
