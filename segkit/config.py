"""One frozen dataclass per job: the single source of defaults for notebooks, CLI and code.

Each field's trailing comment is its help text: the CLI shows it (`segkit train --help`), and the
notebooks' `parameters` cells repeat the same `name: type = value  # help` lines so that
`papermill --help-notebook` documents them. A test checks that the three agree.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import io
import tokenize
import typing
from dataclasses import dataclass, fields
from functools import cache
from typing import Any, TypeVar

from segkit.errors import ConfigError

C = TypeVar("C")

# segmentation_models_pytorch's architectures (a test checks this equals the installed smp's list).
ARCHITECTURES = ("unet", "unetplusplus", "manet", "linknet", "fpn", "pspnet", "deeplabv3", "deeplabv3plus", "pan",
                 "upernet", "segformer", "dpt")
# The built-in ResNet U-Nets of segkit 0.1, and what builds the nearest model now.
RETIRED_MODELS = {f"resnet{d}-unet": f"--model unet --encoder resnet{d}" for d in (18, 34, 50)}
NO_WEIGHTS = ("", "none")  # encoder_weights values meaning random initialisation
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # the normalisation ImageNet-pretrained encoders expect
IMAGENET_STD = (0.229, 0.224, 0.225)
OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULERS = ("poly", "plateau", "none")
AMP_MODES = ("auto", "fp16", "bf16", "off")
LOSSES = ("ce", "dice", "ohem", "ce+dice", "ohem+dice")
CLASS_WEIGHTS = ("none", "inverse", "median", "enet")
INFERENCE_MODES = ("whole", "slide", "flip", "ms")
EVAL_RESOLUTIONS = ("label", "train")
PREDICT_FORMATS = ("color", "overlay", "trainIds", "labelIds")
SCORE_FORMATS = ("labelIds", "trainIds")  # prediction PNGs `segkit evaluate --predictions` scores
# Data layouts (segkit.data.layouts.BUILT_IN, a test checks), "auto" (found) and "glob" (image_glob + label_glob).
LAYOUTS = ("auto", "cityscapes", "gtcoarse", "kitti", "acdc", "dark-zurich", "image-pairs", "glob")
# What label files hold; auto = from their names; pairColor = an image pair's right half (segkit.data.pairs).
LABEL_FORMAT_CHOICES = ("auto", "labelIds", "labelTrainIds", "pairColor")
DATA_FIELDS = ("data_root", "layout", "image_glob", "label_glob", "label_format", "color_tolerance")  # where the data is and how it sits
PAIR_INPUTS = ("auto", "on", "off")  # segkit predict: are --img files image pairs (photo | colour mask)?


@dataclass(frozen=True)
class TrainConfig:
    """Everything `segkit train` and notebook 02 need; presets fill fields left at their default."""

    data_root: str = ""  # data set root, "" = auto ($CITYSCAPES_DATASET, /kaggle/input, ./data/cityscapes, else synthetic)
    layout: str = "auto"  # data layout: auto (found below the data root), cityscapes, gtcoarse, kitti, acdc, dark-zurich, image-pairs (photo | colour mask in one file: Kaggle's Cityscapes Image Pairs), or glob (image_glob + label_glob)
    image_glob: str = ""  # image files below data_root, e.g. images/{split}/**/*.jpg: {split} = the split's folder, the file name's * = the frame's stem
    label_glob: str = ""  # label files below data_root, e.g. labels/{split}/**/*_mask.png: a label pairs with the image of the same stem and split
    label_format: str = "auto"  # what the label files hold: auto (labelIds or labelTrainIds, from their names), labelIds, labelTrainIds, or pairColor (image pairs: the colour mask on each image's right half)
    color_tolerance: float = 20.0  # image pairs: largest distance (YCbCr levels, chroma counted half) at which a colour-mask pixel takes its nearest palette colour's class; farther ones are ignored (255)
    train_split: str = "train"  # split to train on (KITTI: training)
    val_split: str = "val"  # split to validate and score the best model on (KITTI has only training: training)
    run_dir: str = "runs/train"  # output directory: checkpoints, history, TensorBoard, figures
    preset: str = ""  # named recipe (segkit presets lists them), explicit values override it
    model: str = "unet"  # architecture: unet, unetplusplus, fpn, pspnet, deeplabv3, deeplabv3plus, linknet, manet, pan, upernet, segformer, dpt
    encoder: str = ""  # smp/timm encoder: resnet18..152, efficientnet-b0..b7, mit_b0..b5, mobilenet_v2, tu-<timm model>; "" = segkit's own U-Net (model unet)
    encoder_weights: str = "imagenet"  # pretrained encoder: imagenet (or a variant: ssl, swsl, advprop...), a weights file, or none (random init)
    base_channels: int = 64  # width of the first stage of segkit's own U-Net (no encoder; the seed used 64)
    depth: int = 4  # downsamplings of segkit's own U-Net (no encoder), sizes must be multiples of 2**depth
    epochs: int = 20  # passes over the train split
    batch_size: int = 4  # images per optimizer step (per GPU under torchrun)
    lr: float = 1e-4  # peak learning rate
    weight_decay: float = 1e-4  # decoupled weight decay (adamw) or L2 (adam, sgd)
    optimizer: str = "adamw"  # adamw, adam or sgd (momentum 0.9)
    scheduler: str = "poly"  # poly (with linear warmup), plateau (ReduceLROnPlateau on val mIoU) or none
    warmup_epochs: float = 0.5  # linear warmup length in epochs (poly only)
    image_size: tuple[int, int] = (256, 512)  # height width the images are resized to, aspect kept (covering it): the scale the model trains and predicts at
    crop_size: tuple[int, int] = (0, 0)  # training crop height width, (0, 0) = image_size; smaller crops train faster at the same scale
    scale_range: tuple[float, float] = (0.5, 2.0)  # random scale range of the training augmentation
    focus_crop: float = 0.0  # share of training crops centred on a thin or small class (pole, light, sign, person, rider, bikes)
    loss: str = "ce"  # ce, dice, ohem, ce+dice or ohem+dice (255 always ignored)
    class_weights: str = "none"  # class weighting of the loss: none, inverse, median or enet
    amp: str = "auto"  # mixed precision: auto (fp16 on T4/P100, bf16 on Ampere+, off on CPU), fp16, bf16, off
    device: str = "auto"  # auto (cuda if available), cpu, cuda, cuda:1
    num_workers: int = -1  # DataLoader worker processes, -1 = from the CPU count
    time_budget: float = 0.0  # minutes of training before a clean stop (evaluate, save), 0 = none (Kaggle: fit the 12 h session)
    eval_every: int = 1  # validate every N epochs (and always after the last)
    eval_resolution: str = "label"  # label (official: logits upsampled to the label files' size) or train (faster)
    max_train_images: int = 0  # use only the first N training images, 0 = all
    max_val_images: int = 0  # use only the first N validation images, 0 = all
    cache: str = "auto"  # pre-resized arrays (segkit prepare): auto (use one that matches), build (make it in run_dir/cache first), off, or a folder
    grad_clip: float = 0.0  # clip the gradient norm to this value, 0 = off
    channels_last: bool = True  # channels_last memory format (CUDA only, slower on CPU)
    compile: bool = False  # torch.compile the model (CUDA, first epoch slower)
    sync_bn: bool = False  # SyncBatchNorm under torchrun (small per-GPU batches)
    nproc: int = 1  # processes to launch with torchrun (one per GPU, Kaggle T4 x2: 2), 0 = one per visible GPU
    seed: int = 0  # seed for weights, data order and augmentation
    log_every: int = 20  # steps between headless log lines
    num_vis: int = 4  # fixed validation images shown in TensorBoard
    resume: bool = False  # continue the run in run_dir from last.pth
    overwrite: bool = False  # replace segkit's files in an existing run_dir (otherwise refused)
    dashboard: bool = False  # start the TensorBoard dashboard (notebook 02)

    def __post_init__(self) -> None:
        _coerce_fields(self)
        check_data_fields(self)
        _check_split("train_split", self.train_split)
        _check_split("val_split", self.val_split)
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_choice("scheduler", self.scheduler, SCHEDULERS)
        _check_choice("amp", self.amp, AMP_MODES)
        _check_choice("loss", self.loss, LOSSES)
        _check_choice("class_weights", self.class_weights, CLASS_WEIGHTS)
        _check_choice("eval_resolution", self.eval_resolution, EVAL_RESOLUTIONS)
        _check_positive(self, "epochs", "batch_size", "lr", "eval_every", "log_every", "depth")
        _check_positive(self, "base_channels")
        _check_model(self.model, self.encoder)
        _check_non_negative(self, "weight_decay", "time_budget", "warmup_epochs", "grad_clip")
        _check_non_negative(self, "max_train_images", "max_val_images", "num_vis")
        if self.nproc < 0:
            raise ConfigError(f"nproc must be >= 0 (0 = one per visible GPU), got {self.nproc}")
        if not self.lr < 3.4e38:  # must fit the optimizer's float32 state
            raise ConfigError(f"lr {self.lr:g} does not fit in float32 (max 3.4e38); typical values are 1e-4 to 1e-2")
        if self.num_workers < -1:
            raise ConfigError(f"num_workers must be -1 (auto) or >= 0, got {self.num_workers}")
        if not 0 <= self.focus_crop <= 1:
            raise ConfigError(f"focus_crop is a share of crops, 0 to 1; got {self.focus_crop}")
        lo, hi = self.scale_range
        if not 0 < lo <= hi:
            raise ConfigError(f"scale_range must be 0 < low <= high, got {self.scale_range}; e.g. (0.5, 2.0)")
        check_image_size(self.image_size, multiple=self.size_divisor, model=self.model)
        if tuple(self.crop_size) != (0, 0):
            check_image_size(self.crop_size, multiple=self.size_divisor, model=self.model)
        if self.resume and self.overwrite:
            raise ConfigError("resume and overwrite exclude each other: pick one")

    @property
    def size_divisor(self) -> int:
        """Input sizes must be multiples of this: segkit's U-Net's 2**depth; an smp model's is
        checked when it is built (`segkit.models.check_model`), here only 1."""
        return 2**self.depth if not self.encoder else 1

    @property
    def crop(self) -> tuple[int, int]:
        """The training crop (H, W): `crop_size`, or `image_size` when it is (0, 0)."""
        return tuple(self.image_size) if tuple(self.crop_size) == (0, 0) else tuple(self.crop_size)

    @property
    def pretrained(self) -> bool:
        """Whether the encoder starts from pretrained weights."""
        return bool(self.encoder) and self.encoder_weights.lower() not in NO_WEIGHTS

    @property
    def model_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `create_model` beyond the name, num_classes, encoder and weights."""
        return {} if self.encoder else {"base_channels": self.base_channels, "depth": self.depth}


@dataclass(frozen=True)
class EvalConfig:
    """`segkit evaluate` and notebook 03: score a checkpoint, or a folder of predictions."""

    run_dir: str = "runs/train"  # training run to evaluate (its best_model.pth) when checkpoint is ""
    checkpoint: str = ""  # checkpoint file, "" = <run_dir>/best_model.pth
    data_root: str = ""  # data set root, "" = the data the checkpoint was trained on (else auto, as for training)
    layout: str = "auto"  # data layout: auto (found below the data root), cityscapes, gtcoarse, kitti, acdc, dark-zurich, image-pairs (photo | colour mask in one file: Kaggle's Cityscapes Image Pairs), or glob (image_glob + label_glob)
    image_glob: str = ""  # image files below data_root, e.g. images/{split}/**/*.jpg: {split} = the split's folder, the file name's * = the frame's stem
    label_glob: str = ""  # label files below data_root, e.g. labels/{split}/**/*_mask.png: a label pairs with the image of the same stem and split
    label_format: str = "auto"  # what the label files hold: auto (labelIds or labelTrainIds, from their names), labelIds, labelTrainIds, or pairColor (image pairs: the colour mask on each image's right half)
    color_tolerance: float = 20.0  # image pairs: largest distance (YCbCr levels, chroma counted half) at which a colour-mask pixel takes its nearest palette colour's class; farther ones are ignored (255)
    split: str = "val"  # split to evaluate
    predictions: str = ""  # folder of prediction PNGs to score instead of running a model
    format: str = "labelIds"  # format of the prediction PNGs: labelIds or trainIds
    inference: str = "whole"  # whole, slide (sliding window), flip, ms (multi-scale + flip)
    eval_resolution: str = "label"  # label (official protocol) or train (resized labels, faster)
    batch_size: int = 1  # images per forward pass
    max_images: int = 0  # evaluate only the first N images, 0 = all
    device: str = "auto"  # auto, cpu, cuda
    output: str = ""  # metrics JSON to write, "" = eval_<split>_<inference>_<resolution>.json beside the checkpoint (print only for --predictions)

    def __post_init__(self) -> None:
        _coerce_fields(self)
        check_data_fields(self)
        _check_split("split", self.split)
        _check_choice("format", self.format, SCORE_FORMATS)
        _check_choice("inference", self.inference, INFERENCE_MODES)
        _check_choice("eval_resolution", self.eval_resolution, EVAL_RESOLUTIONS)
        _check_positive(self, "batch_size")
        _check_non_negative(self, "max_images")


@dataclass(frozen=True)
class PredictConfig:
    """`segkit predict`: segment an image or a folder, at each input's own size."""

    checkpoint: str = ""  # checkpoint file (best_model.pth), it carries the model's architecture
    img: str = ""  # image file or folder of images
    output: str = "runs/predictions"  # folder for the prediction PNGs
    format: str = "color"  # color, overlay, trainIds or labelIds (labelIds = Cityscapes submission format)
    inference: str = "whole"  # whole, slide (sliding window), flip, ms (multi-scale + flip)
    backend: str = "torch"  # torch or onnx (exports the checkpoint to <checkpoint>.onnx, needs onnxruntime)
    device: str = "auto"  # auto, cpu, cuda
    overwrite: bool = False  # replace prediction files that already exist in output
    pairs: str = "auto"  # are the images pairs (photo left, colour mask right: Kaggle's Cityscapes Image Pairs)? auto (when the checkpoint trained on pairs and the file is one), on (predict each file's left half), off (the whole file)

    def __post_init__(self) -> None:
        _coerce_fields(self)
        _check_choice("format", self.format, PREDICT_FORMATS)
        _check_choice("pairs", self.pairs, PAIR_INPUTS)
        _check_choice("inference", self.inference, INFERENCE_MODES)
        _check_choice("backend", self.backend, ("torch", "onnx"))
        if not self.checkpoint:
            raise ConfigError("--checkpoint is required, e.g. --checkpoint runs/train/best_model.pth")
        if not self.img:
            raise ConfigError("--img is required: an image file or a folder of images")


@dataclass(frozen=True)
class SynthConfig:
    """`segkit synth`: write the synthetic street-scene data set in the Cityscapes layout."""

    out: str = "data/synthetic"  # output root (gets leftImg8bit/ and gtFine/)
    num_train: int = 60  # training images
    num_val: int = 20  # validation images
    image_size: tuple[int, int] = (256, 512)  # height width of every image
    seed: int = 0  # same seed, same images
    overwrite: bool = False  # regenerate a synthetic set that exists with other parameters

    def __post_init__(self) -> None:
        _coerce_fields(self)
        _check_non_negative(self, "num_train", "num_val")
        check_image_size(self.image_size)


@dataclass(frozen=True)
class ExploreConfig:
    """Notebook 01: what is in the data."""

    data_root: str = ""  # data set root, "" = auto (as for training)
    layout: str = "auto"  # data layout: auto (found below the data root), cityscapes, gtcoarse, kitti, acdc, dark-zurich, image-pairs (photo | colour mask in one file: Kaggle's Cityscapes Image Pairs), or glob (image_glob + label_glob)
    image_glob: str = ""  # image files below data_root, e.g. images/{split}/**/*.jpg: {split} = the split's folder, the file name's * = the frame's stem
    label_glob: str = ""  # label files below data_root, e.g. labels/{split}/**/*_mask.png: a label pairs with the image of the same stem and split
    label_format: str = "auto"  # what the label files hold: auto (labelIds or labelTrainIds, from their names), labelIds, labelTrainIds, or pairColor (image pairs: the colour mask on each image's right half)
    color_tolerance: float = 20.0  # image pairs: largest distance (YCbCr levels, chroma counted half) at which a colour-mask pixel takes its nearest palette colour's class; farther ones are ignored (255)
    num_samples: int = 6  # images in the sample grid
    max_images: int = 0  # images per split read for statistics and checks, 0 = all
    class_weights: str = "median"  # weighting shown next to the class frequencies

    def __post_init__(self) -> None:
        _coerce_fields(self)
        check_data_fields(self)
        _check_positive(self, "num_samples")
        _check_non_negative(self, "max_images")
        _check_choice("class_weights", self.class_weights, CLASS_WEIGHTS)


@dataclass(frozen=True)
class VisualizeConfig:
    """Notebook 04: figures of a training run."""

    run_dir: str = "runs/train"  # training run to visualise
    data_root: str = ""  # data set root, "" = the one the run was trained on
    layout: str = "auto"  # data layout: auto (found below the data root), cityscapes, gtcoarse, kitti, acdc, dark-zurich, image-pairs (photo | colour mask in one file: Kaggle's Cityscapes Image Pairs), or glob (image_glob + label_glob)
    image_glob: str = ""  # image files below data_root, e.g. images/{split}/**/*.jpg: {split} = the split's folder, the file name's * = the frame's stem
    label_glob: str = ""  # label files below data_root, e.g. labels/{split}/**/*_mask.png: a label pairs with the image of the same stem and split
    label_format: str = "auto"  # what the label files hold: auto (labelIds or labelTrainIds, from their names), labelIds, labelTrainIds, or pairColor (image pairs: the colour mask on each image's right half)
    color_tolerance: float = 20.0  # image pairs: largest distance (YCbCr levels, chroma counted half) at which a colour-mask pixel takes its nearest palette colour's class; farther ones are ignored (255)
    split: str = "val"  # split to draw samples from
    num_samples: int = 4  # triptychs (input / ground truth / prediction)
    inference: str = "whole"  # whole, slide, flip or ms

    def __post_init__(self) -> None:
        _coerce_fields(self)
        check_data_fields(self)
        _check_split("split", self.split)
        _check_positive(self, "num_samples")
        _check_choice("inference", self.inference, INFERENCE_MODES)


@dataclass(frozen=True)
class CompareConfig:
    """Notebook 05 and `segkit runs`: training runs side by side."""

    runs_dir: str = "runs"  # folder searched for run directories (at any depth), or one run directory

    def __post_init__(self) -> None:
        _coerce_fields(self)


# ----------------------------------------------------------------------------- presets

# Named recipes: `doc` (shown by `segkit presets`) and `fields`, TrainConfig values that fields the
# user sets explicitly override. What each one costs and reaches: benchmarks/README.md.
PRESETS: dict[str, dict[str, Any]] = {
    "seed": {
        "cpu_img_s": 0.43,  # training img/s of the model alone, 2 idle CPU cores: benchmarks/train_throughput.py
        "doc": "the seed's train.py: U-Net (base 64) at 256x512, batch 4, lr 1e-4, 20 epochs (= the defaults)",
        "fields": {"model": "unet", "encoder": "", "base_channels": 64, "depth": 4, "image_size": (256, 512),
                   "batch_size": 4, "lr": 1e-4, "epochs": 20},
    },
    "cpu-quick": {
        "cpu_img_s": 58.6,  # training img/s of the model alone, 2 idle CPU cores: benchmarks/train_throughput.py
        # benchmarks/quality_per_compute.py, synthetic 512x1024 data, mIoU of the final weights:
        # 64x128 33.3 vs 96x192 29.7 in 15 min; in 5 min 27.2 / 20.9 / 14.8 / 5.9 at 64x128 / 96x192 /
        # 128x256 / 256x512. Synthetic data only: on real Cityscapes, check with --data-root.
        # focus_crop 0.5 (half the crops centred on a pole/light/sign/person/rider/bike pixel): on
        # kitti-mini's real frames (300 epochs, 2 seeds) mIoU 38.1/36.6 -> 41.9/40.1, pole 10.0/7.4 ->
        # 19.7/16.6; on synthetic 3:4 frames (150 epochs, 1 run) 34.5 -> 31.9. benchmarks/README.md.
        "doc": "laptop / 2 CPU cores, 15 minutes: small U-Net at 64x128",
        "fields": {
            "model": "unet", "encoder": "", "base_channels": 16, "depth": 4, "image_size": (64, 128),
            "batch_size": 8, "lr": 3e-3, "optimizer": "adamw", "scheduler": "poly",
            "epochs": 200, "time_budget": 15.0, "scale_range": (0.75, 1.5), "amp": "off",
            "eval_resolution": "train", "eval_every": 5, "loss": "ce", "class_weights": "none",
            "focus_crop": 0.5, "cache": "build",
        },
    },
    # The GPU presets train on every visible GPU (nproc 0: T4 x2 -> 2 processes; batch_size is per GPU)
    # and stop inside Kaggle's session (time budget). Their recipes follow common Cityscapes practice
    # (poly schedule, scale 0.5-2.0 augmentation); nobody has measured them on a T4 yet.
    "t4-fast": {
        "cpu_img_s": 0.62,  # training img/s of the model alone, 2 idle CPU cores: benchmarks/train_throughput.py
        "doc": "Kaggle T4 x2, 512x1024, fast: SegFormer-B0 (mit_b0, ImageNet), fp16",
        "fields": {
            "model": "segformer", "encoder": "mit_b0", "encoder_weights": "imagenet", "image_size": (512, 1024),
            "batch_size": 8, "lr": 2e-4, "weight_decay": 1e-2, "optimizer": "adamw", "scheduler": "poly",
            "warmup_epochs": 1.0, "epochs": 200, "amp": "auto", "loss": "ce", "scale_range": (0.5, 2.0), "nproc": 0,
        },
    },
    "t4-strong": {
        "cpu_img_s": 0.35,  # training img/s of the model alone, 2 idle CPU cores: benchmarks/train_throughput.py
        "doc": "Kaggle T4 x2, 512x1024, strong: DeepLabV3+ on ResNet-50 (ImageNet), fp16, SyncBN",
        "fields": {
            "model": "deeplabv3plus", "encoder": "resnet50", "encoder_weights": "imagenet", "image_size": (512, 1024),
            "batch_size": 4, "lr": 1e-2, "weight_decay": 5e-4, "optimizer": "sgd", "scheduler": "poly",
            "warmup_epochs": 1.0, "epochs": 200, "amp": "auto", "loss": "ohem", "scale_range": (0.5, 2.0),
            "sync_bn": True, "nproc": 0,
        },
    },
    "t4-256x512": {
        "cpu_img_s": 2.63,  # training img/s of the model alone, 2 idle CPU cores: benchmarks/train_throughput.py
        "doc": "Kaggle T4 x2, 256x512: U-Net on ResNet-34 (ImageNet), fp16",
        "fields": {
            "model": "unet", "encoder": "resnet34", "encoder_weights": "imagenet", "image_size": (256, 512),
            "batch_size": 16, "lr": 1e-3, "optimizer": "adamw", "scheduler": "poly", "epochs": 120, "amp": "auto",
            "loss": "ohem", "scale_range": (0.5, 2.0), "nproc": 0,
        },
    },
    "t4-512x1024": {
        "cpu_img_s": 0.32,  # training img/s of the model alone, 2 idle CPU cores: benchmarks/train_throughput.py
        "doc": "Kaggle T4 x2, 512x1024: U-Net on ResNet-50 (ImageNet), fp16",
        "fields": {
            "model": "unet", "encoder": "resnet50", "encoder_weights": "imagenet", "image_size": (512, 1024),
            "batch_size": 8, "lr": 5e-4, "optimizer": "adamw", "scheduler": "poly", "epochs": 100, "amp": "auto",
            "loss": "ohem", "scale_range": (0.5, 2.0), "nproc": 0,
        },
    },
}


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
    if cfg.preset not in PRESETS:
        raise ConfigError(
            f"unknown preset {cfg.preset!r}; valid presets: {', '.join(PRESETS)}"
            + _did_you_mean(cfg.preset, PRESETS)
        )
    if explicit is None:
        explicit = {f.name for f in fields(cfg) if getattr(cfg, f.name) != f.default}
    updates = {k: v for k, v in PRESETS[cfg.preset]["fields"].items() if k not in explicit}
    return dataclasses.replace(cfg, **updates)


# ----------------------------------------------------------------------------- building configs


def from_dict(cls: type[C], values: dict[str, Any], where: str = "parameter") -> C:
    """Build a config from a dict, refusing unknown names with the list of valid ones.

    Args:
        cls: a config dataclass.
        values: field name -> value (strings such as "256x512" are coerced to the field's type).
        where: how to call the names in messages ("parameter", "flag").

    Returns:
        The validated config.
    """
    valid = [f.name for f in fields(cls)]
    unknown = [k for k in values if k not in valid]
    if unknown:
        hints = "".join(_did_you_mean(k, valid) for k in unknown)
        raise ConfigError(
            f"unknown {where}{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
            f"for {cls.__name__}{hints}; valid names: {', '.join(valid)}"
        )
    return cls(**values)


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-able dict of a config (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}


@cache
def field_help(cls: type) -> dict[str, str]:
    """The trailing `# comment` of each field in the class source: the help text."""
    source = inspect.getsource(cls)
    helps: dict[str, str] = {}
    names = {f.name for f in fields(cls)}
    for line in source.splitlines():
        stripped = line.strip()
        name = stripped.split(":", 1)[0]
        if name in names and "#" in stripped:
            tokens = tokenize.generate_tokens(io.StringIO(stripped).readline)
            comments = [t.string for t in tokens if t.type == tokenize.COMMENT]
            if comments:
                helps[name] = comments[-1].lstrip("#").strip()
    return helps


def flag_name(field_name: str) -> str:
    """The command-line flag of a field: `batch_size` -> `--batch-size`."""
    return "--" + field_name.replace("_", "-")


def to_argv(cfg: Any, skip: tuple[str, ...] = ()) -> list[str]:
    """Flags that rebuild `cfg` exactly on the command line: every field, defaults included.

    Every field is given so that nothing is left for a preset or a resumed run to fill in: the
    process that parses them trains the same config as the one that wrote them.
    """
    types = field_types(type(cfg))
    argv: list[str] = []
    for f in fields(cfg):
        if f.name in skip:
            continue
        value, flag = getattr(cfg, f.name), flag_name(f.name)
        if types[f.name] is bool:
            argv.append(flag if value else "--no-" + flag[2:])
        elif typing.get_origin(types[f.name]) is tuple:
            argv += [flag, *map(str, value)]
        else:
            argv += [flag, str(value)]
    return argv


def field_types(cls: type) -> dict[str, Any]:
    """Resolved type of each field (annotations are strings under `from __future__`)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in fields(cls)}


# ----------------------------------------------------------------------------- validation helpers


def coerce(name: str, value: Any, typ: Any) -> Any:
    """Convert `value` to `typ` where the meaning is unambiguous; ConfigError otherwise."""
    origin = typing.get_origin(typ)
    if origin is tuple:
        return _coerce_tuple(name, value, typing.get_args(typ))
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ConfigError(f"{name} must be True or False, got {value!r}")
    if typ is int:
        if isinstance(value, bool) or not _is_int_like(value):
            raise ConfigError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
        return int(value)
    if typ is float:
        try:
            if isinstance(value, bool):  # float(True) would quietly be 1.0
                raise TypeError
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be a number, got {value!r} ({type(value).__name__})") from None
    if typ is str:
        if value is None:
            return ""
        if not isinstance(value, str):
            raise ConfigError(f"{name} must be a string, got {value!r} ({type(value).__name__})")
        return value
    return value


def _is_int_like(value: Any) -> bool:
    if isinstance(value, int):
        return True
    if isinstance(value, float):
        return value.is_integer()
    if isinstance(value, str):
        try:
            int(value)
            return True
        except ValueError:
            return False
    return False


def _coerce_tuple(name: str, value: Any, args: tuple) -> tuple:
    if isinstance(value, str):
        parts = value.replace("x", " ").replace(",", " ").split()
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        parts = [value]
    if len(parts) != len(args):
        example = "x".join(["256", "512"][: len(args)])
        raise ConfigError(
            f"{name} needs {len(args)} values, got {value!r}; write e.g. {example!r} or {list(parts)[:1] * len(args)}"
        )
    return tuple(coerce(name, p, t) for p, t in zip(parts, args))


def _coerce_fields(cfg: Any) -> None:
    types = field_types(type(cfg))
    for f in fields(cfg):
        value = coerce(f.name, getattr(cfg, f.name), types[f.name])
        object.__setattr__(cfg, f.name, value)


def _did_you_mean(name: str, valid: Any) -> str:
    close = difflib.get_close_matches(name, list(valid), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_model(model: str, encoder: str) -> None:
    """The architecture name (encoders are checked by segkit.models, which imports smp)."""
    if model in RETIRED_MODELS:
        raise ConfigError(
            f"model {model!r} was segkit 0.1's own ResNet U-Net; U-Nets on pretrained encoders now come from "
            f"segmentation_models_pytorch: use {RETIRED_MODELS[model]} (ImageNet weights by default)"
        )
    _check_choice("model", model, ARCHITECTURES)
    if not encoder and model != "unet":
        raise ConfigError(f"model {model!r} needs an encoder, e.g. --encoder resnet34 (only unet has a built-in "
                          "encoder: segkit's own U-Net, used when --encoder is empty)")


def check_data_fields(cfg: Any) -> None:
    """The layout fields of a config (DATA_FIELDS): choices, and glob patterns segkit can read.

    Raises:
        ConfigError: what is wrong and a pattern that works, e.g. images/{split}/**/*.jpg.
    """
    _check_choice("layout", cfg.layout, LAYOUTS)
    _check_choice("label_format", cfg.label_format, LABEL_FORMAT_CHOICES)
    _check_pair_fields(cfg)
    globs = {"image_glob": cfg.image_glob, "label_glob": cfg.label_glob}
    if not any(globs.values()):
        if cfg.layout == "glob":
            raise ConfigError("layout glob needs image_glob and label_glob, e.g. --image-glob 'images/{split}/*.jpg' "
                              "--label-glob 'labels/{split}/*_mask.png'")
        return
    missing = [flag_name(k) for k, v in globs.items() if not v]
    if missing:
        raise ConfigError(f"image_glob and label_glob go together: add {missing[0]}, e.g. --image-glob "
                          "'images/{split}/*.jpg' --label-glob 'labels/{split}/*_mask.png'")
    if cfg.layout not in ("auto", "glob"):
        raise ConfigError(f"layout {cfg.layout!r} and glob patterns exclude each other: drop --layout (or "
                          "--image-glob and --label-glob)")
    if not cfg.data_root:
        raise ConfigError("image_glob and label_glob are read below data_root: give --data-root too")
    for name, pattern in globs.items():
        check_glob(name, pattern)


def _check_pair_fields(cfg: Any) -> None:
    """Image pairs: a sensible tolerance; one file is photo and mask, so one pattern and no id format."""
    if not 0 < float(cfg.color_tolerance) <= 255:
        raise ConfigError(f"color_tolerance must be > 0 and <= 255 (levels of colour distance), got {cfg.color_tolerance!r}; "
                          "the default 20 suits JPEG pairs, a larger value decides more edge pixels and more of them wrongly")
    if cfg.layout == "image-pairs" and cfg.label_format not in ("auto", "pairColor"):
        raise ConfigError(f"layout image-pairs reads colour masks from the pair files, not {cfg.label_format} files: "
                          "drop --label-format")
    if cfg.label_format == "pairColor" and not cfg.image_glob and cfg.layout != "image-pairs":
        raise ConfigError("label_format pairColor (image pairs) goes with --layout image-pairs, or with --image-glob and "
                          "--label-glob naming the pair files (PNG pairs, other folders)")
    if cfg.label_format == "pairColor" and cfg.image_glob != cfg.label_glob:
        raise ConfigError("label_format pairColor reads photo and colour mask from one file (left and right half): "
                          f"give image_glob and label_glob the same pattern, e.g. --image-glob '{cfg.image_glob or 'pairs/{split}/*.png'}' "
                          f"--label-glob '{cfg.image_glob or 'pairs/{split}/*.png'}'")


def check_glob(name: str, pattern: str) -> None:
    """One glob pattern of the glob layout (the rules: segkit.data.layouts' docstring)."""
    example = "labels/{split}/**/*_mask.png" if name == "label_glob" else "images/{split}/**/*.jpg"
    folders, _, file_part = pattern.rpartition("/")
    checks = [
        (pattern.startswith(("/", "~")), "is absolute: write it relative to data_root"),
        (pattern.count("{split}") != 1, "needs {split} exactly once, where the split's folder is"),
        ("{split}" in file_part, "has {split} in its file name: put it in a folder"),
        (folders.split("/").count("**") > 1, "may use ** once at most"),
        (file_part == "*" or not file_part.startswith("*") or any(c in file_part[1:] for c in "*?["),
         "has a file-name part that is not * and a fixed ending (the * is the frame's stem)"),
        ("{format}" in pattern and name != "label_glob", "names {format}, which only label globs may"),
    ]
    problem = next((message for bad, message in checks if bad), "")
    if problem:
        raise ConfigError(f"{name} {pattern!r} {problem}; e.g. {example!r}")


def _check_split(name: str, value: str) -> None:
    if not value or "/" in value:
        raise ConfigError(f"{name} must name one folder of the data set (e.g. train, val, training); got {value!r}")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {value!r}" + _did_you_mean(value, choices))


def _check_positive(cfg: Any, *names: str) -> None:
    for name in names:
        if not getattr(cfg, name) > 0:
            raise ConfigError(f"{name} must be > 0, got {getattr(cfg, name)!r}")


def _check_non_negative(cfg: Any, *names: str) -> None:
    for name in names:
        if getattr(cfg, name) < 0:
            raise ConfigError(f"{name} must be >= 0, got {getattr(cfg, name)!r}")


def check_image_size(size: Any, multiple: int = 1, minimum: int = 16, model: str = "the network") -> tuple[int, int]:
    """The one check of an image size: (height, width) integers >= `minimum`, multiples of `multiple`.

    Args:
        size: (H, W) as given.
        multiple: the model's total downsampling (its `size_divisor`).
        minimum: smallest side accepted.
        model: how to name the model in the message.

    Returns:
        (H, W) as ints.

    Raises:
        ConfigError: with the nearest valid size, e.g. "image size 250x512 is not a multiple of 32; try 256x512".
    """
    parts = list(size) if isinstance(size, (tuple, list)) else []
    if len(parts) != 2 or not all(_is_int_like(v) and not isinstance(v, bool) and int(v) >= minimum for v in parts):
        raise ConfigError(f"image_size must be (height, width), both integers >= {minimum}, e.g. 256x512; got {size!r}")
    h, w = int(parts[0]), int(parts[1])
    if h % multiple or w % multiple:
        # Round half up to the nearest multiple, but never below one multiple.
        fix_h, fix_w = (max(multiple, (v + multiple // 2) // multiple * multiple) for v in (h, w))
        found, fix = (f"{h}", f"{fix_h}") if h == w else (f"{h}x{w}", f"{fix_h}x{fix_w}")
        raise ConfigError(
            f"image size {found} is not a multiple of {multiple}; try {fix} ({model} downsamples by {multiple}, "
            f"so H and W must both be multiples of {multiple}; resize or pad the input)"
        )
    return h, w
