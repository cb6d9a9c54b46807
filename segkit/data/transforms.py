"""Albumentations pipelines: one geometric transform for image and mask; masks padded with 255."""

from __future__ import annotations

import os

# Albumentations checks PyPI for a newer version at import; Kaggle kernels and CI may be offline.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import functools
import math
from collections.abc import Sequence
from typing import Any

import albumentations as A
import cv2
import numpy as np
import torch
from albumentations.core.type_definitions import Targets
from albumentations.pytorch import ToTensorV2

from segkit.checks import check_image_size
from segkit.config import IMAGENET_MEAN, IMAGENET_STD
from segkit.errors import ConfigError
from segkit.labels import IGNORE_INDEX, THIN_CLASSES

MEAN, STD = IMAGENET_MEAN, IMAGENET_STD  # the default; a model's own come with it (checkpoint "normalization")
# cv2.INTER_NEAREST samples the top-left source pixel, shifting masks by up to half a source
# pixel against the (centre-aligned) linear/area-resized image; the _EXACT variant is aligned.
MASK_INTERPOLATION = cv2.INTER_NEAREST_EXACT


def train_transform(
    image_size: tuple[int, int],
    scale_range: tuple[float, float] = (0.5, 2.0),
    hflip: bool = True,
    color_jitter: bool = True,
    mean: Sequence[float] = MEAN,
    std: Sequence[float] = STD,
    crop_size: tuple[int, int] | None = None,
    focus_p: float = 0.0,
    focus: Sequence[int] | None = None,
) -> A.Compose:
    """Training augmentation: resize keeping the aspect ratio, random scale and crop (padded),
    flip, colour jitter.

    Each image is first resized, keeping its aspect ratio, to the smallest size that covers
    `image_size` (`cover_size`; a 2:1 Cityscapes frame and a 2:1 `image_size` give exactly
    `image_size`), then scaled by a random factor and cropped to `crop_size`.

    Args:
        image_size: (H, W) the resized image covers: the scale of objects the model learns.
        scale_range: (min, max) random scale applied after that resize.
        hflip: Random horizontal flip (p=0.5).
        color_jitter: Random brightness, contrast, saturation and hue (image only, p=0.8).
        mean: per-channel mean (0..1 units) the model's encoder was pretrained with.
        std: per-channel standard deviation, likewise.
        crop_size: (h, w) of the output crops; None = image_size.
        focus_p: share of crops centred on a pixel of a thin or small class.
        focus: the class indices of those classes; None = Cityscapes' (`THIN_CLASSES`).

    Returns:
        A pipeline called as `t(image=(H, W, 3) uint8, mask=(H, W) uint8)` returning
        {"image": float32 (3, h, w), "mask": int64 (h, w)} with (h, w) = crop_size.
    """
    h, w = check_image_size(image_size)
    ch, cw = check_image_size(crop_size or image_size)
    lo, hi = scale_range
    if not 0 < lo <= hi:
        raise ConfigError(f"scale_range must be (min, max) with 0 < min <= max, got {scale_range}")
    # The scale and the crop are one op that resizes only the window the crop keeps: resizing the
    # whole image up to 2x and then throwing most of it away cost ~3 ms of a ~5 ms sample.
    ops: list = [
        ResizeToCover(h, w),
        RandomScaleCrop(ch, cw, (lo, hi), focus_p, THIN_CLASSES if focus is None else tuple(focus)),
    ]
    if hflip:
        ops.append(A.HorizontalFlip(p=0.5))
    if color_jitter:
        ops.append(ColorJitter(brightness=0.25, contrast=0.25, saturation=0.25, hue=0.05, p=0.8))
    return A.Compose(ops + _to_tensor(mean, std))


def eval_transform(
    image_size: tuple[int, int] | None, mean: Sequence[float] = MEAN, std: Sequence[float] = STD
) -> A.Compose:
    """Evaluation pipeline: optional resize (aspect ratio kept), normalise, to tensor.

    Args:
        image_size: (H, W) the resized image must cover (`cover_size`), or None to keep the
            original size.
        mean: per-channel mean of the model's normalisation (ImageNet's by default).
        std: per-channel standard deviation, likewise.

    Returns:
        A pipeline returning {"image": float32 (3, h, w), "mask": int64 (h, w)} (mask optional).
    """
    ops = [] if image_size is None else [ResizeToCover(*check_image_size(image_size))]
    return A.Compose(ops + _to_tensor(mean, std))


def denormalize(image: torch.Tensor, mean: Sequence[float] = MEAN, std: Sequence[float] = STD) -> np.ndarray:
    """Undo `Normalize` for display.

    Shape:
        (3, H, W) float normalised -> (H, W, 3) uint8 RGB.
    """
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"expected a (3, H, W) image tensor, got shape {tuple(image.shape)}")
    array = image.detach().float().cpu().numpy().transpose(1, 2, 0)
    array = array * np.asarray(std, dtype=np.float32) + np.asarray(mean, dtype=np.float32)
    return np.clip(np.rint(array * 255.0), 0, 255).astype(np.uint8)


def cover_size(shape: Sequence[int], image_size: Sequence[int], scale: float = 1.0) -> tuple[int, int]:
    """(H', W'): `shape` resized keeping its aspect ratio to cover `image_size`, times `scale`.

    The model's scale: training crops come from images at this size (times the random scale),
    and inference resizes to it, so objects keep their shape and the size they trained at.
    E.g. (1024, 2048) at (256, 512) -> (256, 512); (360, 480) -> (96, 128); (256, 768) -> (64, 192).
    """
    factor = max(image_size[0] / shape[0], image_size[1] / shape[1]) * scale  # the side that just fits
    return (
        max(round(image_size[0] * scale), round(shape[0] * factor)),
        max(round(image_size[1] * scale), round(shape[1] * factor)),
    )


def resize_image(image: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Resize an (H, W, C) image to (h, w): area averaging when either side shrinks, else linear."""
    h, w = int(size[0]), int(size[1])
    if image.shape[:2] == (h, w):
        return image
    shrink = h < image.shape[0] or w < image.shape[1]  # INTER_AREA avoids aliasing
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def resize_mask(mask: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Resize an (H, W) label map to (h, w) by nearest neighbour: no label value is invented."""
    h, w = int(size[0]), int(size[1])
    return mask if mask.shape[:2] == (h, w) else cv2.resize(mask, (w, h), interpolation=MASK_INTERPOLATION)


class ResizeToCover(A.DualTransform):
    """Resize image and mask, keeping the aspect ratio, to the smallest size covering (height, width)."""

    _targets = (Targets.IMAGE, Targets.MASK)

    def __init__(self, height: int, width: int, p: float = 1.0):
        super().__init__(p=p)
        self.height, self.width = int(height), int(width)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("height", "width")

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        return {"size": cover_size(params["shape"][:2], (self.height, self.width))}

    def apply(self, img: np.ndarray, size: tuple[int, int], **params: Any) -> np.ndarray:
        return resize_image(img, size)

    def apply_to_mask(self, mask: np.ndarray, size: tuple[int, int], **params: Any) -> np.ndarray:
        return resize_mask(mask, size)


def _to_tensor(mean: Sequence[float], std: Sequence[float]) -> list:
    mask_to_int64 = A.Lambda(mask=_mask_to_int64, name="mask_to_int64")
    return [Normalize(mean, std), mask_to_int64, ToTensorV2()]


class RandomScaleCrop(A.DualTransform):
    """Scale by a random factor in `scale_range`, then take a random (height, width) crop.

    Only the window the crop keeps is resized (area when shrinking, linear when enlarging; masks
    nearest), so the cost follows the output size, not the scaled size. Where the scaled image is
    smaller than the crop it is placed at a random position and the rest is padded (image 0,
    mask 255). The window is rounded to whole input pixels, which changes the scale by at most
    one pixel's worth.

    With `focus_p` > 0, that share of crops is centred (give or take a quarter of the crop) on a
    random pixel of one of `focus_classes` when the mask has any: thin and small classes then
    appear in training crops more often than their share of pixels.
    """

    _targets = (Targets.IMAGE, Targets.MASK)

    def __init__(
        self,
        height: int,
        width: int,
        scale_range: tuple[float, float] = (0.5, 2.0),
        focus_p: float = 0.0,
        focus_classes: Sequence[int] = (),
        p: float = 1.0,
    ):
        super().__init__(p=p)
        self.height, self.width, self.scale_range = int(height), int(width), tuple(scale_range)
        self.focus_p, self.focus_classes = float(focus_p), tuple(int(c) for c in focus_classes)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("height", "width", "scale_range", "focus_p", "focus_classes")

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        rows_in, cols_in = params["shape"][:2]
        scale = self.py_random.uniform(*self.scale_range)
        row, col = (self._focus(data.get("mask")) if self.focus_p > 0 else None) or (None, None)
        return {
            "rows": self._axis(rows_in, self.height, scale, row),
            "cols": self._axis(cols_in, self.width, scale, col),
        }

    def _focus(self, mask: np.ndarray | None) -> tuple[int, int] | None:
        """A random pixel (row, col) of a focus class, drawn for `focus_p` of the crops; else None."""
        if mask is None or self.py_random.random() >= self.focus_p:
            return None
        rows, cols = np.nonzero(np.isin(mask, self.focus_classes))
        if not len(rows):
            return None
        i = self.py_random.randrange(len(rows))
        return int(rows[i]), int(cols[i])

    def _axis(self, size_in: int, size_out: int, scale: float, centre: int | None = None) -> tuple[int, int, int, int]:
        """(input start, input length, output start, output length) along one axis."""
        if size_in * scale >= size_out:  # the crop lies inside the scaled image
            length = min(size_in, max(1, round(size_out / scale)))
            if centre is None:
                return self.py_random.randint(0, size_in - length), length, 0, size_out
            start = centre - length // 2 + self.py_random.randint(-(length // 4), length // 4)
            return min(max(0, start), size_in - length), length, 0, size_out
        length = max(1, round(size_in * scale))  # the scaled image lies inside the crop
        return 0, size_in, self.py_random.randint(0, size_out - length), length

    def apply(self, img: np.ndarray, rows: tuple, cols: tuple, **params: Any) -> np.ndarray:
        return self._place(img, rows, cols, 0, None)

    def apply_to_mask(self, mask: np.ndarray, rows: tuple, cols: tuple, **params: Any) -> np.ndarray:
        return self._place(mask, rows, cols, IGNORE_INDEX, MASK_INTERPOLATION)

    def _place(self, array: np.ndarray, rows: tuple, cols: tuple, fill: int, interpolation: int | None) -> np.ndarray:
        (r0, rn, out_r0, out_rn), (c0, cn, out_c0, out_cn) = rows, cols
        window = array[r0 : r0 + rn, c0 : c0 + cn]
        if (rn, cn) != (out_rn, out_cn):
            if interpolation is None:  # INTER_AREA avoids aliasing when the image shrinks
                interpolation = cv2.INTER_AREA if out_rn < rn and out_cn < cn else cv2.INTER_LINEAR
            window = cv2.resize(np.ascontiguousarray(window), (out_cn, out_rn), interpolation=interpolation)
        if (out_rn, out_cn) == (self.height, self.width):
            return np.ascontiguousarray(window)
        out = np.full((self.height, self.width, *array.shape[2:]), fill, dtype=array.dtype)
        out[out_r0 : out_r0 + out_rn, out_c0 : out_c0 + out_cn] = window
        return out


class ColorJitter(A.ImageOnlyTransform):
    """Random brightness, contrast, saturation and hue applied as one affine colour map.

    Factors are drawn as in torchvision's ColorJitter (brightness, contrast, saturation uniform in
    [1 - v, 1 + v], hue in [-v, v] of a turn) and applied in that fixed order: brightness scales,
    contrast blends with the mean grey level, saturation blends with each pixel's grey (ITU-R 601
    luma) and hue rotates colours about the grey axis (torchvision shifts hue in HSV instead). The
    four compose into one 3x4 matrix, so the image is read once (`cv2.transform`, saturating).
    """

    def __init__(
        self,
        brightness: float = 0.25,
        contrast: float = 0.25,
        saturation: float = 0.25,
        hue: float = 0.05,
        p: float = 0.8,
    ):
        super().__init__(p=p)
        self.brightness, self.contrast, self.saturation, self.hue = brightness, contrast, saturation, hue

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("brightness", "contrast", "saturation", "hue")

    @property
    def targets_as_params(self) -> list[str]:
        return ["image"]

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        factor = [self.py_random.uniform(1 - v, 1 + v) for v in (self.brightness, self.contrast, self.saturation)]
        hue = self.py_random.uniform(-self.hue, self.hue)
        grey_mean = float(np.dot(cv2.mean(data["image"])[:3], _LUMA))
        return {"matrix": colour_matrix(*factor, hue, grey_mean)}

    def apply(self, img: np.ndarray, matrix: np.ndarray, **params: Any) -> np.ndarray:
        return cv2.transform(img, matrix)


_LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R 601, the grey of torchvision and PIL


def colour_matrix(brightness: float, contrast: float, saturation: float, hue: float, grey_mean: float) -> np.ndarray:
    """The 3x4 affine RGB map of `ColorJitter` for the given factors (hue in turns).

    Returns:
        float32 (3, 4): `rgb_out = M[:, :3] @ rgb_in + M[:, 3]`, values in 0-255 units.
    """
    ones = np.ones(3)
    saturate = saturation * np.eye(3) + (1 - saturation) * np.outer(ones, _LUMA)
    angle, axis = 2 * math.pi * hue, ones / math.sqrt(3)
    cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rotate = math.cos(angle) * np.eye(3) + math.sin(angle) * cross + (1 - math.cos(angle)) * np.outer(axis, axis)
    # Saturation and hue keep greys grey, so the contrast's offset passes through them unchanged.
    linear = contrast * brightness * rotate @ saturate
    offset = (1 - contrast) * brightness * grey_mean * ones
    return np.concatenate([linear, offset[:, None]], axis=1).astype(np.float32)


class Normalize(A.ImageOnlyTransform):
    """(x / 255 - mean) / std of uint8 RGB by table look-up: float32 (H, W, 3), ~5x faster than arithmetic."""

    def __init__(self, mean: Sequence[float] = MEAN, std: Sequence[float] = STD, p: float = 1.0):
        super().__init__(p=p)
        self.mean, self.std = tuple(mean), tuple(std)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("mean", "std")

    def apply(self, img: np.ndarray, **params: Any) -> np.ndarray:
        return normalize_image(img, self.mean, self.std)


def normalize_image(image: np.ndarray, mean: tuple = MEAN, std: tuple = STD) -> np.ndarray:
    """`(image / 255 - mean) / std` per channel.

    Shape:
        (H, W, 3) uint8 RGB -> (H, W, 3) float32.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"expected an (H, W, 3) uint8 RGB image, got {image.dtype} {image.shape}; "
            "decode images with segkit.data.cityscapes.read_image or convert with PIL .convert('RGB')"
        )
    return cv2.LUT(image, _normalisation_table(tuple(mean), tuple(std)))


@functools.cache
def _normalisation_table(mean: tuple, std: tuple) -> np.ndarray:
    """(256, 1, 3) float32: the normalised value of each uint8 level per channel (built once)."""
    values = np.arange(256, dtype=np.float32)[:, None] / np.float32(255)  # (256, 1)
    table = (values - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)  # (256, 3)
    return table.reshape(256, 1, 3)


def _mask_to_int64(mask: np.ndarray, **_: object) -> np.ndarray:
    """Masks leave the pipeline as int64, the dtype `cross_entropy` wants for targets."""
    return mask.astype(np.int64)
