"""Model factory: `create_model(name, num_classes, **kwargs)` over a plain dict of builders.

Every model has an integer `size_divisor` (input H and W must be multiples of it) and maps
(B, 3, H, W) images to (B, num_classes, H, W) logits. `model_spec(model)` is a JSON-able dict
that `model_from_spec` (or `create_model(**spec)`) turns back into the same architecture, so a
checkpoint can rebuild its model without repeating command-line flags.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from segkit.config import check_image_size
from segkit.errors import CheckpointError, ConfigError
from segkit.models.resnet import ResNetUNet
from segkit.models.unet import UNet

__all__ = [
    "ResNetUNet",
    "UNet",
    "available_models",
    "check_input_size",
    "create_model",
    "load_weights",
    "model_from_checkpoint",
    "model_from_spec",
    "model_spec",
    "unwrap",
]


def _resnet_unet(depth: int) -> Callable[..., nn.Module]:
    # A builder per depth, so `depth` is fixed by the name and not a user option.
    def build(
        num_classes: int = 19,
        decoder_channels: tuple[int, ...] = (256, 128, 64, 32, 16),
        encoder_weights: str | None = None,
    ) -> nn.Module:
        return ResNetUNet(num_classes, depth, tuple(decoder_channels), encoder_weights)

    return build


_MODELS: dict[str, Callable[..., nn.Module]] = {
    "unet": UNet,
    "resnet18-unet": _resnet_unet(18),
    "resnet34-unet": _resnet_unet(34),
    "resnet50-unet": _resnet_unet(50),
}
# Spec entries that describe how weights were initialised, not the architecture: a checkpoint
# carries the weights, and the original file may not exist where the checkpoint is loaded.
_INIT_ONLY = ("encoder_weights",)


def available_models() -> list[str]:
    """Return the names `create_model` accepts."""
    return list(_MODELS)


def create_model(name: str, num_classes: int = 19, **kwargs: Any) -> nn.Module:
    """Build a segmentation model by name.

    Args:
        name: One of `available_models()`, e.g. "unet" or "resnet34-unet".
        num_classes: Number of output channels (19 Cityscapes trainIds).
        **kwargs: Model options, e.g. `base_channels=32, depth=4, upsample="bilinear"` for
            "unet"; `decoder_channels=(...), encoder_weights=PATH` for "resnetXX-unet".

    Returns:
        The model, with `size_divisor` set and its spec recorded for `model_spec`.

    Raises:
        ConfigError: Unknown name or option, or an invalid option value.
    """
    builder = _lookup(name)
    signature = inspect.signature(builder)
    unknown = sorted(set(kwargs) - set(signature.parameters))
    if unknown:
        valid = [p for p in signature.parameters if p != "num_classes"]
        raise ConfigError(f"unknown option(s) {unknown} for model {name!r}; valid: {valid}")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"num_classes must be a positive int, got {num_classes!r}")
    bound = signature.bind(num_classes=num_classes, **kwargs)
    bound.apply_defaults()
    model = builder(**bound.arguments)
    # Stored with defaults filled in, so later default changes cannot alter a saved model.
    options = {k: None if k in _INIT_ONLY else v for k, v in bound.arguments.items()}
    model.segkit_spec = {"name": name, **_jsonable(options)}
    return model


def _lookup(name: str) -> Callable[..., nn.Module]:
    if name in _MODELS:
        return _MODELS[name]
    close = difflib.get_close_matches(str(name), list(_MODELS), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"unknown model {name!r}; valid: {available_models()}{hint}")


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
    """Raise ConfigError with the nearest valid size unless H and W suit `model`.

    Args:
        model: A segkit model (or a DDP / torch.compile wrapper of one).
        height: Input height in pixels.
        width: Input width in pixels.

    Raises:
        ConfigError: e.g. "image size 250 is not a multiple of 32; try 256 ...".
    """
    inner = unwrap(model)
    name = getattr(inner, "segkit_spec", {}).get("name", type(inner).__name__)
    check_image_size((height, width), multiple=inner.size_divisor, minimum=1, model=name)


def model_spec(model: nn.Module) -> dict[str, Any]:
    """Return the JSON-able dict that rebuilds `model`'s architecture.

    Args:
        model: A model made by `create_model` (or a DDP / torch.compile wrapper of one).

    Returns:
        `{"name": ..., "num_classes": ..., **options}` with every option filled in;
        `encoder_weights` is None because the checkpoint holds the weights.
    """
    spec = getattr(unwrap(model), "segkit_spec", None)
    if spec is None:
        raise ConfigError(
            f"{type(model).__name__} was not built by segkit.models.create_model, so it has no "
            f"spec; build it with create_model(name, num_classes, **options)")
    return dict(spec)


def model_from_spec(spec: dict[str, Any]) -> nn.Module:
    """Rebuild a model (random weights) from `model_spec(...)`, e.g. read from a checkpoint.

    Args:
        spec: `{"name": ..., "num_classes": ..., **options}`.

    Returns:
        A new model with the same architecture; load the checkpoint's weights into it.
    """
    if not isinstance(spec, dict) or "name" not in spec:
        raise CheckpointError(
            f"model spec must be a dict with a 'name' key (from segkit.models.model_spec), got "
            f"{spec!r}; was the checkpoint written by segkit?")
    return create_model(**spec)


def model_from_checkpoint(ckpt: dict[str, Any], device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the architecture from `model_spec` and load the weights (strict), in eval mode."""
    spec = dict(ckpt["model_spec"])
    spec.pop("encoder_weights", None)  # the weights come from the checkpoint, not ImageNet
    model = model_from_spec(spec)
    load_weights(model, ckpt["model"], source="checkpoint")
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
