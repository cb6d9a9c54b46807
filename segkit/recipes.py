"""Named training recipes (`--preset NAME`, `segkit presets`): TrainConfig values with their evidence.

A recipe fills the TrainConfig fields the user did not set; fields set explicitly win. Each one
says what it is for and how its choices were measured (`benchmarks/README.md` has the tables),
so a preset is changed here, in one place, with its numbers beside it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from segkit.config import TrainConfig
from segkit.errors import ConfigError, did_you_mean
from segkit.reflect import explicit_fields


@dataclass(frozen=True)
class Recipe:
    """One preset."""

    doc: str  # one line: what it is for, the model, the size (shown by `segkit presets`)
    fields: dict[str, Any]  # TrainConfig values it sets
    cpu_img_s: float | None = (
        None  # training img/s of the model alone, 2 idle CPU cores (benchmarks/train_throughput.py)
    )
    evidence: tuple[str, ...] = field(default=())  # how its choices were measured (benchmarks/README.md)


# The GPU recipes train on every visible GPU (nproc 0: T4 x2 -> 2 processes; batch_size is per GPU)
# and stop inside Kaggle's session (time budget). They follow common Cityscapes practice (poly
# schedule, scale 0.5-2.0 augmentation); nobody has measured them on a T4 yet.
_T4 = "not measured on a T4: recipe from common Cityscapes practice (poly schedule, scale 0.5-2.0)"

# cpu-pretrained and cpu-realtime: one training under two names, run at two sizes (320x640: every CamVid class
# >= 15; 256x512: >= 30 frames/s), one dict, so the two cannot drift. A cpu-pretrained checkpoint runs in real time
# with --image-size 256 512, a cpu-realtime one at cpu-pretrained's accuracy with --image-size 320 640.
# train_throughput.py --steps 3 --presets cpu-quick cpu-pretrained, 2026-12-04: 10.9 img/s at the crop (cpu-quick 31.2;
# the model alone with plain cross-entropy, as for every preset: the recipe's OHEM + Dice loss is not in it)
CPU_PRETRAINED_IMG_S = 10.9
_CPU_PRETRAINED = {
    "model": "fpn",
    "encoder": "tu-tf_efficientnet_lite0",
    "encoder_weights": "imagenet",
    "image_size": (192, 384),
    "crop_size": (128, 256),
    "infer_size": (320, 640),
    "batch_size": 8,
    "lr": 3e-3,
    "encoder_lr_scale": 0.0,
    "freeze_encoder_bn": True,
    "optimizer": "adamw",
    "scheduler": "poly",
    "warmup_epochs": 0.5,
    "epochs": 1000,
    "time_budget": 15.0,
    "scale_range": (0.75, 1.5),
    "amp": "off",
    "eval_resolution": "train",
    "eval_every": 5,
    "loss": "ohem+dice",
    "class_weights": "none",
    "focus_crop": 0.5,
    "cache": "build",
}
_CPU_REALTIME = {**_CPU_PRETRAINED, "infer_size": (256, 512)}

PRESETS: dict[str, Recipe] = {
    "seed": Recipe(
        doc="the seed's train.py: U-Net (base 64) at 256x512, batch 4, lr 1e-4, 20 epochs (= the defaults)",
        fields={
            "model": "unet",
            "encoder": "",
            "base_channels": 64,
            "depth": 4,
            "image_size": (256, 512),
            "batch_size": 4,
            "lr": 1e-4,
            "epochs": 20,
        },
        cpu_img_s=0.43,
    ),
    "cpu-quick": Recipe(
        doc="laptop / 2 CPU cores, 15 minutes: small U-Net at 64x128",
        fields={
            "model": "unet",
            "encoder": "",
            "base_channels": 16,
            "depth": 4,
            "image_size": (64, 128),
            "batch_size": 8,
            "lr": 3e-3,
            "optimizer": "adamw",
            "scheduler": "poly",
            "epochs": 200,
            "time_budget": 15.0,
            "scale_range": (0.75, 1.5),
            "amp": "off",
            "eval_resolution": "train",
            "eval_every": 5,
            "loss": "ce",
            "class_weights": "none",
            "focus_crop": 0.5,
            "cache": "build",
        },
        cpu_img_s=58.6,
        evidence=(
            (
                "benchmarks/quality_per_compute.py, synthetic 512x1024 data, mIoU of the final weights: 64x128 33.3 vs "
                "96x192 29.7 in 15 min; in 5 min 27.2 / 20.9 / 14.8 / 5.9 at 64x128 / 96x192 / 128x256 / 256x512 "
                "(synthetic data only: on real Cityscapes, check with --data-root)"
            ),
            (
                "focus_crop 0.5 (half the crops centred on a pole/light/sign/person/rider/bike pixel): on kitti-mini's "
                "real frames (300 epochs, 2 seeds) mIoU 38.1/36.6 -> 41.9/40.1, pole 10.0/7.4 -> 19.7/16.6; on "
                "synthetic 3:4 frames (150 epochs, 1 run) 34.5 -> 31.9"
            ),
        ),
    ),
    "cpu-pretrained": Recipe(
        doc="laptop / 2 CPU cores, 15 minutes, ImageNet encoder: FPN on a frozen EfficientNet-Lite0, OHEM + Dice, "
        "trained on 128x256 crops of 192x384 frames, run at 320x640",
        fields=_CPU_PRETRAINED,
        cpu_img_s=CPU_PRETRAINED_IMG_S,
        evidence=(
            (
                "CamVid (benchmarks/README.md, 'Thin classes: OHEM + Dice, run at 320x640'), 15 min, 2 cores, val at "
                "label resolution, seeds 0 / 1 / 2: OHEM + Dice run at 320x640 70.9 / 70.8 / 69.7 (mean 70.5) with "
                "every class >= 15 in each (pole 16.9 / 17.0 / 17.7); at 256x512 71.0 / 71.3 / 69.5, pole 13.1 / 12.7 "
                "/ 15.9; test 58.9 / 59.2 / 59.6 at 320x640, 59.6 / 59.9 / 60.6 at 256x512. OHEM alone at 256x512: "
                "70.5 / 70.2 / 69.9, pole 10.6-12.5, and 69.3 with pole 15.4 at 320x640. OHEM + Lovasz (seed 0): "
                "69.8, pole 15.1 at 256x512, its steps 25 % slower (a sort of the batch's pixels per class)"
            ),
            (
                "CamVid (benchmarks/README.md, 'cpu-pretrained moved to FPN'), 15 min each, 2 cores, val at label "
                "resolution: FPN at 256x512 70.5 / 69.9 / 70.2 (three runs; pole 12.2 / 12.5 / 10.6, sign 45.1 / "
                "46.1 / 37.1) against the U-Net it replaced, 68.0 / 66.6 at 192x384 and 65.9 at 256x512 on the same "
                "machine and evening as the FPN's 69.9 (pole 11.0 / 7.7 / 10.6, sign 24.8 / 21.1 / 31.7); test 59.4 / "
                "59.0 / 59.6 against 59.6 / 58.2 / 57.6"
            ),
            (
                "kitti-mini, OHEM + Dice, 15 min, one run: 41.8 / 37.4 / 35.9 run at 192x384 / 256x512 / 320x640 "
                "(15 / 17 / 18 classes in the mean; 56.9 / 57.8 / 55.4 over the 11 its val labels have): on KITTI's "
                "1:3.3 frames the larger size does not pay; sweep `segkit evaluate --image-size` on your val split"
            ),
            (
                "kitti-mini (36 train / 12 val), 15 min, OHEM: FPN ahead on pole 48.1 vs 41.4, light 55.0 vs 30.0, "
                "sign 21.2 vs 5.5, sidewalk 28.4 vs 12.9, within 0.7 on the rest, but mIoU 42.4 vs 47.2: it "
                "also put pixels into 3 classes no val label has (wall, bus, bicycle: 0 each, 15 classes in the "
                "mean, not 12); on those 12 classes 53.0"
            ),
            (
                "run at 256x512, trained at 192x384: on CamVid val +0.7 to +1.0 points (four runs, U-Net and FPN), "
                "pole +3.4 and +3.5 (FPN, two runs); test -0.6 to -0.8 (U-Net) and +0.3 (FPN); 1.8x the pixels of "
                "192x384"
            ),
            (
                "4-minute screens on kitti-mini (benchmarks/README.md, U-Net): the encoder frozen (forward only: 1.3x "
                "the steps of lr/10) 42.3 / 40.4 (seeds 0/1) vs fine-tuned at lr/10 39.7; OHEM kept (CE 40.5 but pole "
                "3.2), ENet class weights and OHEM+Dice lost (37.0, 39.6); on CamVid, 15 min: median class weights "
                "63.4 and the encoder fine-tuned at lr/10 64.2 against 68.0"
            ),
            (
                "freeze_encoder_bn only matters if you unfreeze the encoder (--encoder-lr-scale 0.1): its BatchNorm "
                "then keeps the ImageNet statistics that batches of 8 would overwrite"
            ),
        ),
    ),
    "cpu-realtime": Recipe(
        doc="cpu-pretrained's training, run at 256x512 for real time with --backend openvino-int8: 43.4 frames/s end "
        "to end on 2 Intel Xeon cores, 30.1 on 2 AMD EPYC ones (FPN on a frozen EfficientNet-Lite0)",
        # The frontier's best point on CamVid (benchmarks/frontier.py): the highest val mIoU at >= 30 frames/s.
        # The same weights as cpu-pretrained's (one training), run smaller: 1.56x fewer pixels than 320x640.
        fields=_CPU_REALTIME,
        cpu_img_s=CPU_PRETRAINED_IMG_S,
        evidence=(
            (
                "CamVid val at 256x512 with the OHEM + Dice training (three seeds): 71.0 / 71.3 / 69.5, pole "
                "12.7-15.9, test 59.6 / 59.9 / 60.6; openvino-int8 31.4 frames/s end to end on 2 AMD EPYC cores, "
                "-0.27 points"
            ),
            (
                "benchmarks/frontier.py on CamVid, 15 minutes each, 2 cores, 2026-12-04 (benchmarks/README.md, 'The "
                "speed/accuracy frontier'), trained with OHEM alone: FPN on frozen Lite0 at 256x512: val 70.5 (pole "
                "12.2), test 59.4, openvino-int8 43.4 frames/s end to end (mIoU change -0.18 points); the U-Net at "
                "256x512: val 68.9, test 59.0, 56.1 frames/s (Intel Xeon)"
            ),
            (
                "the frontier on one AMD EPYC, three decoders: FPN val 69.9 at 30.1 frames/s end to end "
                "(openvino-int8, -0.34 points), U-Net 65.9 at 33.6, LinkNet 34.7 at 50.8"
            ),
            (
                "segkit benchmark, 256x512 frames, 2 cores, random weights (benchmarks/README.md, 'Real time on 2 "
                "cores'): openvino-int8 end to end U-Net 45.9, FPN 39.0 frames/s; LinkNet (54.5 in fp32) learnt far "
                "slower with the frozen encoder (CamVid val 0.27 after 14 epochs where the U-Net had 0.59)"
            ),
        ),
    ),
    "t4-fast": Recipe(
        doc="Kaggle T4 x2, 512x1024, fast: SegFormer-B0 (mit_b0, ImageNet), fp16",
        fields={
            "model": "segformer",
            "encoder": "mit_b0",
            "encoder_weights": "imagenet",
            "image_size": (512, 1024),
            "batch_size": 8,
            "lr": 2e-4,
            "weight_decay": 1e-2,
            "optimizer": "adamw",
            "scheduler": "poly",
            "warmup_epochs": 1.0,
            "epochs": 200,
            "amp": "auto",
            "loss": "ce",
            "scale_range": (0.5, 2.0),
            "nproc": 0,
        },
        cpu_img_s=0.62,
        evidence=(_T4,),
    ),
    "t4-strong": Recipe(
        doc="Kaggle T4 x2, 512x1024, strong: DeepLabV3+ on ResNet-50 (ImageNet), fp16, SyncBN",
        fields={
            "model": "deeplabv3plus",
            "encoder": "resnet50",
            "encoder_weights": "imagenet",
            "image_size": (512, 1024),
            "batch_size": 4,
            "lr": 1e-2,
            "weight_decay": 5e-4,
            "optimizer": "sgd",
            "scheduler": "poly",
            "warmup_epochs": 1.0,
            "epochs": 200,
            "amp": "auto",
            "loss": "ohem",
            "scale_range": (0.5, 2.0),
            "sync_bn": True,
            "nproc": 0,
        },
        cpu_img_s=0.35,
        evidence=(_T4,),
    ),
    "t4-256x512": Recipe(
        doc="Kaggle T4 x2, 256x512: U-Net on ResNet-34 (ImageNet), fp16",
        fields={
            "model": "unet",
            "encoder": "resnet34",
            "encoder_weights": "imagenet",
            "image_size": (256, 512),
            "batch_size": 16,
            "lr": 1e-3,
            "optimizer": "adamw",
            "scheduler": "poly",
            "epochs": 120,
            "amp": "auto",
            "loss": "ohem",
            "scale_range": (0.5, 2.0),
            "nproc": 0,
        },
        cpu_img_s=2.63,
        evidence=(_T4,),
    ),
    "t4-512x1024": Recipe(
        doc="Kaggle T4 x2, 512x1024: U-Net on ResNet-50 (ImageNet), fp16",
        fields={
            "model": "unet",
            "encoder": "resnet50",
            "encoder_weights": "imagenet",
            "image_size": (512, 1024),
            "batch_size": 8,
            "lr": 5e-4,
            "optimizer": "adamw",
            "scheduler": "poly",
            "epochs": 100,
            "amp": "auto",
            "loss": "ohem",
            "scale_range": (0.5, 2.0),
            "nproc": 0,
        },
        cpu_img_s=0.32,
        evidence=(_T4,),
    ),
}


def recipe(name: str) -> Recipe:
    """The recipe called `name`; an unknown name lists the valid ones with a did-you-mean."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}{did_you_mean(name, PRESETS)}; valid presets: {', '.join(PRESETS)}")
    return PRESETS[name]


def preset_values(values: dict[str, Any], explicit: set[str]) -> dict[str, Any]:
    """TrainConfig values with the named preset's fields in place of those the user did not set.

    For building a config: its checks then see the preset's model, so that e.g.
    `--preset cpu-pretrained --encoder-lr-scale 0` is checked against the preset's encoder, not
    against the defaults' own U-Net (which has none to freeze).
    """
    return {**values, **_unset_fields(values.get("preset") or "", explicit)}


def apply_preset(cfg: TrainConfig, explicit: set[str] | None = None) -> TrainConfig:
    """Fill the preset's fields except those in `explicit` (defaults to fields off their default).

    Args:
        cfg: a config whose `preset` names a recipe (or is "").
        explicit: names the user set; preset values never replace them.

    Returns:
        The config with the preset applied.
    """
    if not cfg.preset:
        return cfg
    explicit = explicit_fields(cfg) if explicit is None else explicit
    return dataclasses.replace(cfg, **_unset_fields(cfg.preset, explicit))


def _unset_fields(name: str, explicit: set[str]) -> dict[str, Any]:
    """The fields preset `name` sets that the user did not ({} for no preset)."""
    return {k: v for k, v in recipe(name).fields.items() if k not in explicit} if name else {}
