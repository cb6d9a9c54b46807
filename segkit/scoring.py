"""Score a folder of prediction PNGs against Cityscapes label files (official protocol).

Predictions are matched to ground truth as the official script does: a prediction for
`<city>_<seq>_<frame>_gtFine_labelIds.png` is any `<city>_<seq>_<frame>*.png` below the
prediction folder. One confusion matrix is accumulated over the whole split at the label
files' own resolution. Label files are read by `segkit.data.cityscapes.read_label`, the reader
training uses, so a bad label file gets the same message here as there.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from segkit.config import SCORE_FORMATS
from segkit.data.cityscapes import read_label
from segkit.data.discover import LABEL_SUFFIXES, label_format_of
from segkit.errors import ConfigError, DataError
from segkit.labels import IGNORE_INDEX, MAX_LABEL_ID, NUM_CLASSES, label_to_train
from segkit.metrics import ConfusionMatrix, make_protocol

# <frame> followed by one of the label suffixes discovery knows (_gtFine_labelIds.png, ...).
_GT_SUFFIXES = "|".join(map(re.escape, LABEL_SUFFIXES.values()))
_GT_NAME = re.compile(rf"([^_]+_\d+_\d+)(?:{_GT_SUFFIXES})")
_PRED_NAME = re.compile(r"([^_]+_\d+_\d+)(?:[_.].*)?\.png")
# The id formats of config.PREDICT_FORMATS; EvalConfig.format accepts the same (a test checks).
_SHOW = 3  # file names quoted in an error message


def match_predictions(pred_dir: Path, gt_labels: Sequence[Path]) -> list[tuple[Path, Path]]:
    """Pair each ground-truth label file with its one prediction found recursively below `pred_dir`.

    Args:
        pred_dir: folder holding `<city>_<seq>_<frame>*.png` predictions (any depth).
        gt_labels: `*_gtFine_labelIds.png` or `*_gtFine_labelTrainIds.png` files.

    Returns:
        (prediction, ground truth) pairs in the order of `gt_labels`.

    Raises:
        DataError: a frame without or with several predictions, or predictions matching no frame.
    """
    gt_by_frame = _frames_of_gt(gt_labels)
    preds = _predictions_by_frame(Path(pred_dir))
    missing = [gt.name for frame, gt in gt_by_frame.items() if frame not in preds]
    if missing:
        raise DataError(
            f"{len(missing)} of {len(gt_by_frame)} ground-truth frames have no prediction in "
            f"{pred_dir}: {_few(missing)}; expected files named <city>_<seq>_<frame>*.png, "
            f"e.g. {next(iter(gt_by_frame))}_pred.png"
        )
    dups = {frame: paths for frame, paths in preds.items() if len(paths) > 1}
    if dups:
        frame, paths = next(iter(dups.items()))
        raise DataError(
            f"{len(dups)} frames have several predictions, e.g. {frame}: "
            f"{_few([str(p) for p in paths])}; keep one PNG per frame below {pred_dir}"
        )
    stray = sorted(str(p[0]) for frame, p in preds.items() if frame not in gt_by_frame)
    if stray:
        raise DataError(
            f"{len(stray)} predictions match no ground-truth frame: {_few(stray)}; "
            "wrong split or folder? Point at the predictions of exactly these label files"
        )
    return [(preds[frame][0], gt) for frame, gt in gt_by_frame.items()]


def _frames_of_gt(gt_labels: Sequence[Path]) -> dict[str, Path]:
    if not gt_labels:
        raise DataError("no ground-truth label files given; expected *_gtFine_labelIds.png files")
    frames: dict[str, Path] = {}
    for gt in map(Path, gt_labels):
        m = _GT_NAME.fullmatch(gt.name)
        if m is None:
            raise DataError(
                f"{gt} is not named <city>_<seq>_<frame>_gtFine_labelIds.png "
                "(or _labelTrainIds.png)"
            )
        if m.group(1) in frames:
            raise DataError(
                f"frame {m.group(1)} is given twice: {frames[m.group(1)]} and {gt}; "
                "pass one label file per frame"
            )
        frames[m.group(1)] = gt
    return frames


def _predictions_by_frame(pred_dir: Path) -> dict[str, list[Path]]:
    if not pred_dir.is_dir():
        raise DataError(f"prediction folder {pred_dir} does not exist")
    preds: dict[str, list[Path]] = {}
    for path in sorted(pred_dir.rglob("*.png")):
        m = _PRED_NAME.fullmatch(path.name)
        # Files not named after a frame keep their own name as key: reported as strays.
        preds.setdefault(m.group(1) if m else path.name, []).append(path)
    return preds


def _few(names: Sequence[str]) -> str:
    more = f" (and {len(names) - _SHOW} more)" if len(names) > _SHOW else ""
    return ", ".join(names[:_SHOW]) + more


def score_predictions(
    pred_dir: Path,
    gt_labels: Sequence[Path],
    pred_format: str = "labelIds",
    split: str = "val",
    inference: str = "unknown",
) -> dict:
    """Official-protocol metrics of a prediction folder: one confusion matrix over the whole split.

    Args:
        pred_dir: folder of single-channel prediction PNGs, at the label files' resolution.
        gt_labels: ground-truth label files (labelIds or labelTrainIds, told apart by name),
            read and checked by `read_label`.
        pred_format: "labelIds" (the submission format) or "trainIds" (0..18, 255 = void).
        split: recorded in the protocol.
        inference: how the predictions were made ("whole", "slide", ...), recorded in the protocol.

    Returns:
        `ConfusionMatrix.summary` dict; protocol resolution "label".
    """
    if pred_format not in SCORE_FORMATS:
        raise ConfigError(f"pred_format must be one of {SCORE_FORMATS}, got {pred_format!r}")
    pairs = match_predictions(pred_dir, gt_labels)
    cm = ConfusionMatrix()
    for pred_path, gt_path in pairs:
        gt = read_label(gt_path, label_format_of(gt_path))  # (H, W) trainIds
        pred = read_prediction(pred_path, pred_format)
        if pred.shape != gt.shape:
            raise DataError(
                f"prediction {pred_path} is {_hw(pred)} but its label file {gt_path.name} is "
                f"{_hw(gt)}; predict at the label files' resolution (resize logits, not labels)"
            )
        cm.update(torch.from_numpy(pred), torch.from_numpy(gt))
    protocol = make_protocol(
        resolution="label",
        inference=inference,
        split=split,
        images=len(pairs),
        pred_format=pred_format,
    )
    return cm.summary(protocol=protocol)


def _hw(a: np.ndarray) -> str:
    return f"{a.shape[0]}x{a.shape[1]} (HxW)"


def _read_png(path: Path) -> np.ndarray:
    array = np.array(Image.open(path))
    if array.ndim != 2:
        raise DataError(
            f"prediction {path} has shape {array.shape}, a colour image; expected a single-channel "
            "PNG of class ids (segkit predict --format labelIds)"
        )
    return array


def read_prediction(path: Path, pred_format: str = "labelIds") -> np.ndarray:
    """Read a prediction PNG as trainIds; unevaluated labelIds become 255 (void, a false negative).

    Shape:
        (H, W) uint8.
    """
    pred = _read_png(Path(path))
    if pred_format == "trainIds":
        _check_train_ids(pred, path)
        return pred.astype(np.uint8)
    if pred.max() > MAX_LABEL_ID:
        raise DataError(
            f"prediction {path} holds value {pred.max()} but labelIds stop at {MAX_LABEL_ID}; "
            "it looks like a trainIds file (255 = ignore): use --format trainIds"
        )
    return label_to_train(pred)


def _check_train_ids(pred: np.ndarray, path: Path) -> None:
    bad = (pred >= NUM_CLASSES) & (pred != IGNORE_INDEX)
    if bad.any():
        raise DataError(
            f"prediction {path} holds value {pred[bad].max()}, which no trainId takes "
            f"(0..{NUM_CLASSES - 1}, {IGNORE_INDEX}); it looks like a labelIds file: "
            "use --format labelIds"
        )
