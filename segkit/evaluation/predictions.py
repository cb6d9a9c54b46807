"""Score a folder of prediction PNGs against a split's label files (official protocol).

Predictions are matched to ground truth by the frame's stem (`Sample.stem`: the image's name
without its layout's ending, e.g. `aachen_000000_000019`, KITTI's `000000_10`): a prediction for
a frame is any PNG below the prediction folder named `<stem>.png` or `<stem>_<anything>.png` (as
`segkit predict` writes them: `<stem>_labelIds.png`); when stems nest (`a` and `a_b`), the
longest one wins. One confusion matrix is accumulated over the whole split at the label files' own
resolution. Label files are read by `segkit.data.cityscapes.read_label`, the reader training uses,
so a bad label file gets the same message here as there.
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
from segkit.data.discover import Sample
from segkit.data.layouts import LABEL_ENDINGS, PAIR_FORMAT, label_format_of
from segkit.data.pairs import tolerance_of
from segkit.errors import ConfigError, DataError
from segkit.evaluation.network import protocol_for
from segkit.labels import CITYSCAPES, IGNORE_INDEX, MAX_LABEL_ID, NUM_CLASSES, LabelSpace, bridge, label_to_train
from segkit.metrics import ConfusionMatrix

_CUT = re.compile(r"[_.]")  # where a prediction's name may continue after the stem
_SHOW = 3  # file names quoted in an error message


def match_predictions(pred_dir: Path, gt_labels: Sequence[Sample | Path]) -> list[tuple[Path, Path]]:
    """Pair each ground-truth label file with its one prediction found recursively below `pred_dir`.

    Args:
        pred_dir: folder holding `<stem>*.png` predictions (any depth).
        gt_labels: samples from `list_samples(..., need_images=False)` (any layout), or bare label
            files named as a built-in layout names them (`*_gtFine_labelIds.png`, ...).

    Returns:
        (prediction, ground truth) pairs in the order of `gt_labels`.

    Raises:
        DataError: a frame without or with several predictions, or predictions matching no frame.
    """
    return [(pred, gt) for pred, (gt, *_) in _match(Path(pred_dir), _frames_of_gt(gt_labels))]


def _match(pred_dir: Path, frames: dict[str, tuple[Path, str, float]]) -> list[tuple[Path, tuple[Path, str, float]]]:
    preds = _predictions_by_frame(pred_dir, set(frames))
    missing = [gt.name for stem, (gt, *_) in frames.items() if stem not in preds]
    if missing:
        raise DataError(
            f"{len(missing)} of {len(frames)} ground-truth frames have no prediction in "
            f"{pred_dir}: {_few(missing)}; expected files named <stem>.png or <stem>_*.png (the image's "
            f"name without its ending, as segkit predict writes them), e.g. {next(iter(frames))}_labelIds.png"
        )
    dups = {frame: paths for frame, paths in preds.items() if len(paths) > 1 and frame in frames}
    if dups:
        frame, paths = next(iter(dups.items()))
        raise DataError(
            f"{len(dups)} frames have several predictions, e.g. {frame}: "
            f"{_few([str(p) for p in paths])}; keep one PNG per frame below {pred_dir}"
        )
    stray = sorted(str(p[0]) for frame, p in preds.items() if frame not in frames)
    if stray:
        raise DataError(
            f"{len(stray)} predictions match no ground-truth frame: {_few(stray)}; "
            "wrong split or folder? Point at the predictions of exactly these label files"
        )
    return [(preds[stem][0], gt) for stem, gt in frames.items()]


def _frames_of_gt(gt_labels: Sequence[Sample | Path]) -> dict[str, tuple[Path, str, float]]:
    """{stem: (label file, label format, colour tolerance of image pairs)}, in the order given."""
    if not gt_labels:
        raise DataError(
            "no ground-truth label files given; expected the label files of a split "
            "(list_samples(..., need_images=False))"
        )
    frames: dict[str, tuple[Path, str, float]] = {}
    for gt in gt_labels:
        stem, path, fmt = (gt.stem, gt.label, gt.label_format) if isinstance(gt, Sample) else _named(Path(gt))
        if stem in frames:
            raise DataError(f"frame {stem} is given twice: {frames[stem][0]} and {path}; pass one label file per frame")
        frames[stem] = (path, fmt, tolerance_of(gt))  # a bare path: the default
    return frames


def _named(path: Path) -> tuple[str, Path, str]:
    """(stem, path, format) of a bare label file named as a built-in layout names them."""
    end = next((e for e in LABEL_ENDINGS if path.name.endswith(e)), None)
    if end is None:
        raise DataError(
            f"{path} is not named <stem>_gtFine_labelIds.png (or _labelTrainIds.png, _gtCoarse_*, _gt_*); "
            "pass the samples of list_samples(roots, split, need_images=False), which know each file's stem"
        )
    return path.name[: -len(end)], path, label_format_of(path)


def _predictions_by_frame(pred_dir: Path, stems: set[str]) -> dict[str, list[Path]]:
    if not pred_dir.is_dir():
        raise DataError(f"prediction folder {pred_dir} does not exist")
    preds: dict[str, list[Path]] = {}
    for path in sorted(pred_dir.rglob("*.png")):
        # Files not named after a frame keep their own name as key: reported as strays.
        preds.setdefault(_frame_of(path.name, stems) or path.name, []).append(path)
    return preds


def _frame_of(name: str, stems: set[str]) -> str | None:
    """The longest stem `name` is `<stem>.png` or `<stem>[_.]<anything>.png` of, or None."""
    base = name[: -len(".png")]
    cuts = [len(base), *reversed([m.start() for m in _CUT.finditer(base)])]
    return next((base[:i] for i in cuts if base[:i] in stems), None)


def _few(names: Sequence[str]) -> str:
    more = f" (and {len(names) - _SHOW} more)" if len(names) > _SHOW else ""
    return ", ".join(names[:_SHOW]) + more


def score_predictions(
    pred_dir: Path,
    gt_labels: Sequence[Sample | Path],
    pred_format: str = "labelIds",
    split: str = "val",
    inference: str = "unknown",
    space: LabelSpace | None = None,
    pred_space: LabelSpace | None = None,
    class_map: str = "",
) -> dict:
    """Official-protocol metrics of a prediction folder: one confusion matrix over the whole split.

    Args:
        pred_dir: folder of single-channel prediction PNGs, at the label files' resolution.
        gt_labels: the split's samples (`list_samples(..., need_images=False)`, any layout) or bare
            label files named as a built-in layout names them; read and checked by `read_label`.
        pred_format: "labelIds" (the data set's own values: Cityscapes' submission format), "trainIds"
            (class indices, 255 = void) or "color" (the space's colours, exact).
        split: recorded in the protocol.
        inference: how the predictions were made ("whole", "slide", ...), recorded in the protocol.
        space: the label space of the label files (None = cityscapes).
        pred_space: the label space of the predictions (None = `space`); another one is mapped onto
            the shared space (`class_map`, else the built-in map), named in the protocol.
        class_map: `--class-map` NAME|FILE.

    Returns:
        `ConfusionMatrix.summary` dict; protocol resolution "label".
    """
    if pred_format not in SCORE_FORMATS:
        raise ConfigError(f"pred_format must be one of {SCORE_FORMATS}, got {pred_format!r}")
    pairs = _match(Path(pred_dir), _frames_of_gt(gt_labels))
    space = space or CITYSCAPES
    pred_space = pred_space or space
    spaces = bridge(pred_space, space, class_map)
    cm = ConfusionMatrix(spaces.space.num_classes)
    for pred_path, (gt_path, gt_format, tolerance) in pairs:
        gt = read_label(gt_path, gt_format, tolerance, space)  # (H, W) class indices
        pred = read_prediction(pred_path, pred_format, pred_space)
        gt = spaces.target_map.apply(gt) if spaces.target_map else gt
        pred = spaces.pred_map.apply(pred) if spaces.pred_map else pred
        if pred.shape != gt.shape:
            half = " (an image pair's label is its right half: predict its photo half, segkit predict --pairs on)"
            raise DataError(
                f"prediction {pred_path} is {_hw(pred)} but its label file {gt_path.name} is "
                f"{_hw(gt)}; predict at the label files' resolution (resize logits, not labels)"
                + (half if gt_format == PAIR_FORMAT else "")
            )
        cm.update(torch.from_numpy(pred), torch.from_numpy(gt))
    samples = [gt for gt in gt_labels if isinstance(gt, Sample)]
    roots = next((s.roots for s in samples if s.roots is not None), None)
    mapped = {"class_map": spaces.class_map.describe()} if spaces.class_map else {}
    protocol = protocol_for(
        split=split,
        images=len(pairs),
        roots=roots,
        samples=samples,
        inference=inference,
        pred_format=pred_format,
        label_space=spaces.space.tag,
        **mapped,
    )
    return cm.summary(spaces.space.names, protocol=protocol)


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


def read_prediction(path: Path, pred_format: str = "labelIds", space: LabelSpace | None = None) -> np.ndarray:
    """Read a prediction PNG as class indices; unevaluated values become 255 (void, a false negative).

    Args:
        path: the PNG.
        pred_format: labelIds (the space's own file values), trainIds (class indices) or color.
        space: the label space the predictions are in (None = cityscapes).

    Shape:
        (H, W) uint8.
    """
    space = space or CITYSCAPES
    if pred_format == "color":
        with Image.open(path) as im:
            if im.mode in ("L", "I", "I;16", "P"):
                raise DataError(
                    f"prediction {path} holds one channel of ids ({im.mode}), not colours: use --format labelIds "
                    "or --format trainIds"
                )
            array = np.array(im.convert("RGB"))
        return space.colors_to_index(array, where=f"prediction {path}")
    if space != CITYSCAPES:
        array = np.array(Image.open(path))
        if array.ndim == 3 and space.color_coded:
            return space.colors_to_index(array[..., :3], where=f"prediction {path}")
        if array.ndim == 3:
            raise DataError(f"prediction {path} is a colour image; read it with --format color")
        if pred_format == "trainIds":
            return space.check_index(array, where=f"prediction {path}").astype(np.uint8)
        return space.to_index(array, where=f"prediction {path}")
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
