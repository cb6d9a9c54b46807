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


# Aligned pairs after a random resize and crop agree on 0.952 to 0.99 of their pixels (25 seeds); one shifted
# by (2, 2) pixels on 0.89 at most (10 seeds): the line between them is drawn halfway, not at the edge of
# either, so a resampling library that blurs borders a little more or less does not cross it.
ALIGNED = 0.92


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
    assert _agreement(out["image"], labels) > ALIGNED
    assert (denormalize(out["image"])[labels == 255] == 0).all()  # mask padding is image padding


def test_agreement_detects_misalignment() -> None:
    """The control: the alignment check fails on pairs that are misaligned on purpose."""
    flipped = shifted = 0
    for seed in range(10):
        image, mask = _pair(seed=seed)
        out = eval_transform(None)(image=image, mask=mask)
        assert _agreement(out["image"], mask) == 1.0
        flipped += _agreement(out["image"].flip(-1), mask) < ALIGNED
        shifted += _agreement(out["image"].roll((2, 2), dims=(-2, -1)), mask) < ALIGNED
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
    assert (labels != 255).sum() == 32 * 64 and set(np.unique(labels)) <= set(np.unique(mask)) | {255}


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


def test_colour_matrix_known_answers() -> None:
    from segkit.data.transforms import colour_matrix

    def apply(matrix: np.ndarray, rgb: list[float]) -> np.ndarray:
        return matrix[:, :3] @ np.asarray(rgb, dtype=np.float64) + matrix[:, 3]

    identity = colour_matrix(1.0, 1.0, 1.0, 0.0, grey_mean=97.0)
    assert np.allclose(identity, np.eye(3, 4), atol=1e-6)
    assert np.allclose(apply(colour_matrix(2.0, 1.0, 1.0, 0.0, 50.0), [10, 20, 30]), [20, 40, 60], atol=1e-4)
    # contrast 0: every pixel becomes the (brightness-scaled) mean grey level
    assert np.allclose(apply(colour_matrix(1.0, 0.0, 1.0, 0.0, 80.0), [200, 3, 7]), [80, 80, 80], atol=1e-4)
    # saturation 0: each pixel becomes its own ITU-R 601 grey
    assert np.allclose(apply(colour_matrix(1.0, 1.0, 0.0, 0.0, 0.0), [255, 0, 0]), [0.299 * 255] * 3, atol=1e-3)
    # a third of a turn about the grey axis permutes the primaries: red -> green -> blue
    third = colour_matrix(1.0, 1.0, 1.0, 1 / 3, 0.0)
    assert np.allclose(apply(third, [255, 0, 0]), [0, 255, 0], atol=1e-3)
    assert np.allclose(apply(third, [0, 0, 255]), [255, 0, 0], atol=1e-3)
    # saturation and hue keep greys grey, whatever the factors
    assert np.allclose(apply(colour_matrix(1.0, 1.0, 1.7, 0.05, 0.0), [90, 90, 90]), [90, 90, 90], atol=1e-3)


def test_colour_jitter_draws_each_factor_in_its_range() -> None:
    from segkit.data.transforms import ColorJitter

    grey = np.full((8, 8, 3), 100, dtype=np.uint8)
    jitter = ColorJitter(brightness=0.25, contrast=0.0, saturation=0.0, hue=0.0, p=1.0)
    means = []
    for seed in range(200):
        jitter.set_random_seed(seed)
        means.append(jitter(image=grey)["image"].mean())
    assert 75 <= min(means) < 80 and 120 < max(means) <= 125  # brightness in [0.75, 1.25]


def test_normalize_table_equals_the_formula() -> None:
    from segkit.data.transforms import MEAN, STD, normalize_image

    image = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    expected = (image.astype(np.float64) / 255 - np.asarray(MEAN)) / np.asarray(STD)
    assert np.allclose(normalize_image(image), expected, atol=1e-6)
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        normalize_image(image.astype(np.float32))


@pytest.mark.parametrize("scale", [0.5, 0.8, 1.0, 1.5, 2.0])
def test_scale_crop_scales_by_the_drawn_factor(scale: float) -> None:
    """A known scale: the kept window is 1/scale of the output (crop) or the image is scale times smaller (pad)."""
    from segkit.data.transforms import RandomScaleCrop

    image, mask = _pair(64, 128)
    op = RandomScaleCrop(64, 128, (scale, scale))
    for seed in range(5):
        op.set_random_seed(seed)
        out = op(image=image, mask=mask)
        assert out["image"].shape == (64, 128, 3) and out["mask"].shape == (64, 128)
        if scale <= 1:  # the whole image, shrunk, somewhere inside the crop
            assert (out["mask"] != 255).sum() == round(64 * scale) * round(128 * scale)
        else:  # no padding, no invented labels
            assert (out["mask"] != 255).all()
            assert set(np.unique(out["mask"])) <= set(np.unique(mask))
        if scale == 2.0:  # a 32x64 window upsampled 2x (nearest): constant 2x2 blocks
            blocks = out["mask"][::2, ::2]
            assert np.array_equal(np.repeat(np.repeat(blocks, 2, axis=0), 2, axis=1), out["mask"])
    if scale == 1.0:
        assert np.array_equal(out["mask"], mask) and np.array_equal(out["image"], image)


def test_scale_crop_places_small_images_at_random_positions() -> None:
    from segkit.data.transforms import RandomScaleCrop

    image, mask = _pair(64, 128)
    op = RandomScaleCrop(64, 128, (0.5, 0.5))
    corners = set()
    for seed in range(20):
        op.set_random_seed(seed)
        rows, cols = np.nonzero(op(image=image, mask=mask)["mask"] != 255)
        corners.add((rows.min(), cols.min()))
    assert len(corners) > 5 and all(0 <= r <= 32 and 0 <= c <= 64 for r, c in corners)
