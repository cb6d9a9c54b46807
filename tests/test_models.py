"""Models: shapes, parameter counts, size errors, specs, torchvision weight loading, AMP, ONNX."""

from __future__ import annotations

import json

import pytest
import torch

from segkit.errors import CheckpointError, ConfigError
from segkit.models import (
    available_models,
    check_input_size,
    create_model,
    model_from_spec,
    model_spec,
)

TINY = {"name": "unet", "base_channels": 8, "depth": 2}
SMALL_DECODER = (32, 16, 16, 8, 8)
SEED_DEFAULTS = {"base_channels": 64, "depth": 4, "upsample": "transpose", "dropout": 0.0,
                 "in_channels": 3}


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


@pytest.mark.parametrize("name", available_models())
def test_every_registered_model_runs_forward_and_backward(name: str) -> None:
    torch.manual_seed(0)
    # The default "unet" is the 31M seed model: this is its only forward pass in the file.
    _forward_backward(create_model(name, num_classes=19), 19)


@pytest.mark.parametrize("options", [
    {"upsample": "bilinear"},
    {"dropout": 0.2},
    {"depth": 3, "in_channels": 1},
])
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
    assert model_spec(seed) == {"name": "unet", "num_classes": 2, **SEED_DEFAULTS}


def test_unet_defaults_are_the_seed_variant() -> None:
    spec = model_spec(create_model("unet", base_channels=8))  # cheap; only base differs
    assert spec == {"name": "unet", "num_classes": 19, **SEED_DEFAULTS, "base_channels": 8}


@pytest.mark.parametrize(("spec", "divisor"), [
    (TINY, 4),
    ({"name": "unet", "base_channels": 8}, 16),
    ({"name": "unet", "base_channels": 8, "depth": 5}, 32),
    ({"name": "resnet18-unet"}, 32),
])
def test_size_divisor(spec: dict, divisor: int) -> None:
    assert create_model(**spec).size_divisor == divisor


@pytest.mark.parametrize(("height", "width", "message"), [
    (250, 250, "image size 250 is not a multiple of 32; try 256"),
    (250, 512, "image size 250x512 is not a multiple of 32; try 256x512"),
    (512, 1000, "image size 512x1000 is not a multiple of 32; try 512x992"),
    (10, 10, "image size 10 is not a multiple of 32; try 32"),
])
def test_check_input_size_suggests_nearest(height: int, width: int, message: str) -> None:
    model = Wrapper(create_model("unet", base_channels=2, depth=5))  # wrappers are unwrapped
    with pytest.raises(ConfigError, match=message):
        check_input_size(model, height, width)
    check_input_size(model, 256, 512)  # valid: no error


def test_forward_rejects_bad_size_with_the_fix() -> None:
    with pytest.raises(ConfigError, match="image size 62x64 is not a multiple of 4; try 64x64"):
        create_model(**TINY)(torch.randn(1, 3, 62, 64))


def test_unknown_name_lists_valid_and_suggests_closest() -> None:
    with pytest.raises(ConfigError, match=r"valid: \['unet'.*did you mean 'resnet34-unet'"):
        create_model("resnet34unet")


def test_unknown_option_names_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['channels'\].*base_channels"):
        create_model("unet", channels=8)
    with pytest.raises(ConfigError, match="decoder_channels"):
        create_model("resnet18-unet", depth=50)  # depth is fixed by the name
    with pytest.raises(ConfigError, match="upsample must be one of"):
        create_model("unet", upsample="nearest")


@pytest.mark.parametrize("spec", [
    {**TINY, "num_classes": 5, "upsample": "bilinear", "dropout": 0.1},
    {"name": "resnet18-unet", "num_classes": 7, "decoder_channels": SMALL_DECODER},
])
def test_spec_round_trips_through_json(spec: dict) -> None:
    model = create_model(**spec)
    saved = json.loads(json.dumps(model_spec(model)))
    assert saved["name"] == spec["name"] and saved["num_classes"] == spec["num_classes"]
    rebuilt = model_from_spec(saved)
    assert model_spec(rebuilt) == saved
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert shapes == {k: v.shape for k, v in rebuilt.state_dict().items()}
    rebuilt.load_state_dict(model.state_dict())  # strict: identical architecture


def test_model_from_spec_rejects_non_spec() -> None:
    with pytest.raises(CheckpointError, match="'name' key"):
        model_from_spec({"num_classes": 19})


# --- torchvision compatibility --------------------------------------------------------------

# Hand-copied from torchvision's resnet18().state_dict(): a few entries of each kind.
TORCHVISION_RESNET18_SAMPLES = {
    "conv1.weight": (64, 3, 7, 7),
    "bn1.weight": (64,),
    "bn1.running_mean": (64,),
    "bn1.num_batches_tracked": (),
    "layer1.0.conv1.weight": (64, 64, 3, 3),
    "layer1.1.bn2.running_var": (64,),
    "layer2.0.conv1.weight": (128, 64, 3, 3),
    "layer2.0.downsample.0.weight": (128, 64, 1, 1),
    "layer2.0.downsample.1.running_mean": (128,),
    "layer3.1.conv2.weight": (256, 256, 3, 3),
    "layer4.0.downsample.0.weight": (512, 256, 1, 1),
    "layer4.1.bn2.bias": (512,),
    "fc.weight": (1000, 512),
    "fc.bias": (1000,),
}


def torchvision_resnet_shapes(blocks: tuple[int, ...], bottleneck: bool) -> dict[str, tuple]:
    """torchvision's ResNet state_dict names and shapes, written out from its architecture."""
    def bn(prefix: str, c: int) -> dict[str, tuple]:
        return {f"{prefix}.{n}": (c,) for n in ("weight", "bias", "running_mean", "running_var")
                } | {f"{prefix}.num_batches_tracked": ()}

    shapes = {"conv1.weight": (64, 3, 7, 7), **bn("bn1", 64)}
    expansion, in_c = (4 if bottleneck else 1), 64
    for stage, n_blocks in enumerate(blocks, start=1):
        width = 64 * 2 ** (stage - 1)
        for b in range(n_blocks):
            p = f"layer{stage}.{b}"
            convs = ([(in_c, width, 1), (width, width, 3), (width, width * 4, 1)] if bottleneck
                     else [(in_c, width, 3), (width, width, 3)])
            for i, (ci, co, k) in enumerate(convs, start=1):
                shapes |= {f"{p}.conv{i}.weight": (co, ci, k, k), **bn(f"{p}.bn{i}", co)}
            if b == 0 and (stage > 1 or in_c != width * expansion):
                shapes |= {f"{p}.downsample.0.weight": (width * expansion, in_c, 1, 1),
                           **bn(f"{p}.downsample.1", width * expansion)}
            in_c = width * expansion
    return shapes | {"fc.weight": (1000, in_c), "fc.bias": (1000,)}


RESNETS = {18: ((2, 2, 2, 2), False, 122), 34: ((3, 4, 6, 3), False, 218),
           50: ((3, 4, 6, 3), True, 320)}


@pytest.mark.parametrize("depth", [18, 34, 50])
def test_encoder_state_dict_is_torchvision_minus_fc(depth: int) -> None:
    blocks, bottleneck, count = RESNETS[depth]
    expected = torchvision_resnet_shapes(blocks, bottleneck)
    assert len(expected) == count  # torchvision's count, fc included
    if depth == 18:
        assert {k: expected[k] for k in TORCHVISION_RESNET18_SAMPLES} == TORCHVISION_RESNET18_SAMPLES
    encoder = create_model(f"resnet{depth}-unet", decoder_channels=SMALL_DECODER).encoder
    own = {k: tuple(v.shape) for k, v in encoder.state_dict().items()}
    assert list(own) == [k for k in expected if not k.startswith("fc.")]  # same order too
    assert own == {k: v for k, v in expected.items() if not k.startswith("fc.")}


def _fake_torchvision_file(tmp_path, depth: int = 18, drop: str = "", add: str = ""):
    """Write a state dict with torchvision's names, shapes and dtypes; return (path, state)."""
    torch.manual_seed(depth)
    state = {k: (torch.tensor(7) if k.endswith("num_batches_tracked") else torch.randn(shape))
             for k, shape in torchvision_resnet_shapes(*RESNETS[depth][:2]).items() if k != drop}
    if add:
        state[add] = torch.zeros(1)
    path = tmp_path / f"resnet{depth}-fake.pth"
    torch.save(state, path)
    return path, state


def test_encoder_weights_load_from_torchvision_file(tmp_path) -> None:
    path, state = _fake_torchvision_file(tmp_path)
    model = create_model("resnet18-unet", num_classes=3, decoder_channels=SMALL_DECODER,
                         encoder_weights=str(path))
    loaded = model.encoder.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items() if not k.startswith("fc."))
    assert model_spec(model)["encoder_weights"] is None  # the checkpoint carries the weights
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 3, 64, 64)


@pytest.mark.parametrize(("kwargs", "depth", "message"), [
    ({"drop": "layer3.1.bn1.running_var"}, 18, "missing keys layer3.1.bn1.running_var"),
    ({"add": "layer5.0.conv1.weight"}, 18, "unexpected keys layer5.0.conv1.weight"),
    ({}, 34, r"unexpected keys layer1.2.conv1.weight.* and \d+ more"),
    ({}, 50, r"shape mismatch layer1.0.conv1.weight \(64, 64, 1, 1\)"),
])
def test_mismatched_encoder_weights_name_keys_and_file(tmp_path, kwargs, depth, message) -> None:
    path, _ = _fake_torchvision_file(tmp_path, depth, **kwargs)
    with pytest.raises(CheckpointError, match=message) as info:
        create_model("resnet18-unet", decoder_channels=SMALL_DECODER, encoder_weights=path)
    assert "resnet18-f37072fd.pth" in str(info.value)


def test_missing_or_corrupt_encoder_weights_file(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="not found; expected .*resnet50-0676ba61.pth"):
        create_model("resnet50-unet", encoder_weights=tmp_path / "nope.pth")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read encoder weights"):
        create_model("resnet18-unet", encoder_weights=bad)


# --- Kaggle runtime paths: AMP, channels_last, ONNX -------------------------------------------

@pytest.mark.parametrize("spec", [TINY, {"name": "resnet18-unet", "decoder_channels": SMALL_DECODER}])
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
    torch.onnx.export(model, (torch.randn(1, 3, 32, 32),), str(path), opset_version=17,
                      dynamo=False, input_names=["image"], output_names=["logits"],
                      dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"}})
    x = torch.randn(2, 3, 64, 96)
    onnx_logits = ort.InferenceSession(str(path)).run(None, {"image": x.numpy()})[0]
    with torch.no_grad():
        assert abs(onnx_logits - model(x).numpy()).max() < 1e-4
