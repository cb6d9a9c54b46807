"""What to build: the model families `--model` can name (one registry entry each), and one typed
choice of family, encoder and starting weights, checked once.

`FAMILIES` is the one place a model family is described: its name, its constructor, what it
accepts (an smp/timm encoder, required or optional; the TrainConfig fields it is built from), the
options set unless given, the divisor its input sizes must be multiples of, and one line for
listings. Everything else derives from it: config validation, `--model`'s help, building
(`segkit.models`), reading smp's released models, the launcher and Kaggle preflight. Adding a
family is one `register(Family(...))` (or one entry below) and its tests.

Every place that needs to know what a config builds asks a `ModelChoice`, so each rule (a family
name, a retired model, "needs an encoder", "is the encoder pretrained?") is written here and
nowhere else. Standard library only: `segkit synth` and config validation must not import torch,
so a constructor may be named as "module:attribute", imported only when a model is built. Whether
smp or timm know an *encoder* name needs those libraries: `segkit.models.zoo.check_encoder`
decides that, with the same `did_you_mean`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from segkit.errors import ConfigError, did_you_mean

SMP_PAIRING_HINT = "Try another encoder for this architecture, e.g. resnet34 or mit_b0."


@dataclass(frozen=True)
class Family:
    """One model family `--model` can name: everything segkit needs to build, check, save and list it."""

    name: str  # the --model value and a checkpoint's model_spec["name"]: never renamed (old checkpoints name it)
    doc: str  # one line: what it is (`segkit models` lists it)
    build: str | Callable[..., Any] | None = None  # builds it without an encoder: build(num_classes=N, **options) ->
    # nn.Module mapping (B, 3, H, W) to (B, N, H, W) logits; "module:attribute" (imported when built) or the callable;
    # None = it is built only on an encoder. Every keyword parameter is recorded in model_spec, defaults filled in.
    smp: bool = False  # with --encoder: segmentation_models_pytorch's architecture of this name on an smp/timm encoder
    config_fields: tuple[str, ...] = ()  # TrainConfig fields passed to `build` as options (own U-Net: base_channels,
    # depth)
    defaults: dict[str, Any] = field(default_factory=dict)  # options set unless given
    size_divisor: int | Callable[[dict[str, Any]], int] = 1  # built by `build`: input sizes must be multiples of this
    # (or of its value for the options); on an encoder the encoder's output stride decides
    encoder_hint: str = SMP_PAIRING_HINT  # the fix when smp refuses an encoder for it

    def __post_init__(self) -> None:
        if self.build is None and not self.smp:
            raise ConfigError(f"model family {self.name!r} needs a constructor (build=...) or smp=True")

    @property
    def needs_encoder(self) -> bool:
        """Built only on an smp/timm encoder (no constructor of its own)."""
        return self.build is None

    def divisor(self, options: dict[str, Any]) -> int:
        """The size divisor of the network `build` makes with these options."""
        return self.size_divisor(options) if callable(self.size_divisor) else int(self.size_divisor)


def _smp(name: str, doc: str, **facts: Any) -> Family:
    return Family(name, doc + " (segmentation_models_pytorch)", smp=True, **facts)


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            "unet",
            "U-Net: without --encoder segkit's own (the seed's model: --base-channels, --depth), with one smp's",
            build="segkit.models.unet:UNet",
            smp=True,
            config_fields=("base_channels", "depth"),
            size_divisor=lambda options: 2 ** options["depth"],
        ),
        _smp("unetplusplus", "U-Net++: nested, densely connected skip paths"),
        _smp("manet", "MA-Net: position and channel attention in the decoder"),
        _smp("linknet", "LinkNet: a light decoder that adds encoder features back"),
        _smp("fpn", "FPN: a feature pyramid, every scale summed at 1/4"),
        _smp("pspnet", "PSPNet: pyramid pooling over the deepest features"),
        _smp("deeplabv3", "DeepLabV3: atrous spatial pyramid pooling (ASPP)"),
        _smp("deeplabv3plus", "DeepLabV3+: ASPP and a light decoder with 1/4-scale features"),
        _smp("pan", "PAN: feature pyramid attention"),
        _smp("upernet", "UPerNet: pyramid pooling and a feature pyramid"),
        _smp("segformer", "SegFormer: an all-MLP decoder, for mit_b0..b5 encoders"),
        _smp(
            "dpt",
            "DPT: a ViT's tokens reassembled at several scales",
            defaults={"dynamic_img_size": True},  # Cityscapes frames are not 224x224: any multiple of the patch size
            encoder_hint="DPT takes only timm ViT-style encoders, e.g. --encoder "
            "tu-vit_small_patch16_224.augreg_in21k_ft_in1k",
        ),
    )
}
# The built-in ResNet U-Nets of segkit 0.1, and what builds the nearest model now.
RETIRED_MODELS = {f"resnet{d}-unet": f"--model unet --encoder resnet{d}" for d in (18, 34, 50)}
NO_WEIGHTS = ("", "none")  # encoder_weights values meaning random initialisation


def register(new: Family) -> Family:
    """Add a model family: `--model`, config validation, building, checkpoints and export then know it.

    Raises:
        ConfigError: the name is taken (or was a retired model's).
    """
    if new.name in FAMILIES or new.name in RETIRED_MODELS:
        raise ConfigError(f"model family {new.name!r} exists already; pick another name")
    FAMILIES[new.name] = new
    return new


def family_names() -> tuple[str, ...]:
    """Every `--model` value, in registry order."""
    return tuple(FAMILIES)


def family(model: str) -> Family:
    """The registry entry of a `--model` value.

    Raises:
        ConfigError: the valid names with a did-you-mean, or the flags that build a retired model's nearest.
    """
    if model in RETIRED_MODELS:
        raise ConfigError(
            f"model {model!r} was segkit 0.1's own ResNet U-Net; U-Nets on pretrained encoders now come from "
            f"segmentation_models_pytorch: use {RETIRED_MODELS[model]} (ImageNet weights by default)"
        )
    if model not in FAMILIES:
        names = family_names()
        raise ConfigError(f"unknown model {model!r}; valid: {', '.join(names)}{did_you_mean(model, names)}")
    return FAMILIES[model]


def describe_families() -> str:
    """`segkit models`: each family's name, what it is and what --encoder it takes, one per line."""
    takes = {(True, False): "none", (True, True): "optional", (False, True): "required"}
    return "\n".join(f"{f.name}: {f.doc} [--encoder: {takes[(not f.needs_encoder, f.smp)]}]" for f in FAMILIES.values())


def is_pretrained(encoder_weights: str) -> bool:
    """Whether an encoder_weights value asks for pretrained weights ("" and "none" do not)."""
    return encoder_weights.strip().lower() not in NO_WEIGHTS


@dataclass(frozen=True)
class ModelChoice:
    """The model a run builds, named and checked once (names only: sizes need the built network).

    Raises ConfigError on construction for a retired model, an unknown family, a family without
    the encoder it needs (or with one it does not take), or weights asked for a network with no encoder.
    """

    model: str = "unet"  # a model family (FAMILIES)
    encoder: str = ""  # smp encoder or tu-<timm model>; "" = the family's own network (e.g. segkit's own U-Net)
    encoder_weights: str = ""  # where the encoder starts: imagenet or a variant, a weights file; "" = random init
    options: dict[str, Any] = field(default_factory=dict)  # own network: its constructor's options (own U-Net:
    # base_channels, depth, ...); smp: its architecture's arguments
    init_from: str = ""  # the whole network starts from this checkpoint or released model ("" = it does not)

    def __post_init__(self) -> None:
        weights = "" if not is_pretrained(self.encoder_weights) or self.init_from else self.encoder_weights.strip()
        object.__setattr__(self, "encoder_weights", weights)  # a whole-model start makes encoder weights moot
        check_architecture(self.model, self.encoder)
        if not self.encoder and weights:
            raise ConfigError(
                f"encoder_weights {weights!r} needs an encoder: segkit's own {self.model} starts from random weights. "
                "Add e.g. --encoder resnet34, or drop --encoder-weights."
            )

    @property
    def own_network(self) -> bool:
        """Built by the family's own constructor (no smp encoder), e.g. segkit's own U-Net."""
        return not self.encoder

    @property
    def pretrained(self) -> bool:
        """Whether the encoder starts from pretrained weights (which must then be found or fetched)."""
        return bool(self.encoder) and bool(self.encoder_weights)

    def describe(self) -> str:
        """One line for logs: "unet (segkit's own, base_channels 16, depth 4)", "fpn on resnet34 (imagenet)"."""
        if self.init_from:
            return f"{self.model}{' on ' + self.encoder if self.encoder else ''} from {self.init_from}"
        if self.own_network:
            shown = ", ".join(f"{k} {v}" for k, v in self.options.items() if k in family(self.model).config_fields)
            return f"{self.model} (segkit's own{', ' + shown if shown else ''})"
        return f"{self.model} on {self.encoder} ({self.encoder_weights or 'random init'})"

    @classmethod
    def from_config(cls, cfg: Any, explicit: set[str] | None = None) -> ModelChoice:
        """The choice a TrainConfig (or any object with its model fields) makes.

        segkit's own U-Net ignores TrainConfig's default encoder_weights ("imagenet"), but refuses
        weights the user set (`explicit`: the fields given; default: those off their default).

        Args:
            cfg: has model, encoder, encoder_weights, base_channels and depth.
            explicit: names the user set.
        """
        weights = cfg.encoder_weights
        init_from = getattr(cfg, "init_from", "")
        if init_from or (
            not cfg.encoder and "encoder_weights" not in (explicit if explicit is not None else _off_default(cfg))
        ):
            weights = ""
        own_fields = () if cfg.encoder else family(cfg.model).config_fields
        options = {name: getattr(cfg, name) for name in own_fields}
        return cls(cfg.model, cfg.encoder, weights, options, init_from)


def check_architecture(model: str, encoder: str) -> None:
    """The family name (`family`), and an encoder exactly where the family needs or takes one.

    Raises:
        ConfigError: the valid names with a did-you-mean, or the flags that build the nearest model.
    """
    chosen = family(model)
    if not encoder and chosen.needs_encoder:
        own = [f.name for f in FAMILIES.values() if not f.needs_encoder]
        raise ConfigError(
            f"model {model!r} needs an encoder, e.g. --encoder resnet34 (built without one, as segkit's own network "
            f"when --encoder is empty: {', '.join(own)})"
        )
    if encoder and not chosen.smp:
        raise ConfigError(
            f"model {model!r} is segkit's own network and takes no encoder; drop --encoder {encoder} (families on "
            f"smp/timm encoders: {', '.join(f.name for f in FAMILIES.values() if f.smp)})"
        )


def _off_default(cfg: Any) -> set[str]:
    """Fields of a dataclass config that differ from their default (what the user set, presumably)."""
    return {f.name for f in fields(cfg) if getattr(cfg, f.name) != f.default}
