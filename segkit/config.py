"""One frozen dataclass per job: the single source of defaults for notebooks, CLI and code.

Each field's trailing comment is its help text: the CLI shows it (`segkit train --help`), and the
notebooks' `parameters` cells repeat the same `name: type = value  # help` lines so that
`papermill --help-notebook` documents them. A test checks that the three agree. How fields become
flags and parameters is `segkit.reflect`; the named recipes (`--preset`) are `segkit.recipes`;
what a model choice means (architecture, encoder, weights) is `segkit.model_choice`.

Every command that reads a data set shares `DataConfig`'s fields (where the data is and how it
sits); every command's defaults are here once.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from segkit.checks import (
    check_choice,
    check_glob,
    check_image_size,
    check_non_negative,
    check_positive,
    check_required,
    check_split,
)
from segkit.errors import ConfigError
from segkit.model_choice import ModelChoice, check_architecture, family, family_names
from segkit.reflect import POSITIONAL, choices, coerce_fields, flag_name

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # the normalisation ImageNet-pretrained encoders expect
IMAGENET_STD = (0.229, 0.224, 0.225)
OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULERS = ("poly", "plateau", "none")
AMP_MODES = ("auto", "fp16", "bf16", "off")
PIXEL_LOSSES = ("ce", "ohem")  # a mean over pixels
REGION_LOSSES = ("dice", "lovasz")  # a mean over classes
LOSSES = (*PIXEL_LOSSES, *REGION_LOSSES, *(f"{p}+{r}" for p in PIXEL_LOSSES for r in REGION_LOSSES))
CLASS_WEIGHTS = ("none", "inverse", "median", "enet")
INFERENCE_MODES = ("whole", "slide", "flip", "ms")
EVAL_RESOLUTIONS = ("label", "train")
PREDICT_FORMATS = ("color", "overlay", "trainIds", "labelIds")
SCORE_FORMATS = ("labelIds", "trainIds", "color")  # prediction PNGs `segkit evaluate --predictions` scores
# Inference backends: segkit.backends.BACKENDS's names (a test checks), their former aliases and auto.
BACKEND_NAMES = (
    "eager",
    "channels_last",
    "compile",
    "onnxruntime",
    "onnxruntime-int8",
    "openvino",
    "openvino-int8",
    "onnxruntime-cuda",
    "tensorrt",
    "fp16",
    "bf16",
)
BACKENDS = ("auto", "torch", "onnx", *BACKEND_NAMES)
EXPORT_FORMATS = ("onnx", "openvino")
DEVICES = ("cpu", "cuda")
# Data layouts (segkit.data.layouts.BUILT_IN, a test checks), "auto" (found) and "glob" (image_glob + label_glob).
LAYOUTS = (
    "auto",
    "cityscapes",
    "gtcoarse",
    "kitti",
    "acdc",
    "dark-zurich",
    "image-pairs",
    "camvid",
    "camvid-kaggle",
    "mapillary-v1.2",
    "mapillary-v2.0",
    "ade20k",
    "pascal-voc",
    "glob",
)
# What label files hold; auto = from their names (or the layout's own); pairColor = an image pair's right half
# (segkit.data.pairs); values = class values of a label space (palette PNGs: the index); color = RGB colour masks.
LABEL_FORMAT_CHOICES = ("auto", "labelIds", "labelTrainIds", "pairColor", "values", "color")
PAIR_INPUTS = ("auto", "on", "off")  # segkit predict: are --img files image pairs (photo | colour mask)?


@dataclass(frozen=True)
class DataConfig:
    """Where a data set is and how it sits: the fields every command that reads data shares."""

    data_root: str = ""  # data set root, "" = the data the run or checkpoint was trained on, else auto
    # ($CITYSCAPES_DATASET, /kaggle/input, ./data/cityscapes, else synthetic)
    layout: str = "auto"  # data layout: auto (found below the data root), cityscapes, gtcoarse, kitti, acdc,
    # dark-zurich, image-pairs (photo | colour mask in one file: Kaggle's Cityscapes Image Pairs), camvid (SegNet's),
    # camvid-kaggle, mapillary-v1.2, mapillary-v2.0, ade20k, pascal-voc, or glob (image_glob + label_glob)
    image_glob: str = ""  # image files below data_root, e.g. images/{split}/**/*.jpg: {split} = the split's folder, the
    # file name's * = the frame's stem
    label_glob: str = ""  # label files below data_root, e.g. labels/{split}/**/*_mask.png: a label pairs with the image
    # of the same stem and split
    label_format: str = "auto"  # what the label files hold: auto (the layout's, or labelIds / labelTrainIds from their
    # names), labelIds, labelTrainIds, pairColor (image pairs: the colour mask on each image's right half), values
    # (class values; a palette PNG's index) or color (RGB colour masks)
    color_tolerance: float = 20.0  # image pairs: largest distance (YCbCr levels, chroma counted half) at which a
    # colour-mask pixel takes its nearest palette colour's class; farther ones are ignored (255)
    classes: str = ""  # label space: a built-in (cityscapes, camvid, camvid-32, mapillary-v1.2, mapillary-v2.0, ade20k,
    # pascal-voc, bdd100k) or a .yaml/.json/.csv file; "" = the data set's own description, else its layout's, else
    # cityscapes
    class_map: str = ""  # map between label spaces, by class name: a built-in (cityscapes->camvid,
    # mapillary->cityscapes) or a .yaml/.json file; evaluate a model on data of another space, or fine-tune across them

    def __post_init__(self) -> None:
        coerce_fields(self)
        check_data_fields(self)

    def data_fields(self) -> dict[str, Any]:
        """The DataConfig fields of this config, as a dict (for another config, or a record)."""
        return {f.name: getattr(self, f.name) for f in fields(DataConfig)}


@dataclass(frozen=True)
class TrainConfig(DataConfig):
    """Everything `segkit train` and notebook 02 need; presets fill fields left at their default."""

    train_split: str = "train"  # split to train on (KITTI: training)
    val_split: str = "val"  # split to validate and score the best model on (KITTI has only training: training)
    run_dir: str = "runs/train"  # output directory: checkpoints, history, TensorBoard, figures
    preset: str = ""  # named recipe (segkit presets lists them), explicit values override it
    model: str = field(default="unet", metadata=choices(family_names))  # model family (segkit.model_choice.FAMILIES):
    # unet without --encoder is segkit's own U-Net, the smp families take any --encoder
    encoder: str = ""  # smp/timm encoder: resnet18..152, efficientnet-b0..b7, mit_b0..b5, mobilenet_v2, tu-<timm
    # model>; "" = the family's own network (unet: segkit's own U-Net)
    encoder_weights: str = "imagenet"  # pretrained encoder: imagenet (or a variant: ssl, swsl, advprop...), a weights
    # file, or none (random init)
    init_from: str = ""  # fine-tune: start the whole model from a segkit checkpoint or a released model (a Hugging Face
    # repo id such as smp-hub/segformer-b0-640x1280-city-160k, or a save_pretrained folder), with its architecture
    encoder_lr_scale: float = 1.0  # the encoder's learning rate as a share of lr (fine-tuning a pretrained one: e.g.
    # 0.1); 0 = encoder frozen
    freeze_encoder_bn: bool = False  # keep the encoder's BatchNorm as pretrained: eval-mode statistics, scale and shift
    # not trained (small batches)
    base_channels: int = 64  # width of the first stage of segkit's own U-Net (no encoder; the seed used 64)
    depth: int = 4  # downsamplings of segkit's own U-Net (no encoder), sizes must be multiples of 2**depth
    epochs: int = 20  # passes over the train split
    batch_size: int = 4  # images per optimizer step (per GPU under torchrun)
    lr: float = 1e-4  # peak learning rate
    weight_decay: float = 1e-4  # decoupled weight decay (adamw) or L2 (adam, sgd)
    optimizer: str = "adamw"  # adamw, adam or sgd (momentum 0.9)
    scheduler: str = "poly"  # poly (with linear warmup), plateau (ReduceLROnPlateau on val mIoU) or none
    warmup_epochs: float = 0.5  # linear warmup length in epochs (poly only)
    image_size: tuple[int, int] = (256, 512)  # height width the images are resized to, aspect kept (covering it): the
    # scale the model trains and predicts at
    crop_size: tuple[int, int] = (0, 0)  # training crop height width, (0, 0) = image_size; smaller crops train faster
    # at the same scale
    infer_size: tuple[int, int] = (0, 0)  # height width the trained model is run at (the checkpoint's size: predict,
    # evaluate, benchmark, the final evaluation), (0, 0) = image_size; validation while training stays at image_size
    scale_range: tuple[float, float] = (0.5, 2.0)  # random scale range of the training augmentation
    focus_crop: float = 0.0  # share of training crops centred on a thin or small class (pole, light, sign, person,
    # rider, bikes)
    loss: str = "ce"  # ce, ohem (pixel losses), dice, lovasz (per-class region losses) or pixel+region, e.g.
    # ohem+lovasz (255 always ignored)
    class_weights: str = "none"  # class weighting of the loss: none, inverse, median or enet
    amp: str = "auto"  # mixed precision: auto (fp16 on T4/P100, bf16 on Ampere+, off on CPU), fp16, bf16, off
    device: str = "auto"  # auto (cuda if available), cpu, cuda, cuda:1
    num_workers: int = -1  # DataLoader worker processes, -1 = from the CPU count
    time_budget: float = 0.0  # minutes of training before a clean stop (evaluate, save), 0 = none (Kaggle: fit the 12 h
    # session)
    eval_every: int = 1  # validate every N epochs (and always after the last)
    eval_resolution: str = "label"  # label (official: logits upsampled to the label files' size) or train (faster)
    max_train_images: int = 0  # use only the first N training images, 0 = all
    max_val_images: int = 0  # use only the first N validation images, 0 = all
    cache: str = "auto"  # pre-resized arrays (segkit prepare): auto (use one that matches), build (make it in
    # run_dir/cache first), off, or a folder
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
        super().__post_init__()
        check_split("train_split", self.train_split)
        check_split("val_split", self.val_split)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("scheduler", self.scheduler, SCHEDULERS)
        check_choice("amp", self.amp, AMP_MODES)
        check_choice("loss", self.loss, LOSSES)
        check_choice("class_weights", self.class_weights, CLASS_WEIGHTS)
        check_choice("eval_resolution", self.eval_resolution, EVAL_RESOLUTIONS)
        check_positive(self, "epochs", "batch_size", "lr", "eval_every", "log_every", "depth")
        check_positive(self, "base_channels")
        check_architecture(self.model, self.encoder)
        check_non_negative(self, "weight_decay", "time_budget", "warmup_epochs", "grad_clip")
        check_non_negative(self, "max_train_images", "max_val_images", "num_vis")
        check_non_negative(self, "encoder_lr_scale")
        if not self.encoder and (self.freeze_encoder_bn or self.encoder_lr_scale != 1.0):
            raise ConfigError(
                "freeze_encoder_bn and encoder_lr_scale act on a pretrained encoder; segkit's own U-Net "
                "(no --encoder) has none. Add e.g. --encoder tu-tf_efficientnet_lite0, or drop them."
            )
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
        if tuple(self.infer_size) != (0, 0):
            check_image_size(self.infer_size, multiple=self.size_divisor, model=self.model)
        if self.resume and self.overwrite:
            raise ConfigError("resume and overwrite exclude each other: pick one")

    @property
    def size_divisor(self) -> int:
        """Input sizes must be multiples of this: the family's own network's (segkit's U-Net: 2**depth); a
        model on an encoder is checked when it is built (`segkit.models.check_model`), here only 1."""
        if self.encoder:
            return 1
        options = {name: getattr(self, name) for name in family(self.model).config_fields}
        return family(self.model).divisor(options)

    @property
    def crop(self) -> tuple[int, int]:
        """The training crop (H, W): `crop_size`, or `image_size` when it is (0, 0)."""
        return tuple(self.image_size) if tuple(self.crop_size) == (0, 0) else tuple(self.crop_size)

    @property
    def inference_size(self) -> tuple[int, int]:
        """The size the trained model runs at (H, W): `infer_size`, or `image_size` when it is (0, 0)."""
        return tuple(self.image_size) if tuple(self.infer_size) == (0, 0) else tuple(self.infer_size)

    @property
    def model_choice(self) -> ModelChoice:
        """What this config builds (`segkit.model_choice`): own U-Net's default weights ignored."""
        return ModelChoice.from_config(self, explicit=set())

    @property
    def pretrained(self) -> bool:
        """Whether the encoder starts from pretrained weights."""
        return self.model_choice.pretrained


@dataclass(frozen=True)
class EvalConfig(DataConfig):
    """`segkit evaluate` and notebook 03: score a checkpoint, or a folder of predictions."""

    run_dir: str = "runs/train"  # training run to evaluate (its best_model.pth) when checkpoint is ""
    checkpoint: str = ""  # checkpoint file or a released model (a Hugging Face repo id such as
    # smp-hub/segformer-b0-640x1280-city-160k, or a save_pretrained folder), "" = <run_dir>/best_model.pth
    split: str = "val"  # split to evaluate
    predictions: str = ""  # folder of prediction PNGs to score instead of running a model
    format: str = "labelIds"  # format of the prediction PNGs: labelIds (the data set's own label values), trainIds
    # (class indices 0..N-1, 255 = void) or color (the label space's colours)
    prediction_classes: str = ""  # label space of --predictions (NAME|FILE), "" = the labels' own; another space is
    # mapped with --class-map or the built-in map between the two
    inference: str = "whole"  # whole, slide (sliding window), flip, ms (multi-scale + flip)
    eval_resolution: str = "label"  # label (official protocol) or train (resized labels, faster)
    batch_size: int = 1  # images per forward pass
    image_size: tuple[int, int] = (0, 0)  # height width the model's inputs are resized to cover, (0, 0) = the
    # checkpoint's (a released model without a Resize: each image's own size)
    max_images: int = 0  # evaluate only the first N images, 0 = all
    device: str = "auto"  # auto, cpu, cuda
    output: str = ""  # metrics JSON to write, "" = eval_<split>_<inference>_<resolution>[_<H>x<W> if --image-size].json
    # beside the checkpoint (print only for --predictions)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_split("split", self.split)
        check_choice("format", self.format, SCORE_FORMATS)
        check_choice("inference", self.inference, INFERENCE_MODES)
        check_choice("eval_resolution", self.eval_resolution, EVAL_RESOLUTIONS)
        check_positive(self, "batch_size")
        check_non_negative(self, "max_images")
        if tuple(self.image_size) != (0, 0):
            check_image_size(self.image_size)


@dataclass(frozen=True)
class PredictConfig:
    """`segkit predict`: segment an image or a folder, at each input's own size."""

    checkpoint: str = ""  # checkpoint file (best_model.pth: it carries the model's architecture) or a released model (a
    # Hugging Face repo id such as smp-hub/segformer-b0-640x1280-city-160k, or a save_pretrained folder)
    img: str = ""  # image file or folder of images, or a video (.mp4, .mov, .avi, .mkv, .webm) -> <name>_overlay.mp4
    output: str = "runs/predictions"  # folder for the prediction PNGs
    format: str = "color"  # color, overlay, trainIds or labelIds (labelIds = Cityscapes submission format); a video:
    # also one PNG per frame, except color (the overlay video shows it)
    inference: str = "whole"  # whole, slide (sliding window), flip, ms (multi-scale + flip)
    image_size: tuple[int, int] = (0, 0)  # height width the model's inputs are resized to cover, (0, 0) = the
    # checkpoint's (a released model without a Resize: each image's own size)
    backend: str = "torch"  # torch (= eager), onnx (= onnxruntime), another of segkit benchmark's backends, or
    # auto (the fastest in the checkpoint's speed.json within max_miou_drop, else eager)
    device: str = "auto"  # auto, cpu, cuda
    overwrite: bool = False  # replace prediction files that already exist in output
    video: bool = False  # read the --img folder as the frames of one video (sorted by name), not as separate images
    fps: float = 0.0  # frames/s of a --video folder of frames (KITTI 10, Cityscapes sequences 17); a video file keeps
    # its own
    pairs: str = "auto"  # are the images pairs (photo left, colour mask right: Kaggle's Cityscapes Image Pairs)? auto
    # (when the checkpoint trained on pairs and the file is one), on (predict each file's left half), off (the whole
    # file)
    max_miou_drop: float = 0.5  # --backend auto: the largest mIoU loss (points) a faster backend may cost

    def __post_init__(self) -> None:
        coerce_fields(self)
        check_non_negative(self, "fps", "max_miou_drop")
        check_choice("format", self.format, PREDICT_FORMATS)
        check_choice("pairs", self.pairs, PAIR_INPUTS)
        check_choice("inference", self.inference, INFERENCE_MODES)
        check_choice("backend", self.backend, BACKENDS)
        check_required(self, "checkpoint", "e.g. --checkpoint runs/train/best_model.pth")
        check_required(self, "img", "an image file, a folder of images, or a video")
        if tuple(self.image_size) != (0, 0):
            check_image_size(self.image_size)


@dataclass(frozen=True)
class SynthConfig:
    """`segkit synth`, and the stand-in training uses when no data is found: synthetic street scenes."""

    out: str = "data/synthetic"  # output root (gets leftImg8bit/ and gtFine/)
    num_train: int = 60  # training images
    num_val: int = 20  # validation images
    image_size: tuple[int, int] = (256, 512)  # height width of every image
    seed: int = 0  # same seed, same images
    overwrite: bool = False  # regenerate a synthetic set that exists with other parameters

    def __post_init__(self) -> None:
        coerce_fields(self)
        check_non_negative(self, "num_train", "num_val")
        check_image_size(self.image_size)


@dataclass(frozen=True)
class PrepareConfig(DataConfig):
    """`segkit prepare`: decode, map and resize a data set once into memory-mappable arrays."""

    image_size: tuple[int, int] = (256, 512)  # training input height width (the size `segkit train --image-size` gives)
    splits: tuple[str, ...] = ("train", "val")  # splits to cache (KITTI: training)
    out: str = ""  # cache folder, "" = <data root>/segkit_cache/<H>x<W> (or runs/cache/... when that is read-only)
    workers: int = -1  # decoding threads, -1 = one per CPU (at most 8)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_image_size(self.image_size)
        if not self.splits:
            raise ConfigError("splits is empty: name at least one split to cache, e.g. --splits train val")
        for split in self.splits:
            check_split("splits", split)
        if self.workers < -1:
            raise ConfigError(f"workers must be -1 (auto) or >= 1, got {self.workers}")


@dataclass(frozen=True)
class ExploreConfig(DataConfig):
    """Notebook 01: what is in the data."""

    num_samples: int = 6  # images in the sample grid
    max_images: int = 0  # images per split read for statistics and checks, 0 = all
    class_weights: str = "median"  # weighting shown next to the class frequencies

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(self, "num_samples")
        check_non_negative(self, "max_images")
        check_choice("class_weights", self.class_weights, CLASS_WEIGHTS)


@dataclass(frozen=True)
class VisualizeConfig(DataConfig):
    """Notebook 04: figures of a training run."""

    run_dir: str = "runs/train"  # training run to visualise (its best_model.pth) when checkpoint is ""
    checkpoint: str = ""  # checkpoint file or a released model (a Hugging Face repo id such as
    # smp-hub/segformer-b0-640x1280-city-160k, or a save_pretrained folder), "" = <run_dir>/best_model.pth
    split: str = "val"  # split to draw samples from
    num_samples: int = 4  # triptychs (input / ground truth / prediction)
    inference: str = "whole"  # whole, slide, flip or ms

    def __post_init__(self) -> None:
        super().__post_init__()
        check_split("split", self.split)
        check_positive(self, "num_samples")
        check_choice("inference", self.inference, INFERENCE_MODES)


@dataclass(frozen=True)
class CompareConfig:
    """Notebook 05 and `segkit runs`: training runs side by side."""

    runs_dir: str = field(default="runs", metadata=POSITIONAL)  # folder searched for run directories (at any depth), or
    # one run directory

    def __post_init__(self) -> None:
        coerce_fields(self)


@dataclass(frozen=True)
class ExportConfig:
    """`segkit export`: a checkpoint to ONNX (for onnxruntime, or `segkit predict --backend onnx`)."""

    checkpoint: str = ""  # segkit checkpoint, e.g. runs/train/best_model.pth, or a released model (a Hugging Face repo
    # id such as smp-hub/segformer-b0-640x1280-city-160k, or a save_pretrained folder)
    output: str = ""  # ONNX file to write, "" = the checkpoint path with .onnx
    opset: int = 17  # ONNX opset version
    static: bool = False  # fix the input to (1, 3, *image_size) instead of dynamic batch, height, width
    format: str = "onnx"  # onnx (onnxruntime) or openvino (OpenVINO IR: model.xml + model.bin in a folder)
    int8: bool = False  # post-training int8 quantisation (onnx: onnxruntime static QDQ; openvino: NNCF), calibrated on
    # calibration_images training images
    calibration_images: int = 32  # int8: training images that calibrate the quantisation
    data_root: str = ""  # int8: the data set whose training images calibrate it, "" = the data the checkpoint was
    # trained on

    def __post_init__(self) -> None:
        coerce_fields(self)
        check_required(self, "checkpoint", "e.g. --checkpoint runs/train/best_model.pth")
        check_positive(self, "opset", "calibration_images")
        check_choice("format", self.format, EXPORT_FORMATS)
        if self.format == "openvino" and self.static:
            raise ConfigError("--static is for ONNX; an OpenVINO model is compiled per input size when it runs")


@dataclass(frozen=True)
class BenchmarkConfig:
    """`segkit benchmark`: latency, frames/s, peak memory and mIoU cost of each inference backend."""

    checkpoint: str = ""  # checkpoint file or a released model (a Hugging Face repo id, or a save_pretrained folder)
    preset: str = ""  # instead of a checkpoint: a preset's architecture with random weights (speed alone)
    image_size: tuple[int, int] = (0, 0)  # height width of the frames timed, (0, 0) = the checkpoint's (preset's)
    # training size
    batch_size: int = 1  # images per forward pass when timing the model alone (end to end is one image at a time)
    device: str = "cpu"  # cpu or cuda
    threads: int = 0  # CPU threads of every backend, 0 = every core this process may use
    backends: tuple[str, ...] = ()  # backends to time, () = every one installed for the device
    data_root: str = ""  # score each backend on this data set's validation split against eager (mIoU and change);
    # int8 calibrates on its training split
    max_images: int = 0  # score only the first N validation images, 0 = all
    calibration_images: int = 32  # int8: training images that calibrate the quantisation
    warmup: int = 5  # untimed runs first (compilation, caches, thread pools)
    iterations: int = 30  # timed runs of each measurement
    output: str = ""  # speed.json to write, "" = beside the checkpoint (a preset: runs/benchmark/<preset>/speed.json)

    def __post_init__(self) -> None:
        coerce_fields(self)
        if bool(self.checkpoint) == bool(self.preset):
            raise ConfigError(
                "give one of --checkpoint (a trained model) or --preset (its architecture with random weights, for "
                f"speed alone), not {'both' if self.checkpoint else 'neither'}; e.g. --preset cpu-quick"
            )
        check_choice("device", self.device, DEVICES)
        for name in self.backends:
            check_choice("backends", name, BACKEND_NAMES)
        check_positive(self, "batch_size", "iterations", "calibration_images")
        check_non_negative(self, "threads", "warmup", "max_images")
        if tuple(self.image_size) != (0, 0):
            check_image_size(self.image_size)


@dataclass(frozen=True)
class DemoConfig:
    """`segkit demo` (what `make demo` runs): synthetic data -> notebooks 01..05 headless -> a trained run."""

    out: str = "runs/demo"  # output folder: executed notebooks, the run directory, figures
    minutes: float = 3.0  # training time budget in minutes (the learning rate decays to 0 over it)
    readme_figures: str = ""  # folder for one small PNG per notebook, "" = <out>/readme-figures

    def __post_init__(self) -> None:
        coerce_fields(self)
        check_positive(self, "minutes")


@dataclass(frozen=True)
class DashboardConfig:
    """`segkit dashboard`: TensorBoard on 127.0.0.1 until Ctrl-C, optionally with a public ngrok link."""

    logdir: str = "runs"  # a run's tb/ folder, or a folder of runs
    port: int = 6006  # preferred local port, 0 = any free one
    public: bool = False  # open an ngrok link (token from $NGROK_AUTHTOKEN or a Kaggle Secret; needs pyngrok)
    auth: bool = True  # basic auth on the public link (credentials from $SEGKIT_DASHBOARD_AUTH, else generated)
    wait: float = 60.0  # seconds to wait for TensorBoard to answer

    def __post_init__(self) -> None:
        coerce_fields(self)
        check_non_negative(self, "port")
        check_positive(self, "wait")


@dataclass(frozen=True)
class PreflightConfig:
    """`segkit kaggle preflight`: what this machine offers for training, with problems and fixes."""

    json: bool = False  # print the report as JSON
    preset: str = ""  # check the pretrained encoder weights of this preset (segkit presets lists them)
    encoder: str = ""  # check this encoder's pretrained weights (overrides the preset's)
    encoder_weights: str = ""  # imagenet (TrainConfig's default), another variant, or a weights file (overrides the
    # preset's)

    def __post_init__(self) -> None:
        coerce_fields(self)


@dataclass(frozen=True)
class BundleConfig:
    """`segkit kaggle bundle`: a kernel push folder and the wheel dataset folder a kernel installs from."""

    out: str = "runs/kaggle-bundle"  # output folder: kernel/ and segkit-wheel/
    params: str = ""  # notebook parameters, a .json or .yaml file (names of 02_train's parameters cell)
    title: str = "segkit cityscapes train"  # kernel title, 5-50 characters; its slug is the kernel id's
    datasets: tuple[str, ...] = ()  # Kaggle datasets to attach, OWNER/SLUG (Cityscapes, encoder weights)
    resume_from: str = ""  # chain: attach this kernel's output (OWNER/KERNEL) and resume its run
    username: str = ""  # Kaggle username, "" = $KAGGLE_USERNAME, else a legacy ~/.kaggle/kaggle.json (an API token does
    # not name its user)
    gpu: bool = True  # request a GPU (kernel-metadata.json enable_gpu)
    internet: bool = False  # internet in the kernel (not needed: segkit installs offline)
    machine_shape: str = "NvidiaTeslaT4"  # Kaggle machine shape (NvidiaTeslaT4 = GPU T4 x2)
    notebook: str = ""  # notebook to bundle, "" = notebooks/02_train.ipynb
    wheels: str = ""  # folder holding the segmentation_models_pytorch wheel, "" = pip download it (needs internet)

    def __post_init__(self) -> None:
        coerce_fields(self)


# ----------------------------------------------------------------------------- the data fields' check


def check_data_fields(cfg: DataConfig) -> None:
    """The DataConfig fields of a config: choices, and glob patterns segkit can read.

    Raises:
        ConfigError: what is wrong and a pattern that works, e.g. images/{split}/**/*.jpg.
    """
    check_choice("layout", cfg.layout, LAYOUTS)
    check_choice("label_format", cfg.label_format, LABEL_FORMAT_CHOICES)
    _check_pair_fields(cfg)
    globs = {"image_glob": cfg.image_glob, "label_glob": cfg.label_glob}
    if not any(globs.values()):
        if cfg.layout == "glob":
            raise ConfigError(
                "layout glob needs image_glob and label_glob, e.g. --image-glob 'images/{split}/*.jpg' "
                "--label-glob 'labels/{split}/*_mask.png'"
            )
        return
    missing = [flag_name(k) for k, v in globs.items() if not v]
    if missing:
        raise ConfigError(
            f"image_glob and label_glob go together: add {missing[0]}, e.g. --image-glob "
            "'images/{split}/*.jpg' --label-glob 'labels/{split}/*_mask.png'"
        )
    if cfg.layout not in ("auto", "glob"):
        raise ConfigError(
            f"layout {cfg.layout!r} and glob patterns exclude each other: drop --layout (or "
            "--image-glob and --label-glob)"
        )
    if not cfg.data_root:
        raise ConfigError("image_glob and label_glob are read below data_root: give --data-root too")
    for name, pattern in globs.items():
        check_glob(name, pattern)


def _check_pair_fields(cfg: DataConfig) -> None:
    """Image pairs: a sensible tolerance; one file is photo and mask, so one pattern and no id format."""
    if not 0 < float(cfg.color_tolerance) <= 255:
        raise ConfigError(
            f"color_tolerance must be > 0 and <= 255 (levels of colour distance), got {cfg.color_tolerance!r}; "
            "the default 20 suits JPEG pairs, a larger value decides more edge pixels and more of them wrongly"
        )
    if cfg.layout == "image-pairs" and cfg.label_format not in ("auto", "pairColor"):
        raise ConfigError(
            f"layout image-pairs reads colour masks from the pair files, not {cfg.label_format} files: "
            "drop --label-format"
        )
    if cfg.label_format == "pairColor" and not cfg.image_glob and cfg.layout != "image-pairs":
        raise ConfigError(
            "label_format pairColor (image pairs) goes with --layout image-pairs, or with --image-glob and "
            "--label-glob naming the pair files (PNG pairs, other folders)"
        )
    if cfg.label_format == "pairColor" and cfg.image_glob != cfg.label_glob:
        pattern = cfg.image_glob or "pairs/{split}/*.png"
        raise ConfigError(
            "label_format pairColor reads photo and colour mask from one file (left and right half): "
            f"give image_glob and label_glob the same pattern, e.g. --image-glob '{pattern}' --label-glob '{pattern}'"
        )
