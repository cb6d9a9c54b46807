"""Model factory: `create_model(model, num_classes, encoder=..., encoder_weights=...)`.

Two builders: `unet` with no encoder is segkit's own U-Net (the seed's model, `UNet`); every
other combination is a segmentation_models_pytorch architecture on an smp or timm encoder
(`segkit.models.zoo`), its encoder starting from the pretrained weights `segkit.models.weights`
finds or downloads. Every model has an integer `size_divisor` (H and W must be multiples of it),
a `normalization` (mean, std) and maps (B, 3, H, W) images to (B, num_classes, H, W) logits.
`model_spec(model)` is a JSON-able dict from which `model_from_spec` rebuilds the architecture
(never fetching weights), so a checkpoint rebuilds its model with no flags and no network.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import torch
from torch import nn

from segkit.config import IMAGENET_MEAN, IMAGENET_STD, NO_WEIGHTS, RETIRED_MODELS, check_image_size
from segkit.errors import CheckpointError, ConfigError
from segkit.models import weights, zoo
from segkit.models.unet import UNet

__all__ = [
    "UNet",
    "check_input_size",
    "check_model",
    "create_model",
    "load_weights",
    "model_cost",
    "model_from_checkpoint",
    "model_from_spec",
    "model_spec",
    "unwrap",
]


def create_model(model: str = "unet", num_classes: int = 19, *, encoder: str = "", encoder_weights: str = "",
                 **options: Any) -> nn.Module:
    """Build a segmentation model.

    Args:
        model: "unet" or another smp architecture (`segkit.config.ARCHITECTURES`).
        num_classes: output channels (19 Cityscapes trainIds).
        encoder: smp encoder name or `tu-<timm model>`; "" = segkit's own U-Net (model "unet").
        encoder_weights: "imagenet" (or another variant smp lists for the encoder), a weights
            file, or "" / "none" for random initialisation. Asked-for weights that cannot be
            found or downloaded raise `WeightsUnavailable`; they never become a random init.
        **options: own U-Net: base_channels, depth, upsample, dropout; smp: its class's arguments.

    Returns:
        The model, with `size_divisor`, `normalization` and its spec recorded for `model_spec`.
    """
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"num_classes must be a positive int, got {num_classes!r}")
    pretrained = bool(encoder) and encoder_weights.lower() not in NO_WEIGHTS
    if not encoder:
        net = _own_unet(model, num_classes, options)
        net.normalization = (IMAGENET_MEAN, IMAGENET_STD)
    else:
        source = weights.weights_source(encoder, encoder_weights) if pretrained else None
        file = weights.fetch(source) if source else None
        net = zoo.build(model, encoder, num_classes, file, **options)
        net.size_divisor = int(net.encoder.output_stride)
        net.normalization = zoo.normalization(encoder, file)
        net.segkit_pretrained = {"encoder_weights": encoder_weights, "source": source.describe()} if source else None
    net.segkit_spec = {"name": model, "num_classes": num_classes, "encoder": encoder, **_jsonable(options)}
    return net


def _own_unet(model: str, num_classes: int, options: dict[str, Any]) -> nn.Module:
    if model != "unet":
        raise ConfigError(f"model {model!r} needs an encoder, e.g. encoder='resnet34'; only 'unet' has a built-in one")
    valid = [p for p in inspect.signature(UNet).parameters if p != "num_classes"]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ConfigError(f"unknown option(s) {unknown} for segkit's own U-Net; valid: {valid}")
    # Filled-in defaults go into the spec, so later default changes cannot alter a saved model.
    bound = inspect.signature(UNet).bind(num_classes=num_classes, **options)
    bound.apply_defaults()
    options.update({k: v for k, v in bound.arguments.items() if k != "num_classes"})
    return UNet(**bound.arguments)


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    def convert(v: Any) -> Any:
        if isinstance(v, (tuple, list)):
            return [convert(x) for x in v]
        return str(v) if isinstance(v, Path) else v

    return {k: convert(v) for k, v in values.items()}


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside DistributedDataParallel and/or torch.compile wrappers."""
    # DistributedDataParallel keeps the model in `.module`, torch.compile in `._orig_mod`.
    for attr in ("module", "_orig_mod"):
        inner = getattr(model, attr, None)
        if isinstance(inner, nn.Module):
            return unwrap(inner)
    return model


def check_input_size(model: nn.Module, height: int, width: int) -> None:
    """Raise ConfigError with the nearest valid size unless H and W are multiples of the model's divisor.

    Args:
        model: A segkit model (or a DDP / torch.compile wrapper of one).
        height: Input height in pixels.
        width: Input width in pixels.
    """
    inner = unwrap(model)
    name = getattr(inner, "segkit_spec", {}).get("name", type(inner).__name__)
    check_image_size((height, width), multiple=inner.size_divisor, minimum=1, model=name)


def check_model(model: str, encoder: str, encoder_weights: str, image_size: tuple[int, int],
                options: dict[str, Any] | None = None, batch_size: int = 2) -> None:
    """Everything about a model that can fail, checked before any data is read or weights fetched.

    Names (with did-you-mean), a pair smp refuses, weights asked for an encoder that has none, a
    training size the network cannot take, a batch too small for BatchNorm after global pooling
    (forward passes on the meta device: no memory, no compute) - each a ConfigError naming the fix.
    """
    if encoder and encoder_weights.lower() not in NO_WEIGHTS:
        weights.weights_source(encoder, encoder_weights)  # a variant the encoder has, or an existing file
    net = create_model(model, 19, encoder=encoder, encoder_weights="", **(options or {})).to("meta")
    check_input_size(net, *image_size)
    if not _forward_works(net.eval(), image_size):
        nearest = _nearest_working_size(net, image_size)
        hint = f"; try {nearest[0]}x{nearest[1]}" if nearest else ""
        raise ConfigError(f"model {model!r} on encoder {encoder!r} cannot take {image_size[0]}x{image_size[1]} "
                          f"inputs (too small for its deepest layers){hint}")
    if not _forward_works(net.train(), image_size, batch=batch_size):
        raise ConfigError(f"model {model!r} cannot train on batches of {batch_size} image per process: its "
                          "BatchNorm after global pooling (e.g. DeepLab's ASPP) needs at least 2. Set --batch-size 2 "
                          "or more (per GPU under torchrun).")


def _forward_works(net: nn.Module, size: tuple[int, int], batch: int = 1) -> bool:
    """One forward pass of a meta-device model; False if the shapes do not work out."""
    try:
        with torch.no_grad():
            net(torch.empty(batch, 3, *size, device="meta"))
    except (RuntimeError, ValueError, AssertionError):
        return False
    return True


def _nearest_working_size(net: nn.Module, size: tuple[int, int]) -> tuple[int, int] | None:
    """The smallest size at least `size`, in steps of the divisor keeping the aspect ratio, that runs."""
    d = net.size_divisor
    for k in range(1, 33):
        h = -(-int(size[0] * (1 + k / 8)) // d) * d  # grow by 1/8 steps, round up to the divisor
        w = max(d, round(h * size[1] / size[0] / d) * d)  # the same aspect ratio, to the divisor
        if _forward_works(net.eval(), (h, w)):
            return h, w
    return None


def model_cost(model: nn.Module, image_size: tuple[int, int]) -> dict[str, float]:
    """Parameters (millions) and GFLOPs of one forward pass on a (1, 3, H, W) image.

    FLOPs are counted by `torch.utils.flop_counter` (a multiply-add is 2 FLOPs) on the meta
    device: no memory, no compute. The model is moved to the meta device: pass a throwaway one.
    """
    from torch.utils.flop_counter import (
        FlopCounterMode,  # only the benchmarks and `segkit presets` count
    )

    params = sum(p.numel() for p in model.parameters()) / 1e6
    meta = model.eval().to("meta")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        meta(torch.empty(1, 3, *image_size, device="meta"))
    return {"params_m": params, "gflops": counter.get_total_flops() / 1e9}


def model_spec(model: nn.Module) -> dict[str, Any]:
    """Return the JSON-able dict that rebuilds `model`'s architecture (never its pretrained weights).

    Args:
        model: A model made by `create_model` (or a DDP / torch.compile wrapper of one).

    Returns:
        `{"name", "num_classes", "encoder", **options}` with every option filled in.
    """
    spec = getattr(unwrap(model), "segkit_spec", None)
    if spec is None:
        raise ConfigError(
            f"{type(model).__name__} was not built by segkit.models.create_model, so it has no "
            f"spec; build it with create_model(model, num_classes, encoder=..., **options)")
    return dict(spec)


def model_from_spec(spec: dict[str, Any]) -> nn.Module:
    """Rebuild a model (random weights, nothing downloaded) from `model_spec(...)`, e.g. read from a checkpoint."""
    if not isinstance(spec, dict) or "name" not in spec:
        raise CheckpointError(
            f"model spec must be a dict with a 'name' key (from segkit.models.model_spec), got "
            f"{spec!r}; was the checkpoint written by segkit?")
    spec = dict(spec)
    spec.pop("encoder_weights", None)  # the weights come from the checkpoint
    if spec["name"] in RETIRED_MODELS:
        raise CheckpointError(
            f"this checkpoint holds segkit 0.1's built-in {spec['name']}, which this version no longer builds "
            f"(its U-Nets on pretrained encoders come from segmentation_models_pytorch: {RETIRED_MODELS[spec['name']]}). "
            "Retrain with that, or evaluate the checkpoint with segkit 0.1."
        )
    name = spec.pop("name")
    return create_model(name, **spec)


def model_from_checkpoint(ckpt: dict[str, Any], device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the architecture from `model_spec`, load the weights (strict), eval mode; no network."""
    model = model_from_spec(ckpt["model_spec"])
    load_weights(model, ckpt["model"], source="checkpoint")
    norm = ckpt.get("normalization")
    if norm:
        model.normalization = (tuple(norm["mean"]), tuple(norm["std"]))
    return model.to(device).eval()


def load_weights(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """load_state_dict(strict=True), turning mismatches into a message that names them."""
    state_dict = {k.removeprefix("module.").removeprefix("_orig_mod."): v for k, v in state_dict.items()}
    own = model.state_dict()
    shape_diff = [
        f"{k}: {tuple(v.shape)} in {source} vs {tuple(own[k].shape)} in model"
        for k, v in state_dict.items()
        if k in own and own[k].shape != v.shape
    ]
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    if shape_diff or missing or unexpected:
        parts = []
        if shape_diff:
            parts.append("shape mismatches: " + "; ".join(shape_diff[:3]))
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})")
        raise CheckpointError(
            f"the {source} does not match the model ({'; '.join(parts)}): it was saved from a different "
            "architecture or number of classes. Rebuild the model from the checkpoint's model_spec "
            "(segkit predict/evaluate do this) or pick the matching checkpoint."
        )
    model.load_state_dict(state_dict, strict=True)
