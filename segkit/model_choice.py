"""What to build: one typed choice of architecture, encoder and starting weights, checked once.

Every place that needs to know what a config builds asks a `ModelChoice` — config validation,
`segkit.models.create_model`, the pretrained-weights lookup, the launcher and Kaggle preflight —
so each rule (an architecture name, a retired model, "needs an encoder", "is the encoder
pretrained?") is written here and nowhere else. Standard library only: `segkit synth` and config
validation must not import torch. Whether smp or timm know an *encoder* name needs those
libraries: `segkit.models.zoo.check_encoder` decides that, with the same `did_you_mean`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from segkit.errors import ConfigError, did_you_mean

# segmentation_models_pytorch's architectures (a test checks this equals the installed smp's list).
ARCHITECTURES = (
    "unet",
    "unetplusplus",
    "manet",
    "linknet",
    "fpn",
    "pspnet",
    "deeplabv3",
    "deeplabv3plus",
    "pan",
    "upernet",
    "segformer",
    "dpt",
)
# The built-in ResNet U-Nets of segkit 0.1, and what builds the nearest model now.
RETIRED_MODELS = {f"resnet{d}-unet": f"--model unet --encoder resnet{d}" for d in (18, 34, 50)}
NO_WEIGHTS = ("", "none")  # encoder_weights values meaning random initialisation
OWN_UNET_FIELDS = ("base_channels", "depth")  # TrainConfig fields that shape segkit's own U-Net


def is_pretrained(encoder_weights: str) -> bool:
    """Whether an encoder_weights value asks for pretrained weights ("" and "none" do not)."""
    return encoder_weights.strip().lower() not in NO_WEIGHTS


@dataclass(frozen=True)
class ModelChoice:
    """The model a run builds, named and checked once (names only: sizes need the built network).

    Raises ConfigError on construction for a retired model, an unknown architecture, an
    architecture without an encoder other than unet, or weights asked for segkit's own U-Net.
    """

    model: str = "unet"  # architecture: unet or another smp architecture (ARCHITECTURES)
    encoder: str = ""  # smp encoder or tu-<timm model>; "" = segkit's own U-Net (model unet only)
    encoder_weights: str = ""  # where the encoder starts: imagenet or a variant, a weights file; "" = random init
    options: dict[str, Any] = field(default_factory=dict)  # own U-Net: base_channels, depth, ...; smp: its arguments
    init_from: str = ""  # the whole network starts from this checkpoint or released model ("" = it does not)

    def __post_init__(self) -> None:
        weights = "" if not is_pretrained(self.encoder_weights) or self.init_from else self.encoder_weights.strip()
        object.__setattr__(self, "encoder_weights", weights)  # a whole-model start makes encoder weights moot
        check_architecture(self.model, self.encoder)
        if not self.encoder and weights:
            raise ConfigError(
                f"encoder_weights {weights!r} needs an encoder: segkit's own U-Net starts from random weights. "
                "Add e.g. --encoder resnet34, or drop --encoder-weights."
            )

    @property
    def own_unet(self) -> bool:
        """segkit's own U-Net (no smp encoder)."""
        return not self.encoder

    @property
    def pretrained(self) -> bool:
        """Whether the encoder starts from pretrained weights (which must then be found or fetched)."""
        return bool(self.encoder) and bool(self.encoder_weights)

    def describe(self) -> str:
        """One line for logs: "unet (segkit's own, base_channels 16, depth 4)", "fpn on resnet34 (imagenet)"."""
        if self.init_from:
            return f"{self.model}{' on ' + self.encoder if self.encoder else ''} from {self.init_from}"
        if self.own_unet:
            shown = ", ".join(f"{k} {v}" for k, v in self.options.items() if k in OWN_UNET_FIELDS)
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
        options = {} if cfg.encoder else {name: getattr(cfg, name) for name in OWN_UNET_FIELDS}
        return cls(cfg.model, cfg.encoder, weights, options, init_from)


def check_architecture(model: str, encoder: str) -> None:
    """The architecture name: not retired, known to smp, and with an encoder unless it is unet.

    Raises:
        ConfigError: the valid names with a did-you-mean, or the flags that build the nearest model.
    """
    if model in RETIRED_MODELS:
        raise ConfigError(
            f"model {model!r} was segkit 0.1's own ResNet U-Net; U-Nets on pretrained encoders now come from "
            f"segmentation_models_pytorch: use {RETIRED_MODELS[model]} (ImageNet weights by default)"
        )
    if model not in ARCHITECTURES:
        raise ConfigError(
            f"unknown model {model!r}; valid: {', '.join(ARCHITECTURES)}{did_you_mean(model, ARCHITECTURES)}"
        )
    if not encoder and model != "unet":
        raise ConfigError(
            f"model {model!r} needs an encoder, e.g. --encoder resnet34 (only unet has a built-in "
            "encoder: segkit's own U-Net, used when --encoder is empty)"
        )


def _off_default(cfg: Any) -> set[str]:
    """Fields of a dataclass config that differ from their default (what the user set, presumably)."""
    return {f.name for f in fields(cfg) if getattr(cfg, f.name) != f.default}
