"""Read Cityscapes images and label files (validated) and serve them as a torch Dataset."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, get_worker_info

from segkit.data.colormask import decode_colors
from segkit.data.discover import Sample
from segkit.data.images import orientation, photo_size, read_photo
from segkit.data.layouts import COLOR_FORMAT, DEFAULT_COLOR_TOLERANCE, LABEL_FORMATS, PAIR_FORMAT, VALUES_FORMAT
from segkit.data.pairs import is_pair_sample, read_pair, tolerance_of
from segkit.errors import ConfigError, DataError
from segkit.labels import CITYSCAPES, IGNORE_INDEX, LABEL_TO_TRAIN, MAX_LABEL_ID, NUM_CLASSES, LabelSpace

# OpenCV's own thread pool multiplies with DataLoader workers (N workers x all cores) and can
# deadlock after fork; parallelism comes from the workers instead.
MAX_UNDECIDED_SHARE = 0.02  # a lossy colour mask may have this share of pixels matching no colour (ignored), no more

cv2.setNumThreads(0)
cv2.ocl.setUseOpenCL(False)


def read_image(path: Path) -> np.ndarray:
    """Read an image file as RGB, as it is seen: `segkit.data.images.read_photo`, the one photo reader.

    Args:
        path: A PNG/JPEG file.

    Returns:
        (H, W, 3) uint8 RGB (EXIF orientation applied; grey, palette, 16-bit and CMYK converted).
        A missing, corrupt or truncated file raises a DataError naming it.
    """
    return read_photo(path)


def read_label(
    path: Path, label_format: str, color_tolerance: float = DEFAULT_COLOR_TOLERANCE, space: LabelSpace | None = None
) -> np.ndarray:
    """Read a label file, validate it and map it to class indices (Cityscapes: trainIds).

    The one reader of ground truth: training, statistics, the cache and scoring all call it,
    so a bad label file gets the same message everywhere.

    Args:
        path: A label file, e.g. `*_gtFine_labelIds.png`, `*_gtFine_labelTrainIds.png`, KITTI's
            `semantic/*.png`, or an image pair (its colour half decoded: `segkit.data.pairs`).
        label_format: "labelIds", "labelTrainIds" or "pairColor" (`Sample.label_format`, or
            `layouts.label_format_of(path)` for a bare path).
        color_tolerance: image pairs only: the palette decoder's tolerance (`pairs.decode_mask`).
        space: the run's label space (None = cityscapes). Outside Cityscapes, "labelIds" means the
            space's own file values (8- or 16-bit; a palette PNG's values are its palette indices),
            "labelTrainIds" class indices, and an RGB file a colour mask in the space's colours.

    Returns:
        (H, W) uint8 class indices 0..N-1, 255 = ignore.
    """
    if label_format == PAIR_FORMAT:
        return read_pair(path, color_tolerance)[1].train_ids
    if label_format not in (*LABEL_FORMATS, VALUES_FORMAT, COLOR_FORMAT):
        raise ConfigError(
            f"label_format must be one of {(*LABEL_FORMATS, PAIR_FORMAT, VALUES_FORMAT, COLOR_FORMAT)}, "
            f"got {label_format!r}"
        )
    if label_format in (VALUES_FORMAT, COLOR_FORMAT) or (space is not None and space != CITYSCAPES):
        return _read_in_space(Path(path), label_format, space or CITYSCAPES, color_tolerance)
    label = _as_single_channel_uint8(read_label_values(path), path)
    if label_format == "labelIds":
        _check_label_ids(label, path)
        return LABEL_TO_TRAIN[label]
    _check_train_ids(label, path)
    return label


def read_label_values(path: Path) -> np.ndarray:
    """A label file's values as stored, before any mapping.

    A palette PNG (Pascal VOC, Mapillary) holds class values as palette indices: they are read as
    such, never as the colours the palette draws them in (OpenCV would expand them to colours).

    Args:
        path: A label file (PNG: grey 8 or 16 bit, palette, or colour).

    Returns:
        (H, W) values (uint8, or uint16 for 16-bit files); (H, W, 3) BGR for a colour file.
        A missing, corrupt or truncated file raises a DataError naming it.
    """
    if _is_palette_png(path):
        try:
            with Image.open(path) as image:
                return np.asarray(image)  # mode P: the indices
        except (OSError, SyntaxError) as err:  # Pillow's errors for a bad or truncated file
            raise DataError(_unreadable(path, "label")) from err
    label = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if label is None:
        raise DataError(_unreadable(path, "label"))
    return label


def _is_palette_png(path: Path) -> bool:
    """Whether `path` is a PNG of colour type 3 (palette), from its IHDR chunk."""
    try:
        with open(path, "rb") as file:
            head = file.read(26)
    except OSError:
        return False  # missing or unreadable: cv2 fails next and names it
    return head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) == 26 and head[25] == 3


def _read_in_space(path: Path, label_format: str, space: LabelSpace, color_tolerance: float) -> np.ndarray:
    """A label file of any space: values (a palette PNG's indices), class indices or mask colours."""
    label = read_label_values(path)
    if label.ndim == 3:  # colour mask (OpenCV: BGR or BGRA)
        return colors_in_space(np.ascontiguousarray(label[..., 2::-1]), space, path, color_tolerance)
    if label_format == "labelTrainIds":
        return space.check_index(label, where=str(path)).astype(np.uint8)
    return space.to_index(label, where=str(path))


def colors_in_space(rgb: np.ndarray, space: LabelSpace, path: Path, tolerance: float) -> np.ndarray:
    """A colour mask's class indices: its exact colours, or, for a lossy mask, each pixel's colour by context.

    A lossless mask holds only its space's colours; one that holds colours the space lacks is refused,
    naming them (`LabelSpace.colors_to_index`). A lossy mask (a JPEG file, or more distinct colours than
    the space has: resized or re-encoded) is decoded by context (`colormask.decode_colors`, the image
    pairs' decoder, with the space's palette); its pixels farther than `tolerance` from every
    explanation are ignored (255) when they are at most MAX_UNDECIDED_SHARE of the mask, and refused
    over it, counted, with the colours found there.

    Args:
        rgb: (H, W, 3) uint8 RGB.
        space: the run's label space.
        path: the file, for messages.
        tolerance: levels (`--color-tolerance`).

    Returns:
        (H, W) uint8 class indices 0..N-1, 255 = ignore.
    """
    if not _is_jpeg(path):  # a JPEG is never exact: straight to the decoder
        try:
            return space.colors_to_index(rgb, where=str(path))
        except DataError:
            if not _more_colors_than(rgb, space):
                raise
    palette = np.array([*space.palette, *space.ignore_colors, space.ignore_color], np.uint8)
    classes = np.array([*range(space.num_classes), *[IGNORE_INDEX] * (len(palette) - space.num_classes)], np.uint8)
    decoded = decode_colors(rgb, palette, tolerance)
    undecided = decoded < 0
    share = float(undecided.mean())
    if share > MAX_UNDECIDED_SHARE:
        colors, counts = np.unique(rgb[undecided].reshape(-1, 3), axis=0, return_counts=True)
        top = np.argsort(-counts)[:5]
        shown = ", ".join(f"{tuple(int(v) for v in colors[i])} ({int(counts[i]):,} px)" for i in top)
        raise DataError(
            f"colour mask {path} is lossy (JPEG or resized) and {int(undecided.sum()):,} of its {undecided.size:,} "
            f"pixels ({100 * share:.1f}%) are farther than {tolerance:g} levels from every colour of the "
            f"{space.describe()} space and every blend of their neighbours' colours (most common: {shown}); "
            f"segkit ignores at most {100 * MAX_UNDECIDED_SHARE:g}% of a lossy mask. Fix: pass --classes FILE "
            "with the colours these masks use, raise --color-tolerance, or use lossless PNG masks."
        )
    return np.where(undecided, IGNORE_INDEX, classes[np.maximum(decoded, 0)]).astype(np.uint8)


def _is_jpeg(path: Path) -> bool:
    return Path(path).suffix.lower() in (".jpg", ".jpeg")


def _more_colors_than(rgb: np.ndarray, space: LabelSpace) -> bool:
    """Whether a mask holds more distinct colours than its space draws: resized or re-encoded (lossy)."""
    flat = rgb.reshape(-1, 3).astype(np.int32)
    distinct = len(np.unique((flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2]))
    return distinct > space.num_classes + len(space.ignore_colors) + 1


def _unreadable(path: Path, kind: str) -> str:
    if not Path(path).is_file():
        return f"{kind} file not found: {path}. Fix: re-run discovery, the data set changed on disk."
    return (
        f"cannot decode {kind} file {path} ({Path(path).stat().st_size} bytes): it is corrupt or "
        "truncated. Fix: re-extract or re-download it."
    )


def _as_single_channel_uint8(label: np.ndarray, path: Path) -> np.ndarray:
    """Reject colour masks; accept 16-bit label files whose values fit in uint8."""
    if label.ndim == 3 and _is_cityscapes(path):
        raise DataError(
            f"label file {path} has {label.shape[2]} channels: it looks like a colour mask "
            "(*_gtFine_color.png); segkit needs *_gtFine_labelIds.png (one channel, values 0..33). "
            "Fix: use the labelIds files from gtFine_trainvaltest.zip."
        )
    if label.ndim == 3:
        raise DataError(
            f"label file {path} has {label.shape[2]} channels: it looks like a colour mask or a photo; segkit "
            "needs single-channel label ids (labelIds 0..33, or trainIds 0..18 and 255). Fix: point the labels "
            "at the id files (KITTI: semantic/, not semantic_rgb/; ACDC: *_gt_labelIds.png, not "
            "*_gt_labelColor.png; --label-glob: the id masks, not the images)."
        )
    if label.dtype != np.uint8:
        if label.max() > 255:
            raise DataError(
                f"label file {path} is {label.dtype} with values up to {label.max()}: expected "
                "uint8 labelIds (0..33). Is this an *_instanceIds.png? "
                "Fix: use *_gtFine_labelIds.png."
            )
        label = label.astype(np.uint8)
    return label


def _is_cityscapes(path: Path) -> bool:
    return "_gtFine_" in Path(path).name


def _read_as(path: Path, label_format: str) -> str:
    """How to have `path` read as `label_format`: its name says the format, else the flag does."""
    name, other = Path(path).name, "labelIds" if label_format == "labelTrainIds" else "labelTrainIds"
    if _is_cityscapes(path):
        return f"rename it *_gtFine_{label_format}.png"
    if other in name:
        return f"rename it {name.replace(other, label_format)}"
    return f"pass --label-format {label_format}"


def _check_label_ids(label: np.ndarray, path: Path) -> None:
    if int(label.max()) <= MAX_LABEL_ID:
        return
    bad = np.flatnonzero(np.bincount(label.ravel(), minlength=256)[MAX_LABEL_ID + 1 :]) + MAX_LABEL_ID + 1
    shown = ", ".join(str(v) for v in sorted(bad, reverse=True)[:8])
    if set(bad.tolist()) == {IGNORE_INDEX} and int(np.max(label[label != IGNORE_INDEX], initial=0)) < NUM_CLASSES:
        fix = f"it looks like a trainId file (0..18 and 255); {_read_as(path, 'labelTrainIds')} or regenerate labelIds."
    else:
        fix = (
            "it is neither labelIds nor trainIds; regenerate the label files with cityscapesScripts "
            "(json2labelImg) or check which files were copied into gtFine/."
        )
    raise DataError(
        f"label file {path} holds values labelIds never take ({shown}; labelIds are 0..{MAX_LABEL_ID}): {fix}"
    )


def _check_train_ids(label: np.ndarray, path: Path) -> None:
    counts = np.bincount(label.ravel(), minlength=256)
    bad = np.flatnonzero(counts[NUM_CLASSES:IGNORE_INDEX]) + NUM_CLASSES
    if bad.size:
        shown = ", ".join(str(v) for v in bad[:8])
        raise DataError(
            f"trainId file {path} holds values {shown}: expected 0..{NUM_CLASSES - 1} and "
            f"{IGNORE_INDEX} (ignore). It may be a labelIds file; fix: {_read_as(path, 'labelIds')}, or "
            "regenerate it with csCreateTrainIdLabelImgs."
        )


def sample_image(sample: Sample) -> np.ndarray:
    """A sample's photo: its image file, or the left half of an image pair. (H, W, 3) uint8 RGB."""
    if is_pair_sample(sample):
        return read_pair(sample.image, tolerance_of(sample))[0]
    return read_image(sample.image)


def sample_label(sample: Sample, space: LabelSpace | None = None) -> np.ndarray:
    """A sample's class indices (H, W) uint8: `read_label` of its label file, with its data set's tolerance."""
    return read_label(sample.label, sample.label_format, tolerance_of(sample), space)


def read_sample(sample: Sample, space: LabelSpace | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(photo (H, W, 3), class indices (H, W)) of a sample, checked to be the same size; a pair is decoded once."""
    if is_pair_sample(sample) and sample.image == sample.label:
        photo, decoded = read_pair(sample.image, tolerance_of(sample))
        return photo, decoded.train_ids
    image, label = sample_image(sample), sample_label(sample, space)
    _check_same_size(image, label, sample)
    return image, label


def sample_size(sample: Sample) -> tuple[int, int]:
    """(H, W) of a sample's photo from its file's header: as seen, a pair's half."""
    h, w = photo_size(sample.image)
    return (h, w // 2) if is_pair_sample(sample) else (h, w)


def _check_same_size(image: np.ndarray, label: np.ndarray, sample: Sample) -> None:
    if image.shape[:2] != label.shape[:2]:
        turned = orientation(sample.image) in (5, 6, 7, 8) and image.shape[1::-1] == label.shape[:2]
        why = (
            f"{sample.image} carries an EXIF orientation tag (the camera stored it turned by 90 degrees and "
            "viewers rotate it back); segkit reads photos as they are seen, but the label is drawn on the "
            "stored pixels. Fix: draw labels on the image as it is seen (labelling tools do), or save the "
            "photo upright without the tag (e.g. PIL: ImageOps.exif_transpose(im).save(...))."
            if turned
            else "Fix: resize both with the same code (labels with nearest neighbour), or re-extract the originals."
        )
        raise DataError(
            f"image and label sizes differ: {sample.image} is {image.shape[0]}x{image.shape[1]} "
            f"(HxW, as seen) but {sample.label} is {label.shape[0]}x{label.shape[1]}. {why}"
        )


class CityscapesDataset(Dataset):
    """Image/mask pairs as tensors.

    Items are `{"image": float32 (3, h, w) normalised, "mask": int64 (h, w) trainIds,
    "name": stem}`.

    Args:
        samples: From `list_samples` (each must have an image).
        transform: An Albumentations pipeline ending in ToTensorV2; default `eval_transform(None)`.
        label_resolution: Apply `transform` to the image only and return the mask at the
            label file's own size (official evaluation: logits are upsampled to the mask).
        space: the label space the label files are read in (None = cityscapes).
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        transform: Callable[..., dict[str, Any]] | None = None,
        label_resolution: bool = False,
        space: LabelSpace | None = None,
    ) -> None:
        missing = [s.label for s in samples if s.image is None]
        if missing:
            raise DataError(
                f"{len(missing)} samples have no image (e.g. {missing[0]}): list them with "
                "list_samples(..., need_images=True) to train or evaluate a model."
            )
        if transform is None:
            from segkit.data.transforms import eval_transform  # albumentations is slow to import

            transform = eval_transform(None)
        self.samples = list(samples)
        self.transform = transform
        self.label_resolution = label_resolution
        self.space = space
        self._seeded_for: int | None = None

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, item: int | tuple[int, int]) -> dict[str, Any]:
        """`item` is an index, or (index, seed) from segkit's EpochSampler: the augmentation then
        depends only on that seed, so resumed runs and any worker count see the same crops."""
        i, seed = item if isinstance(item, tuple) else (item, None)
        sample = self.samples[i]
        image, label = read_sample(sample, self.space)  # (H, W, 3), (H, W)
        self._seeded_for = seed_transform(self.transform, seed, self._seeded_for)
        if self.label_resolution:
            out = self.transform(image=image)
            mask = torch.from_numpy(label.astype(np.int64))
        else:
            out = self.transform(image=image, mask=label)
            mask = torch.as_tensor(out["mask"]).long()
        return {"image": out["image"], "mask": mask, "name": sample.stem}


def seed_transform(transform: Any, seed: int | None, seeded_for: int | None) -> int | None:
    """Seed an Albumentations pipeline for the next item; both segkit datasets call this.

    With a per-item `seed` (from EpochSampler) the augmentation depends only on it. Without one,
    each DataLoader worker and epoch gets its own stream: Albumentations 2 seeds a pipeline once,
    so forked workers would otherwise replay the same random parameters every epoch;
    `worker_info.seed` differs per worker and epoch and follows `torch.manual_seed`.

    Returns:
        The worker seed the pipeline now follows (pass it back as `seeded_for` next time).
    """
    if not hasattr(transform, "set_random_seed"):
        return seeded_for
    if seed is not None:
        transform.set_random_seed(seed)
        return seeded_for
    info = get_worker_info()
    if info is None or info.seed == seeded_for:
        return seeded_for
    transform.set_random_seed(info.seed % 2**32)
    return info.seed


def check_samples(
    samples: Sequence[Sample], limit: int | None = None, space: LabelSpace | None = None
) -> dict[str, Any]:
    """Read every pair (or the first `limit`) and report; the notebooks' "data check".

    Args:
        samples: From `list_samples`.
        limit: Read only this many pairs (None = all).
        space: the label space to read them in (None = cityscapes).

    Returns:
        {"pairs": n, "sizes": Counter of (H, W), "label_values": sorted trainIds present,
        "label_formats": Counter, "cities": Counter, "ignored_fraction": float}.
        The first problem raises a DataError naming the file.
    """
    chosen = list(samples)[:limit] if limit is not None else list(samples)
    if not chosen:
        raise DataError("no samples to check: expected at least one (image, label) pair from list_samples.")
    sizes: Counter[tuple[int, int]] = Counter()
    counts = np.zeros(256, dtype=np.int64)
    for sample in chosen:
        label = read_sample(sample, space)[1] if sample.image is not None else sample_label(sample, space)
        sizes[label.shape[:2]] += 1
        counts += np.bincount(label.ravel(), minlength=256)
    return {
        "pairs": len(chosen),
        "sizes": sizes,
        "label_values": [int(v) for v in np.flatnonzero(counts)],
        "label_formats": Counter(s.label_format for s in chosen),
        "cities": Counter(s.city for s in chosen),
        "ignored_fraction": float(counts[IGNORE_INDEX] / counts.sum()),
    }
