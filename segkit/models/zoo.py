"""segmentation_models_pytorch (smp) architectures on smp or timm (`tu-`) encoders, built the segkit way.

smp does the modelling; this module adds what segkit needs around it: names checked with a
did-you-mean, encoder weights loaded from a file `segkit.models.weights` found (so no library
ever downloads behind our back, and a rebuilt checkpoint never fetches anything — smp issue
#957), and the normalisation the encoder was pretrained with.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from segkit.checkpoint import safe_load
from segkit.config import IMAGENET_MEAN, IMAGENET_STD
from segkit.errors import CheckpointError, ConfigError, did_you_mean
from segkit.model_choice import check_architecture, family

SMP_ENCODERS_URL = "https://smp.readthedocs.io/en/latest/encoders.html"


def smp_module() -> Any:
    """segmentation_models_pytorch, imported when a model on an encoder first needs it: with timm and
    torchvision that is ~1.2 s of every process's start (2 cores), which segkit's own U-Net never pays."""
    import segmentation_models_pytorch

    return segmentation_models_pytorch


def timm_module() -> Any:
    """timm, imported when first needed (see `smp_module`)."""
    import timm

    return timm


def encoder_names() -> list[str]:
    """smp's own encoder names; any timm model also works as `tu-<name>`."""
    return smp_module().encoders.get_encoder_names()


def timm_name(encoder: str) -> str | None:
    """The timm model behind a `tu-` encoder (or an smp alias of one, e.g. timm-regnetx_002), else None.

    The one answer to "is this a timm encoder": its weights, their loading and its normalisation
    follow from it (smp's own `timm-efficientnet-*` encoders are not timm models: None).
    """
    if encoder.startswith("timm-") and smp_module().encoders.is_equivalent_to_timm_universal(encoder):
        # smp maps these deprecated names to timm
        encoder = encoder.replace("timm-", "tu-" + ("tf_" if "mobilenetv3" in encoder else ""))
    return encoder[3:] if encoder.startswith("tu-") else None


def check_encoder(encoder: str) -> None:
    """Refuse an encoder smp and timm do not know: the one message, with the one did-you-mean.

    Raises:
        ConfigError: the nearest names and where to list them all.
    """
    name = timm_name(encoder)
    if name is None and encoder not in encoder_names():
        raise ConfigError(
            f"unknown encoder {encoder!r}{did_you_mean(encoder, encoder_names(), n=3)}; smp's encoders are e.g. "
            "resnet18..152, efficientnet-b0..b7, mit_b0..b5 (SegFormer), mobilenet_v2 - all of them: "
            "python -c 'import segmentation_models_pytorch as smp; print(smp.encoders.get_encoder_names())' "
            f"({SMP_ENCODERS_URL}) - and any timm model as tu-<name>, e.g. tu-convnext_tiny"
        )
    if name is not None and not timm_module().is_model(name.split(".")[0]):
        names = ["tu-" + model for model in timm_module().list_models()]
        raise ConfigError(
            f"unknown timm model {name.split('.')[0]!r} in encoder {encoder!r}{did_you_mean(encoder, names, n=3)}; "
            "valid: 'tu-' + any of timm.list_models() (with pretrained weights: timm.list_models(pretrained=True))"
        )


def build(model: str, encoder: str, num_classes: int, weights_file: Path | None = None, **options: Any) -> nn.Module:
    """smp's `model` on `encoder`, randomly initialised or with its encoder loaded from `weights_file`.

    Args:
        model: a family of `segkit.model_choice.FAMILIES` with `smp=True` (its `defaults` apply).
        encoder: an smp encoder name or `tu-<timm model>`.
        num_classes: output channels.
        weights_file: encoder weights (.safetensors, .pth, .bin); None = random init.
        **options: further arguments of smp's architecture class.

    Returns:
        The smp model (logits at the input's size).
    """
    check_architecture(model, encoder)
    check_encoder(encoder)
    options = {**family(model).defaults, **options}
    timm_file = weights_file is not None and timm_name(encoder) is not None
    if timm_file:  # timm loads its own weights (and adapts them to the features-only model)
        options["pretrained_cfg_overlay"] = {"file": str(weights_file)}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # smp: "encoder_weights should be True for tu-"
            net = smp_module().create_model(
                model, encoder_name=encoder, encoder_weights=True if timm_file else None, classes=num_classes, **options
            )
    except (KeyError, ValueError, TypeError, AssertionError, RuntimeError) as e:
        if timm_file:
            raise CheckpointError(
                f"timm could not load encoder weights {weights_file} into {encoder}: {_first_line(e)}. "
                "Is the file for this model?"
            ) from None
        raise ConfigError(
            f"smp cannot build model {model!r} on encoder {encoder!r}: {_first_line(e)}. " + family(model).encoder_hint
        ) from None
    if weights_file is not None and not timm_file:
        load_encoder_file(net.encoder, encoder, weights_file)
    return net


def _first_line(error: BaseException) -> str:
    text = str(error).strip().strip("'\"") or type(error).__name__
    return text.splitlines()[0][:300]


def load_encoder_file(encoder_module: nn.Module, encoder: str, path: Path) -> None:
    """Load a weights file into an smp encoder, strictly; a file for another network is refused.

    Accepts smp-hub's model.safetensors and torchvision / plain state-dict .pth files (a
    classifier head, e.g. torchvision's `fc`, is dropped by smp's encoders themselves).
    """
    state = (
        load_file(str(path)) if Path(path).suffix == ".safetensors" else safe_load(path, what="an encoder weights file")
    )
    for key in ("state_dict", "model"):  # common wrappers around a state dict
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise CheckpointError(f"{path} is not a state dict of tensors; expected encoder weights for {encoder}")
    try:
        encoder_module.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(
            f"the weights in {path} do not fit encoder {encoder} ({_first_line(e)}). They were saved from another "
            "network: pass the file made for this encoder, or --encoder-weights imagenet."
        ) from None


def normalization(encoder: str, weights_file: Path | None = None) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) the encoder was pretrained with: timm's pretrained config for `tu-` encoders,
    the config.json beside smp-hub weights, else ImageNet's."""
    name = timm_name(encoder)
    if name is not None:
        try:
            cfg = timm_module().models.get_pretrained_cfg(name)
        except (RuntimeError, KeyError, ValueError):
            cfg = None
        if cfg is not None and cfg.mean and cfg.std:
            return tuple(map(float, cfg.mean)), tuple(map(float, cfg.std))
    config = Path(weights_file).parent / "config.json" if weights_file else None
    if config is not None and config.is_file():
        settings = json.loads(config.read_text())
        if "mean" in settings and "std" in settings:
            return tuple(map(float, settings["mean"])), tuple(map(float, settings["std"]))
    return IMAGENET_MEAN, IMAGENET_STD
