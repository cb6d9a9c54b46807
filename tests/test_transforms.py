"""Augmentation keeps image and mask aligned, pads masks with 255 and invents no labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segkit.data.transforms import denormalize, eval_transform, train_transform
from segkit.errors import ConfigError

# Far-apart colours: the class of an image pixel can be read back from its colour.
COLOURS = np.array(
    [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255], [255, 0, 255]],
    dtype=np.uint8,
)


def _pair(h: int = 64, w: int = 128, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A mask of rectangles of trainIds 0..5 and the image that paints them in COLOURS."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((h, w), dtype=np.uint8)
    for k in range(1, 12):
        y, x = rng.integers(0, h - 6), rng.integers(0, w - 6)
        mask[y : y + rng.integers(6, 24), x : x + rng.integers(6, 40)] = k % len(COLOURS)
    return COLOURS[mask], mask


def _agreement(image: torch.Tensor, labels: np.ndarray) -> float:
    """Fraction of non-padding pixels whose colour names the same class as the mask.

    Resampling blurs class borders, so a few percent disagree even when aligned; an image
    flipped or shifted against its mask by (2, 2) pixels disagrees far more (see the control test).
    """
    pixels = denormalize(image).astype(int)  # (H, W, 3)
    nearest = np.abs(pixels[:, :, None, :] - COLOURS.astype(int)).sum(axis=-1).argmin(axis=-1)
    valid = labels != 255
    return float((nearest[valid] == labels[valid]).mean())


@pytest.mark.parametrize("seed", range(25))
def test_geometry_keeps_image_and_mask_aligned(seed: int) -> None:
    image, mask = _pair(seed=seed)
    transform = train_transform((48, 80), color_jitter=False)
    transform.set_random_seed(seed)
    out = transform(image=image, mask=mask)
    labels = out["mask"].numpy()
    assert labels.shape == (48, 80) and out["image"].shape == (3, 48, 80)
    assert set(np.unique(labels)) <= set(np.unique(mask)) | {255}  # nearest: no invented labels
    assert _agreement(out["image"], labels) > 0.95
    assert (denormalize(out["image"])[labels == 255] == 0).all()  # mask padding is image padding


def test_agreement_detects_misalignment() -> None:
    """The control: the alignment check fails on pairs that are misaligned on purpose."""
    flipped = shifted = 0
    for seed in range(10):
        image, mask = _pair(seed=seed)
        out = eval_transform(None)(image=image, mask=mask)
        assert _agreement(out["image"], mask) == 1.0
        flipped += _agreement(out["image"].flip(-1), mask) < 0.95
        shifted += _agreement(out["image"].roll((2, 2), dims=(-2, -1)), mask) < 0.95
    assert flipped >= 9 and shifted >= 9


def test_flip_is_applied_to_both() -> None:
    image, mask = _pair()
    flipped = 0
    transform = train_transform((64, 128), scale_range=(1.0, 1.0), color_jitter=False)
    for seed in range(8):
        transform.set_random_seed(seed)
        labels = transform(image=image, mask=mask)["mask"].numpy()
        assert np.array_equal(labels, mask) or np.array_equal(labels, mask[:, ::-1])
        flipped += np.array_equal(labels, mask[:, ::-1])
    assert 0 < flipped < 8


def test_padding_uses_255_for_masks_and_0_for_images() -> None:
    image, mask = _pair()
    transform = train_transform((64, 128), scale_range=(0.5, 0.5), hflip=False, color_jitter=False)
    out = transform(image=image, mask=mask)
    labels, pixels = out["mask"].numpy(), denormalize(out["image"])
    assert (labels == 255).sum() == 64 * 128 - 32 * 64
    assert (pixels[labels == 255] == 0).all()
    assert (labels != 255).sum() == 32 * 64 and set(np.unique(labels)) <= set(np.unique(mask)) | {
        255
    }


def test_colour_jitter_changes_the_image_only() -> None:
    image, mask = _pair()
    transform = train_transform((64, 128), scale_range=(1.0, 1.0), hflip=False)
    changed = 0
    for seed in range(5):
        transform.set_random_seed(seed)
        out = transform(image=image, mask=mask)
        assert np.array_equal(out["mask"].numpy(), mask)
        changed += not np.array_equal(denormalize(out["image"]), image)
    assert changed > 0


def test_eval_transform_resizes_or_keeps_size() -> None:
    image, mask = _pair()
    out = eval_transform(None)(image=image, mask=mask)
    assert out["image"].dtype == torch.float32 and out["mask"].dtype == torch.int64
    assert np.array_equal(denormalize(out["image"]), image)  # normalise -> denormalise is exact
    assert np.array_equal(out["mask"].numpy(), mask)
    small = eval_transform((32, 64))(image=image, mask=mask)
    assert small["image"].shape == (3, 32, 64) and small["mask"].shape == (32, 64)
    assert set(np.unique(small["mask"].numpy())) <= set(np.unique(mask))


def test_normalisation_values() -> None:
    grey = np.full((2, 2, 3), 255, dtype=np.uint8)
    out = eval_transform(None)(image=grey)["image"]
    # (1 - mean) / std per channel
    assert torch.allclose(out[:, 0, 0], torch.tensor([2.2489083, 2.4285714, 2.64]), atol=1e-5)


def test_bad_arguments_raise() -> None:
    with pytest.raises(ConfigError, match="scale_range"):
        train_transform((64, 64), scale_range=(2.0, 0.5))
    with pytest.raises(ConfigError, match="image_size"):
        eval_transform((0, 64))
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        denormalize(torch.zeros(2, 3, 4, 4))
