"""Class pixel counts (known answers, cache) and class weights (known answers)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segkit.data.discover import Sample
from segkit.data.stats import class_pixel_counts, class_weights
from segkit.errors import ConfigError, DataError


@pytest.fixture
def two_labels(tmp_path: Path) -> list[Sample]:
    """One labelIds file and one labelTrainIds file with hand-counted pixels."""
    ids = np.array([[7, 7, 7, 7], [7, 7, 7, 7], [26, 26, 26, 26], [0, 1, 9, 33]], dtype=np.uint8)
    train = np.array([[0, 0, 255], [18, 18, 2]], dtype=np.uint8)
    Image.fromarray(ids).save(tmp_path / "a_gtFine_labelIds.png")
    Image.fromarray(train).save(tmp_path / "b_gtFine_labelTrainIds.png")
    return [
        Sample(None, tmp_path / "a_gtFine_labelIds.png", "x", "a", "labelIds"),
        Sample(None, tmp_path / "b_gtFine_labelTrainIds.png", "x", "b", "labelTrainIds"),
    ]


def test_pixel_counts_known_answer(two_labels: list[Sample]) -> None:
    counts = class_pixel_counts(two_labels)
    expected = np.zeros(19, dtype=np.int64)
    expected[0] = 8 + 2  # road: eight labelId-7 pixels + two trainId-0 pixels
    expected[13] = 4  # car (labelId 26)
    expected[18] = 1 + 2  # bicycle: labelId 33 + two trainId-18 pixels
    expected[2] = 1  # building (trainId 2)
    assert counts.dtype == np.int64 and counts.tolist() == expected.tolist()  # 0, 1, 9, 255 ignored


def test_pixel_counts_validate_labels(tmp_path: Path) -> None:
    Image.fromarray(np.full((2, 2), 255, dtype=np.uint8)).save(tmp_path / "a_gtFine_labelIds.png")
    with pytest.raises(DataError, match="looks like a trainId file"):
        class_pixel_counts([Sample(None, tmp_path / "a_gtFine_labelIds.png", "x", "a", "labelIds")])


def test_pixel_counts_cache_hit_and_invalidation(two_labels: list[Sample], tmp_path: Path) -> None:
    cache = tmp_path / "cache" / "counts.json"
    first = class_pixel_counts(two_labels, cache_path=cache)
    data = json.loads(cache.read_text())
    data["pixels"][5] = 12345  # a marker: only a cache hit can return it
    cache.write_text(json.dumps(data))
    assert class_pixel_counts(two_labels, cache_path=cache)[5] == 12345
    assert class_pixel_counts(two_labels[:1], cache_path=cache)[5] == 0  # other file list: recount
    assert class_pixel_counts(two_labels, num_classes=19, cache_path=cache).tolist() == first.tolist()
    label = two_labels[1].label
    Image.fromarray(np.zeros((2, 3), dtype=np.uint8)).save(label)
    os.utime(label, ns=(1, 10**18))  # a new mtime, whatever the file system's resolution
    assert class_pixel_counts(two_labels, cache_path=cache)[0] == 8 + 6


def test_corrupt_cache_is_rebuilt(two_labels: list[Sample], tmp_path: Path) -> None:
    cache = tmp_path / "counts.json"
    cache.write_text("{not json")
    assert class_pixel_counts(two_labels, cache_path=cache)[13] == 4
    assert json.loads(cache.read_text())["pixels"][13] == 4


COUNTS = np.array([60, 30, 10, 0])  # frequencies 0.6, 0.3, 0.1; class 3 absent


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("none", [1, 1, 1, 1]),
        ("inverse", [1 / 3, 2 / 3, 2, 0]),  # 1/p = 5/3, 10/3, 10; mean 5
        ("median", [1 / 3, 2 / 3, 2, 0]),  # 0.3/p = 0.5, 1, 3; mean 1.5: same as inverse
        ("enet", [0.4289069807, 0.7452892297, 1.8258037896, 0]),  # 1/ln(1.02 + p), mean-normalised
    ],
)
def test_class_weights_known_answers(method: str, expected: list[float]) -> None:
    weights = class_weights(COUNTS, method)
    assert weights.dtype == np.float32
    np.testing.assert_allclose(weights, expected, rtol=1e-6)
    assert weights[:3].mean() == pytest.approx(1.0)


def test_enet_constant_bounds_the_weights() -> None:
    raw = class_weights(np.array([999_999, 1]), "enet", enet_c=1.5)
    # 1/ln(1.5 + ~1) and 1/ln(1.5 + ~0): the rare class gets at most ln(2.5)/ln(1.5) = 2.26x
    assert raw[1] / raw[0] == pytest.approx(np.log(2.5 - 1e-6) / np.log(1.5 + 1e-6), rel=1e-5)


def test_class_weights_bad_input() -> None:
    with pytest.raises(ConfigError, match=r"one of \('none', 'inverse', 'median', 'enet'\), got 'sqrt'"):
        class_weights(COUNTS, "sqrt")
    with pytest.raises(ConfigError, match="positive sum"):
        class_weights(np.zeros(19), "median")
    with pytest.raises(ConfigError, match="enet_c must be > 1"):
        class_weights(COUNTS, "enet", enet_c=0.5)


def test_median_frequency_uses_the_pixels_of_images_containing_the_class(two_labels: list[Sample]) -> None:
    from segkit.data.stats import class_statistics

    stats = class_statistics(two_labels)
    # image a is 4x4 = 16 pixels, image b is 2x3 = 6 pixels
    assert stats["image_pixels"][0] == 16 + 6 and stats["image_pixels"][13] == 16 and stats["image_pixels"][2] == 6
    # road 10/22, car 4/16, bicycle 3/22, building 1/6: median of these / each, mean-normalised
    freq = np.array([10 / 22, 4 / 16, 3 / 22, 1 / 6])
    raw = np.median(freq) / freq
    weights = class_weights(stats["pixels"], "median", image_pixels=stats["image_pixels"])
    np.testing.assert_allclose(weights[[0, 13, 18, 2]], raw / raw.mean(), rtol=1e-6)
    assert not np.allclose(weights, class_weights(stats["pixels"], "inverse"))
