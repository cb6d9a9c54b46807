"""The synthetic data set: layout, determinism, label validity, difficulty, reuse rules, speed."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segkit.data.synthetic import (
    MANIFEST,
    TRAIN_CITIES,
    VAL_CITIES,
    generate_synthetic,
    render_scene,
)
from segkit.errors import ConfigError, DataError
from segkit.labels import LABEL_TO_TRAIN, LABELS, NUM_CLASSES, label_to_color

SIZE = (64, 128)
VALID_IDS = {lb.id for lb in LABELS if lb.id >= 0}
STEM = re.compile(r"^([a-z][a-z0-9]*)_(\d{6})_(\d{6})$")


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.png"))}


def _scenes(n: int, size=SIZE, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    pairs = [render_scene(np.random.default_rng([seed, 0, i]), *size) for i in range(n)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> Path:
    return generate_synthetic(tmp_path_factory.mktemp("syn") / "set", num_train=4, num_val=2, image_size=SIZE)


def test_official_layout_and_names(small_set: Path) -> None:
    for split, n, cities in (("train", 4, set(TRAIN_CITIES)), ("val", 2, set(VAL_CITIES))):
        images = sorted((small_set / "leftImg8bit" / split).glob("*/*_leftImg8bit.png"))
        assert len(images) == n
        for path in images:
            stem = path.name.removesuffix("_leftImg8bit.png")
            city = STEM.fullmatch(stem).group(1)
            assert city in cities and path.parent.name == city
            gt = small_set / "gtFine" / split / city / stem
            label = np.array(Image.open(f"{gt}_gtFine_labelIds.png"))
            color = np.array(Image.open(f"{gt}_gtFine_color.png"))
            image = np.array(Image.open(path))
            assert image.shape == (*SIZE, 3) and image.dtype == np.uint8
            assert label.shape == SIZE and label.dtype == np.uint8
            np.testing.assert_array_equal(color, label_to_color(label))
    assert not set(TRAIN_CITIES) & set(VAL_CITIES)
    assert json.loads((small_set / MANIFEST).read_text())["complete"] is True


def test_files_hold_render_scene_output_in_rgb(small_set: Path) -> None:
    """Known answer: val image 1 is render_scene with seed (0, val=1, 1); catches RGB/BGR swaps."""
    image, label = render_scene(np.random.default_rng([0, 1, 1]), *SIZE)
    city = VAL_CITIES[0]
    stem = f"{city}_000001_000019"
    on_disk = np.array(Image.open(small_set / "leftImg8bit" / "val" / city / f"{stem}_leftImg8bit.png"))
    np.testing.assert_array_equal(on_disk, image)
    gt = np.array(Image.open(small_set / "gtFine" / "val" / city / f"{stem}_gtFine_labelIds.png"))
    np.testing.assert_array_equal(gt, label)


def test_discover_accepts_the_layout(small_set: Path) -> None:
    from segkit.data.discover import find_data_roots, list_samples

    roots = find_data_roots(small_set)
    assert roots is not None
    assert len(list_samples(roots, "train")) == 4 and len(list_samples(roots, "val")) == 2


def test_same_seed_same_bytes_other_seed_other_images(tmp_path: Path) -> None:
    a = _files(generate_synthetic(tmp_path / "a", num_train=2, num_val=1, image_size=SIZE, seed=3))
    b = _files(generate_synthetic(tmp_path / "b", num_train=2, num_val=1, image_size=SIZE, seed=3))
    c = _files(generate_synthetic(tmp_path / "c", num_train=2, num_val=1, image_size=SIZE, seed=4))
    assert a == b
    assert a.keys() == c.keys()
    assert all(a[k] != c[k] for k in a if k.endswith("_leftImg8bit.png"))


def test_val_images_do_not_depend_on_num_train(tmp_path: Path) -> None:
    few = _files(generate_synthetic(tmp_path / "few", num_train=1, num_val=2, image_size=SIZE))
    many = _files(generate_synthetic(tmp_path / "many", num_train=3, num_val=2, image_size=SIZE))
    val = [k for k in few if k.split("/")[1] == "val"]
    assert len(val) == 6 and all(few[k] == many[k] for k in val)


def test_labels_are_valid_ids_and_cover_most_classes() -> None:
    images, labels = _scenes(8)
    assert images.shape == (8, *SIZE, 3) and labels.shape == (8, *SIZE)
    assert set(np.unique(labels).tolist()) <= VALID_IDS
    train_ids = LABEL_TO_TRAIN[labels]
    evaluated = set(np.unique(train_ids).tolist()) - {255}
    assert len(evaluated) >= 14, f"only {len(evaluated)} of {NUM_CLASSES} classes in 8 scenes"
    assert (train_ids == 255).any(), "no void pixels: ignore_index would never be exercised"


def test_perspective_sky_on_top_road_below() -> None:
    _, labels = _scenes(6)
    rows = np.arange(SIZE[0])[None, :, None]
    for label in labels:
        sky, road = label == 23, label == 7
        assert sky.any() and road.any()
        assert (rows * sky[None]).sum() / sky.sum() < (rows * road[None]).sum() / road.sum()


def test_colour_does_not_determine_the_class() -> None:
    """Cars come in many colours, and a colour-only classifier does badly on new scenes."""
    images, labels = _scenes(12)
    car_means = np.array([img[lab == 26].mean(0) for img, lab in zip(images, labels) if (lab == 26).sum() > 20])
    assert len(car_means) >= 6 and car_means.std(0).min() > 15
    # Colour (8 levels per channel) -> majority class, fitted on 6 scenes, scored on 6 others.
    key = (images // 32).astype(np.int64) @ np.array([64, 8, 1])
    train_ids = LABEL_TO_TRAIN[labels].astype(np.int64)
    votes = np.zeros((512, 256), np.int64)
    np.add.at(votes, (key[:6].ravel(), train_ids[:6].ravel()), 1)
    votes[:, 255] = 0
    test = train_ids[6:] != 255
    accuracy = (votes.argmax(1)[key[6:][test]] == train_ids[6:][test]).mean()
    assert accuracy < 0.6, f"colour alone predicts {accuracy:.0%} of pixels"


@pytest.mark.parametrize("size", [(16, 16), (48, 200), (200, 48), (1024, 2048)])
def test_any_image_size(size: tuple[int, int]) -> None:
    image, label = render_scene(np.random.default_rng(1), *size)
    assert image.shape == (*size, 3) and label.shape == size
    assert set(np.unique(label).tolist()) <= VALID_IDS


def test_same_parameters_reuse_the_set(tmp_path: Path) -> None:
    out = generate_synthetic(tmp_path / "s", num_train=2, num_val=1, image_size=SIZE)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    start = time.perf_counter()
    assert generate_synthetic(tmp_path / "s", num_train=2, num_val=1, image_size=SIZE) == out
    assert time.perf_counter() - start < 1.0
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == before


def test_other_parameters_refused_then_overwritten(tmp_path: Path) -> None:
    out = generate_synthetic(tmp_path / "s", num_train=2, num_val=1, image_size=SIZE)
    (out / "notes.txt").write_text("mine")
    before = _files(out)
    with pytest.raises(DataError, match="overwrite=True"):
        generate_synthetic(out, num_train=3, num_val=1, image_size=SIZE)
    assert _files(out) == before
    generate_synthetic(out, num_train=3, num_val=1, image_size=SIZE, overwrite=True)
    assert len(list(out.glob("leftImg8bit/train/*/*.png"))) == 3
    assert json.loads((out / MANIFEST).read_text())["parameters"]["num_train"] == 3
    assert (out / "notes.txt").read_text() == "mine"


def test_directory_not_made_by_segkit_is_never_touched(tmp_path: Path) -> None:
    foreign = tmp_path / "cityscapes"
    (foreign / "leftImg8bit").mkdir(parents=True)
    (foreign / "leftImg8bit" / "keep.png").write_bytes(b"user data")
    for overwrite in (False, True):
        with pytest.raises(DataError, match="not a synthetic data set"):
            generate_synthetic(foreign, num_train=1, num_val=1, image_size=SIZE, overwrite=overwrite)
    assert (foreign / "leftImg8bit" / "keep.png").read_bytes() == b"user data"


def test_interrupted_set_is_regenerated(tmp_path: Path) -> None:
    out = generate_synthetic(tmp_path / "s", num_train=2, num_val=1, image_size=SIZE)
    complete = _files(out)
    next(out.glob("leftImg8bit/train/*/*.png")).unlink()  # as if killed half-way
    generate_synthetic(out, num_train=2, num_val=1, image_size=SIZE)
    assert _files(out) == complete


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"image_size": (8, 128)}, "image_size"),
        ({"num_train": -1}, "num_train"),
        ({"num_train": 0, "num_val": 0}, "at least one image"),
        ({"cities": ["only"]}, "cities"),
        ({"cities": ["a_b", "val"]}, "cities"),
    ],
)
def test_invalid_parameters_raise_config_error(tmp_path: Path, kwargs: dict, match: str) -> None:
    params = {"num_train": 1, "num_val": 1, "image_size": SIZE} | kwargs
    with pytest.raises(ConfigError, match=match):
        generate_synthetic(tmp_path / "s", **params)
    assert not (tmp_path / "s").exists()


def test_custom_cities_last_one_is_val(tmp_path: Path) -> None:
    out = generate_synthetic(tmp_path / "s", num_train=2, num_val=1, image_size=SIZE, cities=["north", "south", "east"])
    assert {p.name for p in (out / "leftImg8bit" / "train").iterdir()} == {"north", "south"}
    assert {p.name for p in (out / "leftImg8bit" / "val").iterdir()} == {"east"}


def test_twenty_images_at_128x256_are_fast(tmp_path: Path) -> None:
    start = time.perf_counter()
    generate_synthetic(tmp_path / "s", num_train=16, num_val=4, image_size=(128, 256))
    elapsed = time.perf_counter() - start
    assert elapsed < 20.0, f"20 images took {elapsed:.1f} s (expected ~1 s on one free core)"
