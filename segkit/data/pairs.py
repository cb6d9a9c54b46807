"""Image pairs: one file holding a photo (left half) and its Cityscapes colour mask (right half).

Kaggle's most attached Cityscapes copy, "Cityscapes Image Pairs" (pix2pix's cityscapes set), is
`cityscapes_data/{train,val}/<n>.jpg`: 256x512 JPEGs, each the photo on the left and the official
colour mask (what `*_gtFine_color.png` shows) on the right, both squashed from 2048x1024 to
256x256. There are no label ids, so the colour half is decoded by the official palette
(`segkit.labels`, the 29 distinct colours of its 34 labels) and by context
(`segkit.data.colormask.decode_colors`): the inside of regions by their colour, every other pixel
as one of the colours around it or a blend of two of them, in JPEG's YCbCr with chroma counted
half. The dark rim of a car against black is car or black, never truck (0, 0, 70), which its
colour is nearest to; a pole one pixel wide keeps its grey. Then:

- explained by nothing within `color_tolerance` (default 20 levels): 255, counted "far" (JPEG
  ringing, blends of three classes at the corners the squash made);
- the colour of a label that is not one of the 19 train classes: 255, counted "void" (black is
  unlabeled, ego vehicle, rectification border, out of roi and static; parking, rail track, guard
  rail, bridge, tunnel, caravan, trailer, dynamic, ground have their own colours);
- shared colours: (153, 153, 153) is pole and polegroup, decoded pole; (0, 0, 142) is car and
  license plate, decoded car (label id files draw plates as the car too).

Measured against true labels on real Cityscapes and KITTI frames: benchmarks/README.md.

A file is split at half its width (any size; JPEG or PNG); the photo must be on the left. Whether a
file is a pair at all is checked from its content (`pair_problem`): its right half must be a
colour mask (nearly every pixel close to a palette colour) and its left half must not.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from PIL import Image

from segkit.data.colormask import decode_colors
from segkit.data.colormask import nearest_colors as _nearest
from segkit.data.images import read_photo
from segkit.data.layouts import DEFAULT_COLOR_TOLERANCE, PAIR_FORMAT
from segkit.errors import DataError
from segkit.labels import IGNORE_INDEX, LABEL_COLORS, LABELS

DECODER = "palette colours by context (seeds, blends of two neighbouring colours), YCbCr, v2"  # cache keys name it
MASK_SHARE = 0.85  # a colour mask has at least this share of pixels within tolerance of a palette colour
EXACT_SHARE = 0.4  # ... and at least this share within EXACT levels of a colour other than black
EXACT = 8.0  # levels: a flat region of a JPEG'd mask decodes this close; photos and renders rarely do
_CHECK_PIXELS = 65_536  # pixels of a half looked at by the pair check (a strided sample of large images)


def _palette() -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """(K, 3) distinct label colours, (K,) the trainId each decodes to, and their label names."""
    colors: dict[tuple[int, int, int], list] = {}
    for lb in LABELS:
        if lb.id < 0:  # license plate: no label id, the car's colour
            continue
        train = lb.trainId if 0 <= lb.trainId < IGNORE_INDEX else IGNORE_INDEX
        entry = colors.setdefault(tuple(lb.color), [IGNORE_INDEX, []])
        entry[0] = train if entry[0] == IGNORE_INDEX else entry[0]  # a train class wins a shared colour
        entry[1].append(lb.name)
    names = tuple("/".join(v[1]) for v in colors.values())
    return np.array(list(colors), np.uint8), np.array([v[0] for v in colors.values()], np.uint8), names


PAIR_COLORS, PAIR_TRAIN_IDS, PAIR_COLOR_NAMES = _palette()  # (29, 3), (29,), 29 names
_BLACK = np.all(PAIR_COLORS == 0, axis=1)  # (29,): the void labels' shared black


class Decoded(NamedTuple):
    """A colour mask decoded by the palette and by context."""

    train_ids: np.ndarray  # (H, W) uint8 trainIds, 255 = ignore
    void: int  # pixels decoded as the colour of a label outside the 19 classes (-> 255)
    far: int  # pixels nothing explains within the tolerance (-> 255, undecided)


def nearest_colors(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The nearest palette colour of each pixel and its distance (YCbCr, chroma counted half), context aside.

    Shape:
        (H, W, 3) uint8 RGB -> (H, W) uint8 index into PAIR_COLORS, (H, W) float32 distance.
    """
    index, distance = _nearest(rgb, PAIR_COLORS)
    return index.astype(np.uint8), distance


def decode_mask(
    rgb: np.ndarray,
    tolerance: float = DEFAULT_COLOR_TOLERANCE,
    colors: np.ndarray = PAIR_COLORS,
    classes: np.ndarray = PAIR_TRAIN_IDS,
) -> Decoded:
    """Class ids of a colour mask (the rules: module docstring and `colormask.decode_colors`).

    Args:
        rgb: (H, W, 3) uint8 colour mask, e.g. a pair's right half.
        tolerance: the largest distance (levels) between a pixel and the colour, or blend of two
            neighbouring colours, that explains it.
        colors: (N, 3) uint8 distinct colours of the label space (default: Cityscapes' 29).
        classes: (N,) uint8 the class id each colour decodes to, IGNORE_INDEX (255) for colours that
            are not evaluated (they still take part in decoding: a blend with black is not a class).

    Returns:
        Decoded: (H, W) uint8 class ids (255 = ignore), and the void / undecided pixel counts.
    """
    index = decode_colors(rgb, colors, tolerance)
    far = index < 0
    class_ids = np.asarray(classes, np.uint8)[np.maximum(index, 0)]
    class_ids[far] = IGNORE_INDEX
    void = int(((class_ids == IGNORE_INDEX) & ~far).sum())
    return Decoded(class_ids, void, int(far.sum()))


def split_pair(image: np.ndarray, path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(photo, colour mask): the left and right halves of a pair read from `path`."""
    h, w = image.shape[:2]
    if w % 2 or w < 2:
        raise DataError(
            f"{path} is {h}x{w} (HxW): an image pair holds a photo and its colour mask side by side, two halves "
            f"of equal width, so its width must be even. Fix: use the pair files as shipped, or crop to {w - 1} wide."
        )
    return image[:, : w // 2], image[:, w // 2 :]


def read_pair(path: str | Path, tolerance: float = DEFAULT_COLOR_TOLERANCE) -> tuple[np.ndarray, Decoded]:
    """Read a pair file: its photo (left half, RGB) and its colour mask (right half) decoded.

    Args:
        path: a pair file (JPEG or PNG), read by `images.read_photo`, the one photo reader.
        tolerance: see `decode_mask`.

    Returns:
        ((H, W/2, 3) uint8 photo, Decoded with (H, W/2) trainIds).
    """
    photo, mask = split_pair(read_photo(path), path)
    return np.ascontiguousarray(photo), decode_mask(mask, tolerance)


def tolerance_of(sample: Any) -> float:
    """The decoding tolerance of a sample's data set (`Sample.roots.layout`), else the default."""
    layout = getattr(getattr(sample, "roots", None), "layout", None)
    return float(getattr(layout, "color_tolerance", DEFAULT_COLOR_TOLERANCE))


def is_pair_sample(sample: Any) -> bool:
    """Whether a `Sample` is an image pair (its one file is the image and the label)."""
    return sample.label_format == PAIR_FORMAT


# ----------------------------------------------------------------------------- is it a pair?


def mask_share(half: np.ndarray, tolerance: float = DEFAULT_COLOR_TOLERANCE) -> tuple[float, float]:
    """(share of pixels within tolerance of a palette colour, share within EXACT of a non-black one).

    Measured on kitti-mini (tests/test_pairs.py): JPEG'd colour masks >= 0.90 and >= 0.47 (squashed
    12x, 64x64); street photos <= 0.73 and <= 0.20; grey photos, segkit's synthetic renders <= 0.83
    and <= 0.31; dark photos near black score high on the first only. Large halves are looked at on
    a strided sample of about 65k pixels.
    """
    step = max(1, int(np.sqrt(half.shape[0] * half.shape[1] / _CHECK_PIXELS)))
    index, distance = nearest_colors(np.ascontiguousarray(half[::step, ::step]))
    return float((distance <= tolerance).mean()), float(((distance <= EXACT) & ~_BLACK[index]).mean())


def pair_problem(image: np.ndarray, tolerance: float = DEFAULT_COLOR_TOLERANCE) -> str:
    """Why an image is not a pair (photo left, Cityscapes colour mask right), or "" when it is one."""
    h, w = image.shape[:2]
    if w % 2 or w < 32:
        return f"it is {h}x{w} (HxW): a pair is two halves of equal width"
    left, right = mask_share(image[:, : w // 2], tolerance), mask_share(image[:, w // 2 :], tolerance)
    is_mask = [near >= MASK_SHARE and exact >= EXACT_SHARE for near, exact in (left, right)]
    if is_mask == [False, True]:
        return ""
    if is_mask == [True, False]:
        return "its LEFT half is the colour mask and its right half the photo; segkit expects the photo on the left"
    if all(is_mask):
        return "both halves look like colour masks"
    return (
        f"its right half is no colour mask: {100 * right[0]:.0f}% of its pixels are within {tolerance:g} levels of "
        f"a palette colour and {100 * right[1]:.0f}% within {EXACT:g} of one other than black "
        f"(a mask: {100 * MASK_SHARE:.0f}% and {100 * EXACT_SHARE:.0f}%)"
    )


def looks_like_pair(image: np.ndarray, tolerance: float = DEFAULT_COLOR_TOLERANCE) -> bool:
    """Whether an RGB image is a photo with its colour mask on the right (`pair_problem` is "")."""
    return not pair_problem(image, tolerance)


def check_pair_file(path: str | Path, tolerance: float = DEFAULT_COLOR_TOLERANCE) -> str:
    """`pair_problem` of a file, or what made it unreadable ("" = it is a pair)."""
    try:
        return pair_problem(read_photo(path), tolerance)
    except DataError as err:
        return str(err)


def trained_on_pairs(ckpt: dict) -> bool:
    """Whether a checkpoint's model was trained on image pairs (its recorded data or config)."""
    layout = (ckpt.get("data") or {}).get("layout") or {}
    config = ckpt.get("config") or {}
    return (
        layout.get("label_format") == PAIR_FORMAT
        or config.get("layout") == "image-pairs"
        or config.get("label_format") == PAIR_FORMAT
    )


# ----------------------------------------------------------------------------- protocol, statistics


def protocol_labels(samples: Sequence[Any]) -> str:
    """What a metrics protocol says about labels decoded from pairs ("" for label id files)."""
    pair = next((s for s in samples if is_pair_sample(s)), None)
    if pair is None:
        return ""
    with Image.open(pair.label) as im:
        w, h, kind = im.width // 2, im.height, im.format or Path(pair.label).suffix.lstrip(".").upper()
    return (
        f"labels decoded from {h}x{w} {kind} colour masks (image pairs, color_tolerance "
        f"{tolerance_of(pair):g}): not comparable with the official benchmark"
    )


def protocol_fields(samples: Sequence[Any]) -> dict[str, str]:
    """{"labels": `protocol_labels`} for the `make_protocol` of numbers on image pairs; {} otherwise."""
    note = protocol_labels(samples)
    return {"labels": note} if note else {}


def size_note(samples: Sequence[Any], image_size: Sequence[int]) -> str:
    """What `image_size` does to image pairs' photo halves, when it resizes them ("" otherwise)."""
    pair = next((s for s in samples if is_pair_sample(s)), None)
    if pair is None:
        return ""
    with Image.open(pair.image) as im:
        h, w = im.height, im.width // 2
    scale = max(image_size[0] / h, image_size[1] / w)  # the resize that covers image_size, aspect kept
    if scale == 1:
        return ""
    return (
        f"image pairs: each photo half is {h}x{w} (for Kaggle's, the scene squashed to half its width); "
        f"image_size {image_size[0]}x{image_size[1]} resizes it to {round(h * scale)}x{round(w * scale)} to cover it "
        f"({scale:g}x); --image-size {h} {w} trains at the halves' own size"
    )


def decoding_counts(samples: Sequence[Any]) -> dict[str, int]:
    """Pixels of the pair samples' masks by outcome: {"pixels", "classes", "void", "far", "pairs"}."""
    counts = dict.fromkeys(("pairs", "pixels", "classes", "void", "far"), 0)
    for sample in samples:
        if not is_pair_sample(sample):
            continue
        decoded = read_pair(sample.label, tolerance_of(sample))[1]
        n = decoded.train_ids.size
        counts["pairs"] += 1
        counts["pixels"] += n
        counts["void"] += decoded.void
        counts["far"] += decoded.far
        counts["classes"] += n - decoded.void - decoded.far
    return counts


# ----------------------------------------------------------------------------- writing pairs


def make_pair(
    photo: np.ndarray,
    label_ids: np.ndarray,
    half: tuple[int, int] = (256, 256),
    quality: int = 75,
    suffix: str = ".jpg",
) -> bytes:
    """A pair file as pix2pix made Cityscapes Image Pairs: photo and colour mask squashed, side by side.

    Both halves are resized with Pillow's bicubic filter (what `Image.resize` does by default),
    the mask coloured by the official palette first; JPEG at `quality` (Pillow's 4:2:0 chroma).
    Used to measure the decoder against known labels (tests, benchmarks/pair_decoder.py).

    Args:
        photo: (H, W, 3) uint8 RGB.
        label_ids: (H, W) uint8 Cityscapes labelIds.
        half: (h, w) of each half.
        quality: JPEG quality (ignored for PNG).
        suffix: ".jpg" or ".png".

    Returns:
        The encoded file.
    """
    size = (half[1], half[0])
    left = Image.fromarray(photo).resize(size, Image.Resampling.BICUBIC)
    right = Image.fromarray(LABEL_COLORS[label_ids]).resize(size, Image.Resampling.BICUBIC)
    pair = Image.new("RGB", (2 * half[1], half[0]))
    pair.paste(left, (0, 0))
    pair.paste(right, (half[1], 0))
    buf = io.BytesIO()
    if suffix.lower() in (".jpg", ".jpeg"):
        pair.save(buf, "JPEG", quality=quality)
    else:
        pair.save(buf, "PNG")
    return buf.getvalue()
