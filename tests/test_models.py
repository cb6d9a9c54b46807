"""Models: shapes, parameter counts, names and sizes with their fixes, specs, AMP, ONNX."""

from __future__ import annotations

import json

import pytest
import torch

from segkit.errors import CheckpointError, ConfigError
from segkit.model_choice import ModelChoice
from segkit.models import (
    check_input_size,
    check_model,
    create_model,
    facts,
    model_from_spec,
    model_spec,
)

TINY = {"model": "unet", "base_channels": 8, "depth": 2}
SEED_DEFAULTS = {"base_channels": 64, "depth": 4, "upsample": "transpose", "dropout": 0.0, "in_channels": 3}


class Wrapper(torch.nn.Module):
    """Holds the model in `.module`, as DistributedDataParallel does."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = module


def _n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _forward_backward(model: torch.nn.Module, num_classes: int) -> None:
    x = torch.randn(2, 3, 64, 64)
    logits = model(x)
    assert logits.shape == (2, num_classes, 64, 64)
    assert torch.isfinite(logits).all()
    logits.square().mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize(("model", "encoder"), [("unet", ""), ("unet", "resnet18"), ("segformer", "mit_b0")])
def test_models_run_forward_and_backward(model: str, encoder: str) -> None:
    torch.manual_seed(0)
    # The default "unet" is the 31M seed model: this is its only forward pass in the file.
    _forward_backward(create_model(model, num_classes=19, encoder=encoder), 19)


@pytest.mark.parametrize(
    "options",
    [
        {"upsample": "bilinear"},
        {"dropout": 0.2},
        {"depth": 3, "in_channels": 1},
    ],
)
def test_unet_variants_run(options: dict) -> None:
    in_channels = options.get("in_channels", 3)
    model = create_model("unet", num_classes=3, base_channels=8, **{"depth": 2, **options})
    logits = model(torch.randn(2, in_channels, 64, 64))
    assert logits.shape == (2, 3, 64, 64)
    logits.mean().backward()


def test_seed_unet_matches_milesial_parameter_count() -> None:
    # milesial/Pytorch-UNet `UNet(n_channels=3, n_classes=2, bilinear=False)`: 31,037,698.
    # Same blocks here (bias-free convs + BN, 2x2 transposed conv up, 1x1 OutConv with bias).
    seed = create_model("unet", num_classes=2, base_channels=64, depth=4, upsample="transpose")
    assert _n_params(seed) == 31_037_698
    # The defaults are the seed's variant.
    assert model_spec(seed) == {"name": "unet", "num_classes": 2, "encoder": "", **SEED_DEFAULTS}


def test_unet_defaults_are_the_seed_variant() -> None:
    spec = model_spec(create_model("unet", base_channels=8))  # cheap; only base differs
    assert spec == {"name": "unet", "num_classes": 19, "encoder": "", **SEED_DEFAULTS, "base_channels": 8}


@pytest.mark.parametrize(
    ("spec", "divisor"),
    [
        (TINY, 4),
        ({"model": "unet", "base_channels": 8}, 16),
        ({"model": "unet", "base_channels": 8, "depth": 5}, 32),
        ({"model": "unet", "encoder": "resnet18"}, 32),
        ({"model": "deeplabv3plus", "encoder": "resnet18"}, 16),  # dilated: output stride 16
        ({"model": "segformer", "encoder": "mit_b0"}, 32),
    ],
)
def test_size_divisor(spec: dict, divisor: int) -> None:
    assert facts(create_model(**spec)).size_divisor == divisor


@pytest.mark.parametrize(
    ("height", "width", "message"),
    [
        (250, 250, "image size 250 is not a multiple of 32; try 256"),
        (250, 512, "image size 250x512 is not a multiple of 32; try 256x512"),
        (512, 1000, "image size 512x1000 is not a multiple of 32; try 512x992"),
        (10, 10, "image size 10 is not a multiple of 32; try 32"),
    ],
)
def test_check_input_size_suggests_nearest(height: int, width: int, message: str) -> None:
    model = Wrapper(create_model("unet", base_channels=2, depth=5))  # wrappers are unwrapped
    with pytest.raises(ConfigError, match=message):
        check_input_size(model, height, width)
    check_input_size(model, 256, 512)  # valid: no error


def test_forward_rejects_bad_size_with_the_fix() -> None:
    with pytest.raises(ConfigError, match="image size 62x64 is not a multiple of 4; try 64x64"):
        create_model(**TINY)(torch.randn(1, 3, 62, 64))


def test_unknown_names_list_valid_ones_and_suggest_the_closest() -> None:
    with pytest.raises(ConfigError, match=r"unknown model 'deeplabv3plsu'.*did you mean 'deeplabv3plus'"):
        create_model("deeplabv3plsu", encoder="resnet18")
    with pytest.raises(ConfigError, match=r"unknown encoder 'resnet19' \(did you mean 'resnet18'.*tu-<name>"):
        create_model("unet", encoder="resnet19")
    with pytest.raises(ConfigError, match=r"unknown timm model 'convnext_tinyy'.*did you mean 'tu-convnext_tiny'"):
        create_model("fpn", encoder="tu-convnext_tinyy")
    with pytest.raises(ConfigError, match="needs an encoder"):
        create_model("fpn")


def test_a_pair_smp_refuses_is_a_config_error_with_a_hint() -> None:
    with pytest.raises(ConfigError, match=r"smp cannot build model 'dpt' on encoder 'resnet18'.*tu-vit"):
        create_model("dpt", encoder="resnet18")
    with pytest.raises(ConfigError, match=r"smp cannot build model 'linknet' on encoder 'mit_b0'"):
        create_model("linknet", encoder="mit_b0")


def test_check_model_names_the_size_a_model_can_take() -> None:
    # PAN's feature pyramid attention pools the stride-32 map twice more: 64x128 is too small.
    with pytest.raises(ConfigError, match=r"cannot take 64x128 inputs.*try 128x256"):
        check_model(ModelChoice("pan", "resnet18"), (64, 128))
    check_model(ModelChoice("pan", "resnet18"), (128, 256))
    with pytest.raises(ConfigError, match="not a multiple of 16; try 128x224"):
        check_model(ModelChoice("deeplabv3plus", "resnet18"), (120, 230))


def test_unknown_option_names_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['channels'\].*base_channels"):
        create_model("unet", channels=8)
    with pytest.raises(ConfigError, match="upsample must be one of"):
        create_model("unet", upsample="nearest")


def test_retired_resnet_unet_checkpoints_say_what_to_do() -> None:
    with pytest.raises(CheckpointError, match="--model unet --encoder resnet34"):
        model_from_spec({"name": "resnet34-unet", "num_classes": 19, "decoder_channels": [256, 128, 64, 32, 16]})


@pytest.mark.parametrize(
    "spec",
    [
        {**TINY, "num_classes": 5, "upsample": "bilinear", "dropout": 0.1},
        {"model": "fpn", "encoder": "tu-resnet10t", "num_classes": 7, "decoder_dropout": 0.1},
    ],
)
def test_spec_round_trips_through_json(spec: dict) -> None:
    model = create_model(**spec)
    saved = json.loads(json.dumps(model_spec(model)))
    assert saved["name"] == spec["model"] and saved["num_classes"] == spec["num_classes"]
    rebuilt = model_from_spec(saved)
    assert model_spec(rebuilt) == saved
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert shapes == {k: v.shape for k, v in rebuilt.state_dict().items()}
    rebuilt.load_state_dict(model.state_dict())  # strict: identical architecture


def test_model_from_spec_rejects_non_spec() -> None:
    with pytest.raises(CheckpointError, match="'name' key"):
        model_from_spec({"num_classes": 19})


# --- torchvision compatibility --------------------------------------------------------------


@pytest.mark.parametrize("spec", [TINY, {"model": "unet", "encoder": "resnet18"}])
def test_channels_last_bf16_autocast_forward(spec: dict) -> None:
    model = create_model(**spec, num_classes=4).to(memory_format=torch.channels_last).eval()
    x = torch.randn(2, 3, 32, 32).to(memory_format=torch.channels_last)
    with torch.no_grad():
        reference = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(x)
    assert logits.dtype == torch.bfloat16 and logits.shape == (2, 4, 32, 32)
    assert torch.isfinite(logits).all()
    assert (logits.float() - reference).abs().max() < 0.25 * reference.abs().max()


def test_onnx_export_matches_pytorch_at_another_size(tmp_path) -> None:
    ort = pytest.importorskip("onnxruntime")
    model = create_model(**TINY, num_classes=3, upsample="bilinear").eval()
    path = tmp_path / "unet.onnx"
    torch.onnx.export(
        model,
        (torch.randn(1, 3, 32, 32),),
        str(path),
        opset_version=17,
        dynamo=False,
        input_names=["image"],
        output_names=["logits"],
        dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"}},
    )
    x = torch.randn(2, 3, 64, 96)
    onnx_logits = ort.InferenceSession(str(path)).run(None, {"image": x.numpy()})[0]
    with torch.no_grad():
        assert abs(onnx_logits - model(x).numpy()).max() < 1e-4


def test_check_model_refuses_batches_batchnorm_cannot_train_on() -> None:
    with pytest.raises(ConfigError, match=r"batches of 1 image per process.*--batch-size 2"):
        check_model(ModelChoice("deeplabv3plus", "resnet18"), (64, 64), batch_size=1)
    check_model(ModelChoice("deeplabv3plus", "resnet18"), (64, 64), batch_size=2)
    check_model(ModelChoice("unet", "", "", {"base_channels": 8}), (64, 64), batch_size=1)  # no pooled BatchNorm: fine


@pytest.mark.parametrize("encoder", ["resnet35", "tu-convnext_tinyy", "efficientnet-b9"])
def test_a_misspelt_encoder_gets_one_message_whatever_the_weights_and_wherever_it_is_checked(encoder: str) -> None:
    from segkit.kaggle.machine import preflight

    messages = []
    for weights in ("imagenet", "none", ""):
        with pytest.raises(ConfigError) as err:
            check_model(ModelChoice("unet", encoder, weights), (64, 64))
        messages.append(str(err.value))
    with pytest.raises(ConfigError) as err:
        create_model("fpn", encoder=encoder)
    messages.append(str(err.value))
    messages.append(preflight(encoder=encoder)["weights"]["detail"])  # Kaggle preflight reports it as a problem
    assert len(set(messages)) == 1, messages
    assert "did you mean" in messages[0]
