"""Confusion-matrix metrics: per-class IoU and Dice, mIoU, pixel accuracy, and their protocol.

Semantics follow the official `cityscapesscripts/evaluation/evalPixelLevelSemanticLabeling.py`
(a test checks equality on real PNG files):

- pixels whose ground truth is `ignore_index` are skipped entirely;
- a ground-truth pixel of class k predicted as a value outside [0, num_classes) (a "void"
  prediction, e.g. trainId 255 or an unevaluated labelId such as 0 "unlabeled") IS a false
  negative of k, because the official `fn` is the whole ground-truth row minus the diagonal;
  it is a false positive of no class. We keep these counts in `void_pred`;
- a class absent from both ground truth and prediction has IoU NaN and is left out of the
  mean; a class predicted but absent from ground truth has IoU 0 and is counted;
- the mean is taken over one matrix accumulated over the whole split, not over images.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import torch

from segkit.errors import ConfigError, DataError
from segkit.labels import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES


class ConfusionMatrix:
    """A (num_classes, num_classes) confusion matrix; rows = ground truth, cols = prediction.

    Attributes:
        mat: (C, C) int64 counts of ground-truth class i predicted as class j.
        void_pred: (C,) int64 counts of ground-truth class i predicted outside [0, C)
            (false negatives of i, false positives of nothing, as in the official script).
    """

    def __init__(
        self,
        num_classes: int = NUM_CLASSES,
        ignore_index: int = IGNORE_INDEX,
        device: torch.device | str | None = None,
    ) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.mat = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)
        self.void_pred = torch.zeros(num_classes, dtype=torch.int64, device=device)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add one batch. Inputs may live on any device; they are moved to the matrix's device.

        Args:
            pred: integer class indices; values outside [0, C) count as void predictions.
            target: integer ground truth of the same shape; `ignore_index` pixels are skipped.

        Shape:
            pred, target: any shape, equal, e.g. (B, H, W).
        """
        if pred.shape != target.shape:
            raise ValueError(
                f"pred shape {tuple(pred.shape)} != target shape {tuple(target.shape)}; "
                "pass class indices (logits.argmax(1)), not logits"
            )
        if pred.is_floating_point() or target.is_floating_point():
            raise ValueError(
                f"expected integer class indices, found pred {pred.dtype}, target {target.dtype}; "
                "use logits.argmax(1) for pred"
            )
        c = self.num_classes
        pred = pred.to(self.mat.device).reshape(-1).long()
        target = target.to(self.mat.device).reshape(-1).long()
        keep = target != self.ignore_index
        pred, target = pred[keep], target[keep]
        if ((target < 0) | (target >= c)).any():  # one device sync; min/max only on error
            raise DataError(
                f"target holds values outside [0, {c}) other than ignore_index {self.ignore_index} "
                f"(found {target.min().item()}..{target.max().item()}); map labelIds to trainIds "
                "first (segkit.labels.label_to_train)"
            )
        # Column C collects void predictions so that one bincount fills mat and void_pred.
        col = torch.where((pred >= 0) & (pred < c), pred, c)
        counts = torch.bincount(target * (c + 1) + col, minlength=c * (c + 1)).view(c, c + 1)
        self.mat += counts[:, :c]
        self.void_pred += counts[:, c]

    def merge(self, other: ConfusionMatrix) -> None:
        """Add the counts of another matrix with the same number of classes."""
        if other.num_classes != self.num_classes:
            raise ValueError(f"cannot merge {other.num_classes} classes into {self.num_classes}")
        self.mat += other.mat.to(self.mat.device)
        self.void_pred += other.void_pred.to(self.mat.device)

    def reset(self) -> None:
        """Zero all counts (e.g. at the start of an evaluation)."""
        self.mat.zero_()
        self.void_pred.zero_()

    def all_reduce(self) -> None:
        """Sum counts over all processes under torch.distributed; a no-op in a single process."""
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return
        # One collective for both tensors; counts on the matrix's device (CUDA for NCCL).
        flat = torch.cat([self.mat.reshape(-1), self.void_pred])
        torch.distributed.all_reduce(flat, op=torch.distributed.ReduceOp.SUM)
        c = self.num_classes
        self.mat.copy_(flat[: c * c].view(c, c))
        self.void_pred.copy_(flat[c * c :])

    def _tp_fp_fn(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mat = self.mat.cpu().double()
        tp = mat.diagonal()
        fp = mat.sum(0) - tp
        fn = mat.sum(1) + self.void_pred.cpu().double() - tp
        return tp, fp, fn

    def iou(self) -> torch.Tensor:
        """Per-class IoU TP / (TP + FP + FN); NaN for classes absent from both gt and prediction.

        Shape:
            (C,) float64 on CPU.
        """
        tp, fp, fn = self._tp_fp_fn()
        return tp / (tp + fp + fn)  # 0 / 0 = NaN marks left-out classes

    def dice(self) -> torch.Tensor:
        """Per-class Dice 2TP / (2TP + FP + FN); NaN where IoU is NaN.

        Shape:
            (C,) float64 on CPU.
        """
        tp, fp, fn = self._tp_fp_fn()
        return 2 * tp / (2 * tp + fp + fn)

    def gt_pixels(self) -> torch.Tensor:
        """Pixels of each class in the ground truth. Shape: (C,) int64 on CPU."""
        return self.mat.sum(1).cpu() + self.void_pred.cpu()

    def pixel_accuracy(self) -> float:
        """Correct pixels over pixels with a valid (not ignored) ground truth; NaN if none."""
        total = self.gt_pixels().sum().item()
        return self.mat.diagonal().sum().item() / total if total else math.nan

    def miou(self, classes: Sequence[int] | None = None) -> float:
        """Mean IoU over `classes` (default all), leaving out classes whose IoU is NaN."""
        return _nanmean(self.iou(), classes)

    def mean_dice(self, classes: Sequence[int] | None = None) -> float:
        """Mean Dice over `classes` (default all), leaving out classes whose Dice is NaN."""
        return _nanmean(self.dice(), classes)

    def summary(self, class_names: Sequence[str] = CLASS_NAMES, protocol: dict | None = None) -> dict:
        """JSON-ready metrics record (plain floats, None for left-out classes) with its protocol.

        Args:
            class_names: one name per class, in class-index order.
            protocol: from `make_protocol`; when None every field but the label space is "unknown".

        Returns:
            {"miou", "mean_dice", "pixel_accuracy", "per_class": {name: {"iou", "dice",
            "gt_pixels"}}, "protocol"}.
        """
        if len(class_names) != self.num_classes:
            raise ValueError(f"got {len(class_names)} class names for {self.num_classes} classes")
        if protocol is None:
            space = "cityscapes-19" if tuple(class_names) == CLASS_NAMES else f"{self.num_classes} classes"
            protocol = make_protocol(space, resolution="unknown", inference="unknown", split="unknown")
        iou, dice, gt = self.iou().tolist(), self.dice().tolist(), self.gt_pixels().tolist()
        per_class = {
            name: {"iou": _num(iou[k]), "dice": _num(dice[k]), "gt_pixels": int(gt[k])}
            for k, name in enumerate(class_names)
        }
        return {
            "miou": _num(self.miou()),
            "mean_dice": _num(self.mean_dice()),
            "pixel_accuracy": _num(self.pixel_accuracy()),
            "per_class": per_class,
            "protocol": dict(protocol),
        }


def _nanmean(values: torch.Tensor, classes: Sequence[int] | None) -> float:
    if classes is not None:
        values = values[list(classes)]
    values = values[~values.isnan()]
    return values.mean().item() if values.numel() else math.nan


def _num(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


_RESOLUTION = re.compile(r"label|unknown|train \d+x\d+")


def make_protocol(
    label_space: str = "cityscapes-19",
    resolution: str = "label",
    inference: str = "whole",
    split: str = "val",
    images: int | None = None,
    **extra: object,
) -> dict:
    """The protocol every reported number carries.

    Args:
        label_space: "cityscapes-19" or the name of a class subset.
        resolution: "label" (the label files' own size, the official protocol) or "train HxW".
        inference: "whole", "slide", "flip", "multi-scale", ... or "unknown".
        split: data split evaluated, e.g. "val".
        images: number of images evaluated.
        **extra: further JSON-serialisable fields (e.g. checkpoint, pred_format).

    Returns:
        A plain dict with these fields.
    """
    if not _RESOLUTION.fullmatch(resolution):
        raise ConfigError(f"resolution must be 'label' or 'train HxW' (e.g. 'train 512x1024'), got {resolution!r}")
    return {
        "label_space": label_space,
        "resolution": resolution,
        "inference": inference,
        "split": split,
        "images": images,
        **extra,
    }


def describe_protocol(summary: dict) -> str:
    """The header line of a report.

    E.g. "mIoU 63.2 | 19 classes (cityscapes-19), label resolution, whole-image inference,
    val, 500 images".
    """
    return f"mIoU {_pct(summary['miou'])} | {protocol_text(summary)}"


def protocol_text(summary: dict) -> str:
    """How a summary's numbers were measured, e.g. "19 classes (cityscapes-19), label resolution,
    whole-image inference, val, 500 images" (what goes beside every reported number)."""
    if "protocol" not in summary:
        raise ValueError(
            "summary has no 'protocol'; build it with ConfusionMatrix.summary(protocol=make_protocol(...))"
        )
    p, per_class = summary["protocol"], summary["per_class"]
    left_out = sum(v["iou"] is None for v in per_class.values())
    classes = f"{len(per_class)} classes ({p.get('label_space', 'unknown')}"
    classes += f"; {left_out} absent, left out)" if left_out else ")"
    inference = p.get("inference", "unknown")
    images = p.get("images")
    parts = [
        classes,
        f"{p.get('resolution', 'unknown')} resolution",
        f"{'whole-image' if inference == 'whole' else inference} inference",
        str(p.get("split", "unknown")),
        f"{images if images is not None else '?'} images",
    ]
    if p.get("input"):
        parts.append(f"input {p['input']}")
    if p.get("labels"):  # e.g. labels decoded from image pairs' colour masks: not the official benchmark
        parts.append(p["labels"])
    if p.get("class_map"):  # a model of another label space, its classes mapped onto these
        parts.append(f"classes mapped by {p['class_map']}")
    return ", ".join(parts)


OWN_SIZE = (0, 0)  # a checkpoint's image_size for a model that runs at each image's own size (no Resize)


def input_scaling(image_size: Sequence[int]) -> str:
    """How a model's input was scaled, for its protocol: the images' aspect ratio is kept."""
    if tuple(image_size) == OWN_SIZE:
        return "each image at its own size (the model's preprocessing has no Resize)"
    return f"resized keeping its aspect ratio to cover {int(image_size[0])}x{int(image_size[1])}"


def format_table(summary: dict) -> str:
    """Per-class text table (IoU, Dice in %, ground-truth pixels) under a protocol header line."""
    lines = [describe_protocol(summary), f"{'class':<15}{'IoU':>7}{'Dice':>7}{'gt pixels':>14}"]
    for name, v in summary["per_class"].items():
        lines.append(f"{name:<15}{_pct(v['iou']):>7}{_pct(v['dice']):>7}{v['gt_pixels']:>14,}")
    lines.append(f"{'mean':<15}{_pct(summary['miou']):>7}{_pct(summary['mean_dice']):>7}")
    lines.append(f"pixel accuracy {_pct(summary['pixel_accuracy'])}")
    return "\n".join(lines)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"
