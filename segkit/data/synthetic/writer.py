"""Writing the synthetic data set: parameters, reuse rules, `synthetic.json`, PNG files."""

from __future__ import annotations

import json
import re
import shutil
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from segkit import progress
from segkit.checks import check_image_size
from segkit.config import SynthConfig
from segkit.data.synthetic.scene import render_scene
from segkit.errors import ConfigError, DataError
from segkit.files import write_json
from segkit.labels import label_to_color

TRAIN_CITIES: tuple[str, ...] = ("synthtown", "procville", "rendercity")
VAL_CITIES: tuple[str, ...] = ("valburg",)  # like Cityscapes: val cities differ from train cities
GENERATOR_VERSION = 2  # bump when a change to the renderer changes the images
MANIFEST = "synthetic.json"  # marks a directory written by segkit (safe to overwrite)
_FRAME = 19  # Cityscapes annotates the 20th frame of each snippet: *_000019_*
_SPLIT_CODES = {"train": 0, "val": 1}  # part of each image's seed: val never depends on num_train
# Noisy photos compress badly; SUB + RLE is 2-3x faster than the default for a similar size. OpenCV
# older than the newest releases has no IMWRITE_PNG_FILTER (4.10 lacks it: tests/test_min_versions.py):
# its default filter then writes the same pixels, more slowly.
_FILTER = getattr(cv2, "IMWRITE_PNG_FILTER", None)
_PNG_IMAGE = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE] + (
    [_FILTER, cv2.IMWRITE_PNG_FILTER_SUB] if _FILTER is not None else []
)
_PNG_LABEL = [cv2.IMWRITE_PNG_COMPRESSION, 1] + ([_FILTER, cv2.IMWRITE_PNG_FILTER_UP] if _FILTER is not None else [])


def generate_synthetic(
    out: Path,
    num_train: int = SynthConfig.num_train,
    num_val: int = SynthConfig.num_val,
    image_size: tuple[int, int] = SynthConfig.image_size,
    seed: int = SynthConfig.seed,
    cities: Sequence[str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a synthetic data set in the official Cityscapes layout, or reuse the one there.

    Args:
        out: Root directory; gets `leftImg8bit/`, `gtFine/` (labelIds and color PNGs) and
            `synthetic.json` (the parameters).
        num_train: Number of train images.
        num_val: Number of val images.
        image_size: (height, width) in pixels.
        seed: Same seed, same bytes. Image i of a split does not depend on the other counts.
        cities: City names; the last one is the val city, the others are train cities
            (default: `TRAIN_CITIES` + `VAL_CITIES`).
        overwrite: Replace a synthetic set that was written with other parameters. A directory
            that segkit did not write (no `synthetic.json`) is never touched.

    Returns:
        `out`.

    Raises:
        ConfigError: A parameter is invalid.
        DataError: `out` holds something else, or a set made with other parameters and
            `overwrite` is False.
    """
    out = Path(out)
    params = _parameters(num_train, num_val, image_size, seed, cities)
    if _reuse_or_clear(out, params, overwrite):
        return out
    _write_manifest(out, params, complete=False)
    _write_all(out, params)
    _write_manifest(out, params, complete=True)
    return out


# --------------------------------------------------------------------------------------------
# Writing the data set
# --------------------------------------------------------------------------------------------


def _parameters(num_train, num_val, image_size, seed, cities) -> dict:
    """Validated generator parameters, in the JSON form stored in `synthetic.json`."""
    for name, value in (("num_train", num_train), ("num_val", num_val), ("seed", seed)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"{name} must be an integer >= 0; got {value!r}")
    if num_train + num_val == 0:
        raise ConfigError("num_train + num_val is 0; ask for at least one image, e.g. num_train=60")
    size = check_image_size(image_size)
    names = list(cities) if cities is not None else [*TRAIN_CITIES, *VAL_CITIES]
    bad = [c for c in names if not isinstance(c, str) or not re.fullmatch(r"[a-z][a-z0-9]*", c)]
    if len(names) < 2 or len(set(names)) != len(names) or bad:
        raise ConfigError(
            "cities must be >= 2 distinct lowercase names of letters and digits (the last one is "
            f"the val city), e.g. ['synthtown', 'valburg']; got {names!r}"
        )
    return {
        "generator_version": GENERATOR_VERSION,
        "num_train": int(num_train),
        "num_val": int(num_val),
        "image_size": list(size),
        "seed": int(seed),
        "train_cities": names[:-1],
        "val_cities": names[-1:],
    }


def _reuse_or_clear(out: Path, params: dict, overwrite: bool) -> bool:
    """True when `out` already holds exactly this set; otherwise leave it ready to be written."""
    manifest = out / MANIFEST
    if not manifest.is_file():
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise DataError(
                f"{out} exists and is not a synthetic data set written by segkit (no {MANIFEST}); "
                "segkit does not write into it. Pass a new or empty directory as `out`."
            )
        return False
    try:
        found = json.loads(manifest.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(f"{manifest} is unreadable ({err}); delete {out} and generate again") from err
    same = found.get("parameters") == params
    complete = found.get("complete") and _count_images(out) == params["num_train"] + params["num_val"]
    if same and complete:
        return True
    if not same and not overwrite:
        raise DataError(
            f"{out} holds a synthetic set made with other parameters:\n"
            f"  found  {found.get('parameters')}\n  wanted {params}\n"
            "Pass overwrite=True (CLI: --overwrite) to replace it, or choose another `out`."
        )
    for name in ("leftImg8bit", "gtFine"):  # only what segkit wrote; other files in `out` stay
        shutil.rmtree(out / name, ignore_errors=True)
    return False


def _count_images(out: Path) -> int:
    return sum(1 for _ in (out / "leftImg8bit").glob("*/*/*_leftImg8bit.png"))


def _write_manifest(out: Path, params: dict, complete: bool) -> None:
    """Write `synthetic.json` atomically; `complete` turns true only after the last image."""
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / MANIFEST, {"parameters": params, "complete": complete})


def _write_all(out: Path, params: dict) -> None:
    """Render every image in this thread; encode PNGs in two worker threads (cv2 releases the
    GIL), with at most a few images waiting so that memory stays small."""
    items = [(split, index) for split in ("train", "val") for index in range(params[f"num_{split}"])]
    with ThreadPoolExecutor(max_workers=2) as pool:
        pending: deque[Future] = deque()
        for split, index in progress.bar(items, desc="synth", unit="img"):
            cities = params[f"{split}_cities"]
            rng = np.random.default_rng([params["seed"], _SPLIT_CODES[split], index])
            image, label = render_scene(rng, *params["image_size"])
            city = cities[index % len(cities)]
            stem = f"{city}_{index // len(cities):06d}_{_FRAME:06d}"
            pending.append(pool.submit(_write_sample, out, split, city, stem, image, label))
            if len(pending) > 4:
                pending.popleft().result()  # re-raises a failed write
        for future in pending:
            future.result()


def _write_sample(out: Path, split: str, city: str, stem: str, image: np.ndarray, label: np.ndarray) -> None:
    """Write one sample's three PNG files in the official layout."""
    image_dir, label_dir = out / "leftImg8bit" / split / city, out / "gtFine" / split / city
    _imwrite(image_dir / f"{stem}_leftImg8bit.png", image[..., ::-1], _PNG_IMAGE)  # cv2 writes BGR
    _imwrite(label_dir / f"{stem}_gtFine_labelIds.png", label, _PNG_LABEL)
    _imwrite(label_dir / f"{stem}_gtFine_color.png", label_to_color(label)[..., ::-1], _PNG_LABEL)


def _imwrite(path: Path, array: np.ndarray, params: list[int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.ascontiguousarray(array), params):
        raise DataError(f"could not write {path}; check that the disk is writable and not full")
