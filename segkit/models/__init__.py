"""Model factory: `create_model(model, num_classes, encoder=..., encoder_weights=...)`.

What to build is a `segkit.model_choice.ModelChoice` (names checked once, there); `build_model`
builds it from its family's entry in `segkit.model_choice.FAMILIES`: without an encoder the
family's own constructor (`unet`: segkit's own U-Net, the seed's model, `UNet`), on an encoder
a segmentation_models_pytorch architecture on an smp or timm encoder (`segkit.models.zoo`), its
encoder starting from the pretrained weights `segkit.models.weights` finds or downloads. Every
model maps (B, 3, H, W) images to (B, num_classes, H, W) logits and carries one record of what
segkit knows about it, `ModelFacts` (read with `facts(model)`): the spec that rebuilds its
architecture with no network, the divisor its input sizes must be multiples of, its input
normalisation and where its encoder's weights came from. A checkpoint stores the facts, so
`model_from_checkpoint` rebuilds the model with no flags and no network.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

import segkit
from segkit.checkpoint import FORMAT, VERSION
from segkit.checks import check_image_size
from segkit.config import IMAGENET_MEAN, IMAGENET_STD
from segkit.errors import CheckpointError, ConfigError
from segkit.labels import NUM_CLASSES, ClassMap, LabelSpace, builtin_space, space_of_record
from segkit.model_choice import RETIRED_MODELS, Family, ModelChoice, family
from segkit.models import weights, zoo
from segkit.models.released import at_image_size, checkpoint_origin, is_released, open_checkpoint
from segkit.models.unet import UNet

__all__ = [
    "ModelFacts",
    "UNet",
    "architecture_of",
    "at_image_size",
    "build_model",
    "check_input_size",
    "check_model",
    "checkpoint_origin",
    "create_model",
    "facts",
    "is_released",
    "load_weights",
    "model_cost",
    "model_from_checkpoint",
    "model_from_spec",
    "model_spec",
    "open_checkpoint",
    "set_facts",
    "unwrap",
]

FACTS_ATTR = "segkit_facts"  # the one attribute segkit sets on a network (its ModelFacts)


@dataclass(frozen=True)
class ModelFacts:
    """What segkit knows about a network it built: one record, kept beside the network."""

    spec: dict[str, Any]  # rebuilds the architecture with no network: {"name", "num_classes", "encoder", **options}
    size_divisor: int  # input height and width must be multiples of this (the total downsampling)
    mean: tuple[float, ...]  # input normalisation (0..1 units) the encoder was pretrained with
    std: tuple[float, ...]
    pretrained: dict[str, Any] | None = None  # where its first weights came from (encoder weights or init_from)
    space: LabelSpace | None = None  # the label space its classes are in; None = cityscapes

    @property
    def normalization(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(mean, std)."""
        return self.mean, self.std

    @property
    def name(self) -> str:
        """The architecture's name, for messages."""
        return str(self.spec.get("name", "the network"))


def model_space(model: nn.Module) -> LabelSpace:
    """The label space a segkit network predicts in (cityscapes unless it was given another)."""
    return facts(model).space or builtin_space("cityscapes")


def facts(model: nn.Module) -> ModelFacts:
    """The `ModelFacts` of a model segkit built (through DDP / torch.compile wrappers too)."""
    found = getattr(unwrap(model), FACTS_ATTR, None)
    if not isinstance(found, ModelFacts):
        raise ConfigError(
            f"{type(unwrap(model)).__name__} was not built by segkit.models.create_model, so segkit does not know "
            "its input size divisor, normalisation or spec; build it with create_model(model, num_classes, "
            "encoder=..., **options), or load it with segkit.models.model_from_checkpoint"
        )
    return found


def set_facts(model: nn.Module, model_facts: ModelFacts | None = None, **changes: Any) -> nn.Module:
    """Give `model` its facts (or its current facts with `changes`, e.g. a checkpoint's mean and std)."""
    current = model_facts if model_facts is not None else facts(model)
    setattr(unwrap(model), FACTS_ATTR, dataclasses.replace(current, **changes) if changes else current)
    return model


def create_model(
    model: str = "unet", num_classes: int = NUM_CLASSES, *, encoder: str = "", encoder_weights: str = "", **options: Any
) -> nn.Module:
    """Build a segmentation model.

    Args:
        model: a model family (`segkit.model_choice.FAMILIES`): "unet", "fpn", "segformer", ...
        num_classes: output channels (default: Cityscapes' classes).
        encoder: smp encoder name or `tu-<timm model>`; "" = the family's own network (model "unet": segkit's
            own U-Net).
        encoder_weights: "imagenet" (or another variant smp lists for the encoder), a weights
            file, or "" / "none" for random initialisation. Asked-for weights that cannot be
            found or downloaded raise `WeightsUnavailable`; they never become a random init.
        **options: own network: its constructor's (own U-Net: base_channels, depth, upsample, dropout); smp: its
            class's arguments.

    Returns:
        The model, with its `ModelFacts` (`facts(model)`).
    """
    return build_model(ModelChoice(model, encoder, encoder_weights, options), num_classes)


def build_model(
    choice: ModelChoice,
    num_classes: int = NUM_CLASSES,
    space: LabelSpace | None = None,
    class_map: ClassMap | None = None,
) -> nn.Module:
    """Build what `choice` names (see `create_model`); pretrained weights are found or fetched now.

    With `choice.init_from` the whole network comes from that checkpoint or released model
    (`open_checkpoint`): its architecture must be the one `choice` names, its weights and
    normalisation are taken, and the network records where it started. A start in another label
    space loads all but the classifier, which starts fresh or, with `class_map` (from the start's
    space onto `space`), from the mapped classes' rows.

    Args:
        choice: what to build.
        num_classes: output channels (`space.num_classes` when a space is given).
        space: the label space the network predicts in (None = cityscapes).
        class_map: fine-tuning across spaces: how the start's classes map onto `space`'s.
    """
    num_classes = space.num_classes if space is not None else num_classes
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ConfigError(f"num_classes must be a positive int, got {num_classes!r}")
    if choice.init_from:
        net = _started_from(choice, num_classes, space, class_map)
        return set_facts(net, space=space) if space is not None else net
    net = _built(choice, num_classes)
    return set_facts(net, space=space) if space is not None else net


def _built(choice: ModelChoice, num_classes: int) -> nn.Module:
    if choice.own_network:
        chosen = family(choice.model)
        net, options = _own_network(chosen, num_classes, choice.options)
        spec = {"name": choice.model, "num_classes": num_classes, "encoder": "", **options}
        return set_facts(net, ModelFacts(spec, chosen.divisor(options), IMAGENET_MEAN, IMAGENET_STD))
    source = weights.weights_source(choice.encoder, choice.encoder_weights) if choice.pretrained else None
    file = weights.fetch(source) if source else None
    net = zoo.build(choice.model, choice.encoder, num_classes, file, **choice.options)
    mean, std = zoo.normalization(choice.encoder, file)
    spec = {"name": choice.model, "num_classes": num_classes, "encoder": choice.encoder, **_jsonable(choice.options)}
    provenance = {"encoder_weights": choice.encoder_weights, "source": source.describe()} if source else None
    return set_facts(net, ModelFacts(spec, int(net.encoder.output_stride), mean, std, provenance))


def _started_from(
    choice: ModelChoice, num_classes: int, space: LabelSpace | None = None, class_map: ClassMap | None = None
) -> nn.Module:
    """The network `choice.init_from` holds, checked against what `choice` names; a new head in another space."""
    ckpt = open_checkpoint(choice.init_from)
    spec = ckpt["model_spec"]
    theirs = space_of_record(ckpt)
    other_space = space is not None and theirs != space
    named = {"name": choice.model, "encoder": choice.encoder, "num_classes": num_classes, **choice.options}
    if other_space:
        named.pop("num_classes")
    clash = [f"{k} {spec.get(k)!r} there, {v!r} asked" for k, v in named.items() if k in spec and spec.get(k) != v]
    if clash:
        raise ConfigError(
            f"--init-from {choice.init_from} holds another network ({'; '.join(clash)}): drop --model, "
            "--encoder and the U-Net's sizes to take its own, or start from a checkpoint of this one"
        )
    provenance = {"init_from": choice.init_from, "source": checkpoint_origin(ckpt)}
    if not other_space:
        return set_facts(model_from_checkpoint(ckpt), pretrained=provenance)
    net, head = _with_new_head(ckpt, num_classes, theirs, space, class_map)
    return set_facts(net, pretrained={**provenance, "head": head})


def _with_new_head(
    ckpt: dict[str, Any], num_classes: int, theirs: LabelSpace, space: LabelSpace, class_map: ClassMap | None
) -> tuple[nn.Module, str]:
    """The checkpoint's network with a classifier for `space`: every other weight loaded; what was done, in words."""
    net = model_from_spec({**ckpt["model_spec"], "num_classes": num_classes})
    how = _load_all_but_head(net, ckpt["model"], theirs, space, class_map)
    if norm := ckpt.get("normalization"):  # the normalisation the start was trained with
        set_facts(net, mean=tuple(norm["mean"]), std=tuple(norm["std"]))
    return net.eval(), how


def _load_all_but_head(
    net: nn.Module, weights: dict[str, torch.Tensor], theirs: LabelSpace, space: LabelSpace, class_map: ClassMap | None
) -> str:
    own = net.state_dict()
    weights = {k.removeprefix("module.").removeprefix("_orig_mod."): v for k, v in weights.items()}
    head = [k for k, v in own.items() if k in weights and weights[k].shape != v.shape]
    missing = [k for k in own if k not in weights]
    if missing or any(own[k].shape[0] != space.num_classes or weights[k].shape[0] != theirs.num_classes for k in head):
        raise CheckpointError(
            f"the start's weights do not fit this network beyond its classifier (differing: {head[:4]}, missing: "
            f"{missing[:4]}); start from a checkpoint of the same architecture"
        )
    merged = {k: (own[k] if k in head else weights[k]) for k in own}
    if class_map is not None:
        if class_map.source != theirs or class_map.target != space:
            raise ConfigError(
                f"class map {class_map.describe()} does not map the start's {theirs.name} classes onto {space.name}"
            )
        for k in head:
            rows = merged[k].clone()
            for t in range(space.num_classes):
                if sources := class_map.sources_of(t):
                    rows[t] = weights[k][sources].float().mean(0).to(rows.dtype)
            merged[k] = rows
    net.load_state_dict(merged, strict=True)
    how = f"from the mapped classes' rows ({class_map.name})" if class_map else "fresh"
    return (
        f"all but the classifier loaded from the {theirs.describe()} model; the classifier is new for "
        f"{space.describe()}, started {how}"
    )


def architecture_of(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The TrainConfig model fields that build a checkpoint's network: model, encoder (and its own network's
    `config_fields`, e.g. the own U-Net's sizes)."""
    spec = ckpt["model_spec"]
    fields = {"model": spec["name"], "encoder": spec.get("encoder", "")}
    if not fields["encoder"]:
        fields.update({k: spec[k] for k in family(spec["name"]).config_fields if k in spec})
    return fields


def constructor(chosen: Family) -> Callable[..., nn.Module]:
    """A family's own constructor (its "module:attribute" imported now)."""
    if callable(chosen.build):
        return chosen.build
    if chosen.build is None:
        raise ConfigError(f"model {chosen.name!r} has no constructor of its own: give it an encoder")
    module, _, name = chosen.build.partition(":")
    return getattr(importlib.import_module(module), name)


def _own_network(chosen: Family, num_classes: int, options: dict[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
    """The family's own network and its options with every default filled in (so later default changes
    cannot alter a saved model)."""
    build = constructor(chosen)
    signature = inspect.signature(build)
    valid = [p for p in signature.parameters if p != "num_classes"]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ConfigError(f"unknown option(s) {unknown} for segkit's own {chosen.name}; valid: {valid}")
    bound = signature.bind(num_classes=num_classes, **{**chosen.defaults, **options})
    bound.apply_defaults()
    return build(**bound.arguments), {k: v for k, v in bound.arguments.items() if k != "num_classes"}


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
    known = facts(model)
    check_image_size((height, width), multiple=known.size_divisor, minimum=1, model=known.name)


def check_model(choice: ModelChoice, image_size: tuple[int, int], batch_size: int = 2) -> None:
    """Everything about a model that can fail, checked before any data is read or weights fetched.

    An encoder smp/timm do not know (with did-you-mean), a pair smp refuses, weights asked for an
    encoder that has none, a training size the network cannot take, a batch too small for
    BatchNorm after global pooling (forward passes on the meta device: no memory, no compute) -
    each a ConfigError naming the fix.

    Args:
        choice: what to build (`ModelChoice.from_config(cfg)`).
        image_size: (H, W) of the training crops.
        batch_size: images per optimizer step and process.
    """
    if choice.pretrained:
        weights.weights_source(choice.encoder, choice.encoder_weights)  # a variant it has, or an existing file
    net = build_model(dataclasses.replace(choice, encoder_weights="")).to("meta")
    check_input_size(net, *image_size)
    if not _forward_works(net.eval(), image_size):
        nearest = _nearest_working_size(net, image_size)
        hint = f"; try {nearest[0]}x{nearest[1]}" if nearest else ""
        raise ConfigError(
            f"model {choice.model!r} on encoder {choice.encoder!r} cannot take {image_size[0]}x"
            f"{image_size[1]} inputs (too small for its deepest layers){hint}"
        )
    if not _forward_works(net.train(), image_size, batch=batch_size):
        raise ConfigError(
            f"model {choice.model!r} cannot train on batches of {batch_size} image per process: its "
            "BatchNorm after global pooling (e.g. DeepLab's ASPP) needs at least 2. Set --batch-size 2 "
            "or more (per GPU under torchrun)."
        )


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
    d = facts(net).size_divisor
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
    return dict(facts(model).spec)


def checkpoint_payload(
    model: nn.Module, image_size: Sequence[int], space: LabelSpace | None = None, **extra: Any
) -> dict[str, Any]:
    """What every segkit checkpoint carries: weights, how to rebuild the model, its label space, its
    input size and normalisation (the run directory adds how it was trained; `extra` anything else).

    Args:
        model: a model made by `create_model` (or a DDP / torch.compile wrapper of one).
        image_size: (H, W) its inputs are resized to cover.
        space: its label space (None = cityscapes).
    """
    space = space or builtin_space("cityscapes")
    mean, std = facts(model).normalization
    return {
        "format": FORMAT,
        "version": VERSION,
        "segkit_version": segkit.__version__,
        "model": {k: v.detach().cpu().contiguous() for k, v in unwrap(model).state_dict().items()},
        "model_spec": model_spec(model),
        "num_classes": space.num_classes,
        "label_space": space.tag,
        "class_names": list(space.names),
        "space": space.to_dict(),  # the whole label space travels with the weights
        "image_size": list(image_size),
        "normalization": {"mean": list(mean), "std": list(std)},
        **extra,
    }


def model_from_spec(spec: dict[str, Any]) -> nn.Module:
    """Rebuild a model (random weights, nothing downloaded) from `model_spec(...)`, e.g. read from a checkpoint."""
    if not isinstance(spec, dict) or "name" not in spec:
        raise CheckpointError(
            f"model spec must be a dict with a 'name' key (from segkit.models.model_spec), got "
            f"{spec!r}; was the checkpoint written by segkit?"
        )
    spec = dict(spec)
    spec.pop("encoder_weights", None)  # the weights come from the checkpoint
    if spec["name"] in RETIRED_MODELS:
        raise CheckpointError(
            f"this checkpoint holds segkit 0.1's built-in {spec['name']}, which this version no longer builds "
            "(its U-Nets on pretrained encoders come from segmentation_models_pytorch: "
            f"{RETIRED_MODELS[spec['name']]}). "
            "Retrain with that, or evaluate the checkpoint with segkit 0.1."
        )
    name = spec.pop("name")
    return create_model(name, **spec)


def model_from_checkpoint(ckpt: dict[str, Any], device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the architecture from `model_spec`, load the weights (strict), eval mode; no network."""
    model = model_from_spec(ckpt["model_spec"])
    load_weights(model, ckpt["model"], source="checkpoint")
    norm = ckpt.get("normalization")
    if norm:  # the normalisation it was trained with, whatever the encoder's default is today
        set_facts(model, mean=tuple(norm["mean"]), std=tuple(norm["std"]))
    set_facts(model, pretrained=ckpt.get("pretrained"))
    if ckpt.get("space"):
        set_facts(model, space=space_of_record(ckpt))
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
