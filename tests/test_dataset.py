"""Reading and validating image/label files, the Dataset's items, and the data check."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from segkit.data.cityscapes import CityscapesDataset, check_samples, read_image, read_label
from segkit.data.discover import Sample, find_data_roots, list_samples
from segkit.data.transforms import denormalize, eval_transform, train_transform
from segkit.errors import DataError
from segkit.labels import LABEL_TO_TRAIN, label_to_color


def _samples(root: Path, split: str = "train") -> list[Sample]:
    return list_samples(find_data_roots(root), split)


def _save(path: Path, array: np.ndarray) -> Path:
    Image.fromarray(array).save(path)
    return path


# --- files --------------------------------------------------------------------------------


def test_read_image_is_rgb(tmp_path: Path) -> None:
    rgb = np.zeros((4, 6, 3), dtype=np.uint8)
    rgb[..., 0] = 200  # pure red: a BGR/RGB mix-up would make it blue
    assert np.array_equal(read_image(_save(tmp_path / "red.png", rgb)), rgb)


def test_read_image_corrupt_truncated_or_missing(tmp_path: Path) -> None:
    good = _save(tmp_path / "good.png", np.full((32, 32, 3), 7, dtype=np.uint8))
    truncated = tmp_path / "truncated_leftImg8bit.png"
    truncated.write_bytes(good.read_bytes()[:60])
    with pytest.raises(DataError, match=r"truncated_leftImg8bit\.png \(60 bytes\).*corrupt or truncated"):
        read_image(truncated)
    with pytest.raises(DataError, match=r"image file not found: .*gone\.png"):
        read_image(tmp_path / "gone.png")


def test_read_label_labelids_and_trainids_agree(tiny_cityscapes: Path) -> None:
    sample = _samples(tiny_cityscapes)[0]
    label_ids = np.array(Image.open(sample.label))
    expected = LABEL_TO_TRAIN[label_ids]
    assert np.array_equal(read_label(sample.label, "labelIds"), expected)
    train_file = _save(sample.label.with_name("x_gtFine_labelTrainIds.png"), expected)
    assert np.array_equal(read_label(train_file, "labelTrainIds"), expected)
    assert set(np.unique(expected)) <= set(range(19)) | {255}


def test_colour_mask_as_label_is_rejected(cityscapes_factory) -> None:
    root = cityscapes_factory(color=True)
    colour = next((root / "gtFine").rglob("*_gtFine_color.png"))
    with pytest.raises(DataError, match=r"looks like a colour mask .*_gtFine_color\.png.*labelIds\.png"):
        read_label(colour, "labelIds")


def test_trainid_file_named_labelids_is_rejected(tmp_path: Path) -> None:
    label = np.array([[7, 13], [255, 0]], dtype=np.uint8)  # trainIds 0..18 and 255
    path = _save(tmp_path / "a_gtFine_labelIds.png", label)
    with pytest.raises(DataError) as err:
        read_label(path, "labelIds")
    message = str(err.value)
    assert "holds values labelIds never take (255" in message
    assert "looks like a trainId file" in message and "*_gtFine_labelTrainIds.png" in message


def test_labelids_file_named_trainids_is_rejected(tmp_path: Path) -> None:
    path = _save(tmp_path / "a_gtFine_labelTrainIds.png", np.array([[7, 26]], dtype=np.uint8))
    with pytest.raises(DataError, match=r"holds values 26: expected 0\.\.18 and 255"):
        read_label(path, "labelTrainIds")


def test_sixteen_bit_label_with_small_values_is_accepted(tmp_path: Path) -> None:
    path = _save(tmp_path / "a_gtFine_labelIds.png", np.array([[7, 26]], dtype=np.uint16))
    assert read_label(path, "labelIds").tolist() == [[0, 13]]


def test_size_mismatch_names_both_files(tiny_cityscapes: Path) -> None:
    samples = _samples(tiny_cityscapes)
    _save(samples[1].label, np.full((32, 64), 7, dtype=np.uint8))
    with pytest.raises(DataError) as err:
        CityscapesDataset(samples)[1]
    message = str(err.value)
    assert str(samples[1].image) in message and "64x128" in message
    assert str(samples[1].label) in message and "32x64" in message


# --- dataset ------------------------------------------------------------------------------


def test_item_shapes_dtypes_and_values(tiny_cityscapes: Path) -> None:
    samples = _samples(tiny_cityscapes)
    item = CityscapesDataset(samples)[2]
    assert item["name"] == samples[2].stem
    assert item["image"].shape == (3, 64, 128) and item["image"].dtype == torch.float32
    assert item["mask"].shape == (64, 128) and item["mask"].dtype == torch.int64
    assert np.array_equal(denormalize(item["image"]), read_image(samples[2].image))
    assert np.array_equal(item["mask"].numpy(), read_label(samples[2].label, "labelIds"))
    assert -3 < item["image"].min() < 0 < item["image"].max() < 3  # ImageNet-normalised


def test_resized_items_and_batches(tiny_cityscapes: Path) -> None:
    dataset = CityscapesDataset(_samples(tiny_cityscapes), train_transform((32, 48)))
    batch = next(iter(DataLoader(dataset, batch_size=4)))
    assert batch["image"].shape == (4, 3, 32, 48) and batch["mask"].shape == (4, 32, 48)
    assert batch["mask"].dtype == torch.int64 and len(batch["name"]) == 4
    assert set(batch["mask"].unique().tolist()) <= set(range(19)) | {255}


def test_label_resolution_keeps_the_mask_at_file_size(tiny_cityscapes: Path) -> None:
    sample = _samples(tiny_cityscapes, "val")[0]
    item = CityscapesDataset([sample], eval_transform((32, 64)), label_resolution=True)[0]
    assert item["image"].shape == (3, 32, 64)
    assert item["mask"].shape == (64, 128) and item["mask"].dtype == torch.int64
    assert np.array_equal(item["mask"].numpy(), read_label(sample.label, "labelIds"))


def test_samples_without_images_are_refused(tiny_cityscapes: Path) -> None:
    labels_only = list_samples(find_data_roots(tiny_cityscapes), "val", need_images=False)
    with pytest.raises(DataError, match="need_images=True"):
        CityscapesDataset(labels_only)


def test_workers_get_different_augmentations(tiny_cityscapes: Path) -> None:
    """Forked workers must not replay the same random crops (Albumentations seeds once)."""
    sample = _samples(tiny_cityscapes)[0]
    dataset = CityscapesDataset([sample] * 4, train_transform((32, 32), color_jitter=False))
    torch.manual_seed(0)
    loader = DataLoader(dataset, batch_size=1, num_workers=2)
    masks = [batch["mask"][0] for batch in loader]  # items 0, 2 from worker 0; 1, 3 from worker 1
    assert not torch.equal(masks[0], masks[1]) and not torch.equal(masks[2], masks[3])


# --- data check ---------------------------------------------------------------------------


def test_check_samples_report(cityscapes_factory) -> None:
    root = cityscapes_factory(splits={"train": 3})
    samples = _samples(root)
    report = check_samples(samples)
    assert report["pairs"] == 3 and report["sizes"] == Counter({(64, 128): 3})
    assert report["cities"] == Counter({"aachen": 2, "bremen": 1})
    expected = sorted(set().union(*(np.unique(read_label(s.label, "labelIds")).tolist() for s in samples)))
    assert report["label_values"] == expected
    assert 0 <= report["ignored_fraction"] < 1
    assert check_samples(samples, limit=1)["pairs"] == 1


def test_check_samples_stops_at_the_first_bad_file(tiny_cityscapes: Path) -> None:
    samples = _samples(tiny_cityscapes)
    colour = label_to_color(np.array(Image.open(samples[3].label)))
    _save(samples[3].label, colour)
    check_samples(samples, limit=3)
    with pytest.raises(DataError, match=f"{samples[3].label.name} has 3 channels"):
        check_samples(samples)
