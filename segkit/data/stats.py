"""Class pixel counts of a split (cached) and class weights for the loss."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from segkit.config import CLASS_WEIGHTS
from segkit.data.cityscapes import sample_label
from segkit.data.discover import Sample
from segkit.data.pairs import DECODER, is_pair_sample, tolerance_of
from segkit.errors import ConfigError
from segkit.files import write_json
from segkit.labels import CITYSCAPES, IGNORE_INDEX, NUM_CLASSES, LabelSpace

logger = logging.getLogger("segkit")


def class_pixel_counts(
    samples: Sequence[Sample],
    num_classes: int = NUM_CLASSES,
    cache_path: Path | None = None,
    space: LabelSpace | None = None,
) -> np.ndarray:
    """Count the pixels of each class over the label files (255 is not counted).

    Args:
        samples: From `list_samples` (images are not read).
        num_classes: Number of classes counted (0..num_classes-1); `space`'s when it is given.
        cache_path: A JSON file reused while the file list, sizes and mtimes are unchanged.
        space: the label space to read the files in (None = cityscapes).

    Returns:
        (C,) int64 pixel counts.
    """
    return class_statistics(samples, num_classes, cache_path, space)["pixels"]


def class_statistics(
    samples: Sequence[Sample],
    num_classes: int = NUM_CLASSES,
    cache_path: Path | None = None,
    space: LabelSpace | None = None,
) -> dict[str, np.ndarray]:
    """Pixel counts per class and, per class, the pixels of the images that contain it.

    The second is what median frequency balancing divides by (Eigen & Fergus 2015). `space` is the
    label space the files are read in (None = cityscapes); its class count then wins over `num_classes`.

    Returns:
        {"pixels": (C,) int64, "image_pixels": (C,) int64}
    """
    num_classes = space.num_classes if space is not None else num_classes
    if not 1 <= num_classes < IGNORE_INDEX:
        raise ConfigError(f"num_classes must be in 1..{IGNORE_INDEX - 1}, got {num_classes}")
    key = _cache_key(samples, num_classes, space) if cache_path is not None else ""
    cached = _read_cache(Path(cache_path), key) if cache_path is not None else None
    if cached is not None:
        return cached
    pixels = np.zeros(256, dtype=np.int64)
    image_pixels = np.zeros(256, dtype=np.int64)
    for sample in samples:
        label = sample_label(sample, space)
        counts = np.bincount(label.ravel(), minlength=256)
        pixels += counts
        image_pixels += np.where(counts > 0, label.size, 0)
    result = {"pixels": pixels[:num_classes].copy(), "image_pixels": image_pixels[:num_classes].copy()}
    if cache_path is not None:
        _write_cache(Path(cache_path), key, result)
    return result


def class_weights(
    counts: np.ndarray, method: str = "median", enet_c: float = 1.02, image_pixels: np.ndarray | None = None
) -> np.ndarray:
    """Per-class loss weights from pixel counts.

    With p_c = count_c / total: "none" -> 1; "inverse" -> 1 / p_c; "median" (median frequency
    balancing, Eigen & Fergus 2015) -> median(p) / p_c; "enet" (Paszke et al. 2016) ->
    1 / ln(enet_c + p_c). Classes with 0 pixels get weight 0 (except "none": all 1). The
    weights are then normalised so that their mean over the present classes is 1, which keeps
    the loss scale (and so the learning rate) comparable across methods.

    For "median", pass `image_pixels` (from `class_statistics`) to get Eigen & Fergus' exact
    definition, p_c = count_c / pixels of the images where c is present; without it p_c is the
    global frequency and "median" equals "inverse" after normalisation.

    Args:
        counts: (C,) pixel counts, e.g. from `class_pixel_counts`.
        method: One of `segkit.config.CLASS_WEIGHTS`: "none", "inverse", "median", "enet".
        enet_c: The ENet constant; it bounds the weights to [1/ln(1+c), 1/ln(c)].
        image_pixels: (C,) pixels of the images containing each class (median only).

    Returns:
        (C,) float32 weights.
    """
    if method not in CLASS_WEIGHTS:
        raise ConfigError(f"class weight method must be one of {CLASS_WEIGHTS}, got {method!r}")
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or (counts < 0).any() or counts.sum() <= 0:
        raise ConfigError(f"counts must be a 1-D array of pixel counts with a positive sum, got {counts}")
    if method == "none":
        return np.ones_like(counts, dtype=np.float32)
    present = counts > 0
    freq = counts[present] / counts.sum()
    if method == "inverse":
        raw = 1.0 / freq
    elif method == "median":
        if image_pixels is not None:
            freq = counts[present] / np.asarray(image_pixels, dtype=np.float64)[present]
        raw = np.median(freq) / freq
    else:
        if enet_c <= 1.0:
            raise ConfigError(f"enet_c must be > 1 (ln(c + p) must be positive), got {enet_c}; try 1.02")
        raw = 1.0 / np.log(enet_c + freq)
    weights = np.zeros_like(counts)
    weights[present] = raw / raw.mean()
    return weights.astype(np.float32)


def _cache_key(samples: Sequence[Sample], num_classes: int, space: LabelSpace | None = None) -> str:
    """A digest of the label files' paths, formats, sizes and mtimes (and the space, outside Cityscapes)."""
    digest = hashlib.sha256(f"v2 {num_classes}".encode())
    if space is not None and space != CITYSCAPES:
        digest.update(json.dumps(space.to_dict()["classes"]).encode())
    for sample in samples:
        stat = os.stat(sample.label)
        digest.update(f"\n{sample.label}|{sample.label_format}|{stat.st_size}|{stat.st_mtime_ns}".encode())
        if is_pair_sample(sample):  # a colour mask's counts depend on how it was decoded
            digest.update(f"|{DECODER}|{tolerance_of(sample)}".encode())
    return digest.hexdigest()


def _read_cache(path: Path, key: str) -> np.ndarray | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        # A cache can always be rebuilt: say so and recount rather than fail the run.
        logger.warning("ignoring unreadable class-count cache %s (%s); recounting", path, err)
        return None
    if data.get("key") != key:
        logger.info("class-count cache %s is stale; recounting", path)
        return None
    return {k: np.asarray(data[k], dtype=np.int64) for k in ("pixels", "image_pixels")}


def _write_cache(path: Path, key: str, stats: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {"key": key, **{k: v.tolist() for k, v in stats.items()}})  # atomic: never half a file
