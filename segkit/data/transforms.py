"""Albumentations pipelines: one geometric transform for image and mask; masks padded with 255."""

from __future__ import annotations

import os

# Albumentations checks PyPI for a newer version at import; Kaggle kernels and CI may be offline.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A
import cv2
import numpy as np
import torch
from albumentations.pytorch import ToTensorV2

from segkit.errors import ConfigError
from segkit.labels import IGNORE_INDEX

MEAN = (0.485, 0.456, 0.406)  # ImageNet statistics: the pretrained encoders expect them
STD = (0.229, 0.224, 0.225)
# cv2.INTER_NEAREST samples the top-left source pixel, shifting masks by up to half a source
# pixel against the (centre-aligned) linear/area-resized image; the _EXACT variant is aligned.
MASK_INTERPOLATION = cv2.INTER_NEAREST_EXACT


def train_transform(
    image_size: tuple[int, int],
    scale_range: tuple[float, float] = (0.5, 2.0),
    hflip: bool = True,
    color_jitter: bool = True,
) -> A.Compose:
    """Training augmentation: resize, random scale, pad, random crop, flip, colour jitter.

    Args:
        image_size: (H, W) of the output crops.
        scale_range: (min, max) random scale applied after resizing to `image_size`.
        hflip: Random horizontal flip (p=0.5).
        color_jitter: Random brightness, contrast, saturation and hue (image only).

    Returns:
        A pipeline called as `t(image=(H, W, 3) uint8, mask=(H, W) uint8)` returning
        {"image": float32 (3, h, w), "mask": int64 (h, w)} with (h, w) = image_size.
    """
    h, w = _check_size(image_size)
    lo, hi = scale_range
    if not 0 < lo <= hi:
        raise ConfigError(f"scale_range must be (min, max) with 0 < min <= max, got {scale_range}")
    ops: list = [
        _resize(h, w),
        # scale_limit is relative to 1 in Albumentations: (lo - 1, hi - 1) samples in [lo, hi].
        A.RandomScale(
            scale_limit=(lo - 1.0, hi - 1.0),
            interpolation=cv2.INTER_LINEAR,
            mask_interpolation=MASK_INTERPOLATION,
            area_for_downscale="image",
            p=1.0,
        ),
        A.PadIfNeeded(h, w, border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=IGNORE_INDEX),
        A.RandomCrop(h, w),
    ]
    if hflip:
        ops.append(A.HorizontalFlip(p=0.5))
    if color_jitter:
        ops.append(A.ColorJitter(brightness=0.25, contrast=0.25, saturation=0.25, hue=0.05, p=0.8))
    return A.Compose(ops + _to_tensor())


def eval_transform(image_size: tuple[int, int] | None) -> A.Compose:
    """Evaluation pipeline: optional resize, normalise, to tensor.

    Args:
        image_size: (H, W) to resize to, or None to keep the original size.

    Returns:
        A pipeline returning {"image": float32 (3, h, w), "mask": int64 (h, w)} (mask optional).
    """
    ops = [] if image_size is None else [_resize(*_check_size(image_size))]
    return A.Compose(ops + _to_tensor())


def denormalize(image: torch.Tensor) -> np.ndarray:
    """Undo `Normalize` for display.

    Shape:
        (3, H, W) float normalised -> (H, W, 3) uint8 RGB.
    """
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"expected a (3, H, W) image tensor, got shape {tuple(image.shape)}")
    array = image.detach().float().cpu().numpy().transpose(1, 2, 0)
    array = array * np.asarray(STD, dtype=np.float32) + np.asarray(MEAN, dtype=np.float32)
    return np.clip(np.rint(array * 255.0), 0, 255).astype(np.uint8)


def _resize(h: int, w: int) -> A.Resize:
    # INTER_AREA when shrinking the image avoids aliasing; masks always use nearest neighbour
    # so that no label value is invented at class borders.
    return A.Resize(
        h,
        w,
        interpolation=cv2.INTER_LINEAR,
        mask_interpolation=MASK_INTERPOLATION,
        area_for_downscale="image",
    )


def _to_tensor() -> list:
    mask_to_int64 = A.Lambda(mask=_mask_to_int64, name="mask_to_int64")
    return [A.Normalize(mean=MEAN, std=STD), mask_to_int64, ToTensorV2()]


def _mask_to_int64(mask: np.ndarray, **_: object) -> np.ndarray:
    """Masks leave the pipeline as int64, the dtype `cross_entropy` wants for targets."""
    return mask.astype(np.int64)


def _check_size(image_size: tuple[int, int]) -> tuple[int, int]:
    if len(image_size) != 2 or min(image_size) <= 0:
        raise ConfigError(f"image_size must be (H, W) with positive sizes, got {image_size}")
    return int(image_size[0]), int(image_size[1])
