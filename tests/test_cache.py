"""The preprocessing cache: same pixels as the PNG path, a manifest that detects changed sources."""

from __future__ import annotations

import json
import logging
import os
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from segkit.cli import main as cli_main
from segkit.data.cache import (
    CachedDataset,
    cache_dir_candidates,
    find_cache,
    prepare_cache,
    read_manifest,
)
from segkit.data.cityscapes import CityscapesDataset
from segkit.data.discover import find_data_roots, list_samples
from segkit.data.transforms import eval_transform, train_transform
from segkit.errors import DataError
from segkit.labels import LABEL_TO_TRAIN

SIZE = (32, 64)


@pytest.fixture
def data(cityscapes_factory) -> Path:
    return cityscapes_factory(splits={"train": 5, "val": 2}, size=(64, 128))


def test_cached_items_equal_png_items_for_the_same_seed(data):
    roots = find_data_roots(data)
    cache = prepare_cache(roots, SIZE, workers=2)
    assert cache == data.resolve() / "segkit_cache" / "32x64"  # the data root is writable
    samples = list_samples(roots, "train")
    for make in (lambda: train_transform(SIZE, (0.5, 2.0)), lambda: eval_transform(SIZE)):
        png, cached = CityscapesDataset(samples, make()), CachedDataset(cache, "train", make(), samples)
        for i in range(len(samples)):
            a, b = png[(i, 1000 + i)], cached[(i, 1000 + i)]
            assert a["name"] == b["name"]
            assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])


def test_arrays_and_manifest(data):
    roots = find_data_roots(data)
    cache = prepare_cache(roots, SIZE, splits=("train",))
    images = np.load(cache / "train_images.npy", mmap_mode="r")
    masks = np.load(cache / "train_masks.npy", mmap_mode="r")
    assert isinstance(images, np.memmap) and images.dtype == np.uint8 and images.shape == (5, 32, 64, 3)
    assert masks.dtype == np.uint8 and masks.shape == (5, 32, 64)
    sample = list_samples(roots, "train")[2]
    label_ids = np.array(Image.open(sample.label))
    expected = cv2.resize(LABEL_TO_TRAIN[label_ids], (64, 32), interpolation=cv2.INTER_NEAREST_EXACT)
    assert np.array_equal(masks[2], expected)  # labelIds -> trainIds, then nearest-exact
    rgb = np.array(Image.open(sample.image))
    assert np.array_equal(images[2], cv2.resize(rgb, (64, 32), interpolation=cv2.INTER_AREA))
    manifest = read_manifest(cache)
    assert manifest["image_size"] == [32, 64] and list(manifest["splits"]) == ["train"]
    record = manifest["splits"]["train"]["sources"][2]
    assert record["label"] == str(sample.label.resolve()) and record["label_format"] == "labelIds"
    assert record["image_mtime_ns"] == sample.image.stat().st_mtime_ns and (record["height"], record["width"]) == (
        64,
        128,
    )
    assert manifest["label_mapping"]["lut"] == LABEL_TO_TRAIN.tolist()


def test_find_cache_matches_subsets_and_refuses_other_sizes(data):
    roots = find_data_roots(data)
    cache = prepare_cache(roots, SIZE)
    samples = list_samples(roots, "train")
    assert find_cache(samples, SIZE) == cache
    assert find_cache(samples[:3], SIZE) == cache  # --max-train-images
    assert find_cache(list_samples(roots, "val"), SIZE) == cache
    assert find_cache(samples, (64, 128)) is None  # no cache at that size
    subset = CachedDataset(cache, "train", samples=samples[1:3])
    assert len(subset) == 2 and subset[0]["name"] == samples[1].stem and subset[1]["mask"].shape == SIZE


def test_changed_source_is_detected_logged_and_rebuilt(data, caplog):
    roots = find_data_roots(data)
    cache = prepare_cache(roots, SIZE)
    samples = list_samples(roots, "train")
    val_written = (cache / "val_images.npy").stat().st_mtime_ns
    label = samples[1].label
    Image.fromarray(np.full((64, 128), 7, np.uint8)).save(label)  # every pixel road now
    os.utime(label, ns=(label.stat().st_mtime_ns + 10**9,) * 2)
    with caplog.at_level(logging.WARNING, logger="segkit"):
        assert find_cache(samples, SIZE) is None
    assert label.name in caplog.text and "segkit prepare --data-root" in caplog.text
    with pytest.raises(DataError, match="changed since the cache was built"):
        find_cache(samples, SIZE, cache_dir=cache)
    prepare_cache(roots, SIZE)  # rebuilds train only
    assert (cache / "val_images.npy").stat().st_mtime_ns == val_written
    assert find_cache(samples, SIZE) == cache
    assert (CachedDataset(cache, "train", eval_transform(None))[1]["mask"] == 0).all()  # road = trainId 0


def test_new_image_makes_the_cache_stale(data, caplog):
    roots = find_data_roots(data)
    prepare_cache(roots, SIZE, splits=("train",))
    first = list_samples(roots, "train")[0]
    stem = first.stem.replace("000000", "000099")
    (first.image.parent / f"{stem}_leftImg8bit.png").write_bytes(first.image.read_bytes())
    (first.label.parent / f"{stem}_gtFine_labelIds.png").write_bytes(first.label.read_bytes())
    with caplog.at_level(logging.WARNING, logger="segkit"):
        assert find_cache(list_samples(roots, "train"), SIZE) is None
    assert f"{stem}_leftImg8bit.png is new" in caplog.text


def test_read_only_root_falls_back_to_kaggle_working(data, tmp_path, monkeypatch):
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Batch")
    monkeypatch.setenv("SEGKIT_KAGGLE_WORKING", str(tmp_path / "working"))
    roots = find_data_roots(data)
    in_root, fallback = cache_dir_candidates(roots.image_root, SIZE)
    assert in_root.parent.parent == data.resolve() and fallback.is_relative_to(tmp_path / "working" / "segkit_cache")
    prepare_cache(roots, SIZE, splits=("train",), out=fallback)
    assert find_cache(list_samples(roots, "train"), SIZE) == fallback  # found without being told where


def test_dataset_pickles_without_its_arrays(data):
    cache = prepare_cache(find_data_roots(data), SIZE, splits=("train",))
    ds = CachedDataset(cache, "train", train_transform(SIZE))
    first = ds[(0, 5)]
    copy = pickle.loads(pickle.dumps(ds))  # what a spawned DataLoader worker receives
    assert ds._arrays is not None and copy._arrays is None  # the copy re-opens the memory maps
    assert torch.equal(copy[(0, 5)]["image"], first["image"])
    with pytest.raises(DataError, match="no 'test' split"):
        CachedDataset(cache, "test")


def test_prepare_cli(data, capsys):
    out = data / "my_cache"
    assert (
        cli_main(
            ["prepare", "--data-root", str(data), "--image-size", "32", "64", "--splits", "val", "--out", str(out)]
        )
        == 0
    )
    assert "val 2 images at 32x64" in capsys.readouterr().out
    assert json.loads((out / "manifest.json").read_text())["splits"]["val"]["count"] == 2
    assert find_cache(list_samples(find_data_roots(data), "val"), SIZE, cache_dir=out) == out


def test_training_with_the_cache_equals_training_from_pngs(cityscapes_factory, tmp_path, caplog):
    from segkit.config import TrainConfig
    from segkit.engine import fit

    data = cityscapes_factory(splits={"train": 4, "val": 2}, size=(64, 128))
    prepare_cache(find_data_roots(data), SIZE)
    common = {
        "data_root": str(data),
        "base_channels": 8,
        "depth": 2,
        "image_size": SIZE,
        "epochs": 2,
        "batch_size": 2,
        "lr": 3e-3,
        "num_workers": 0,
        "num_vis": 1,
        "eval_resolution": "train",
        "scale_range": (0.5, 2.0),
    }
    with caplog.at_level(logging.INFO, logger="segkit"):
        cached = fit(TrainConfig(run_dir=str(tmp_path / "cached"), **common))
    assert "train data: cache" in caplog.text and "val data: cache" in caplog.text
    plain = fit(TrainConfig(run_dir=str(tmp_path / "plain"), cache="off", **common))
    for a, b in zip(cached.history, plain.history):  # same pixels, same seeds: same training
        assert a["train_loss"] == b["train_loss"] and a["miou"] == b["miou"]
