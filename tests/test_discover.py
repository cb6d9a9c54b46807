"""Data discovery: every supported layout, the resolution order, and every bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from segkit.data.discover import (
    DataRoots,
    candidate_roots,
    find_data_roots,
    list_samples,
    list_splits,
    resolve_data_roots,
)
from segkit.errors import DataError
from segkit.kaggle_env import KAGGLE_INPUT_ENV


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No real data may leak in: no $CITYSCAPES_DATASET, an empty Kaggle mount, cwd in tmp."""
    monkeypatch.delenv("CITYSCAPES_DATASET", raising=False)
    monkeypatch.setenv(KAGGLE_INPUT_ENV, str(tmp_path / "kaggle_input"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return tmp_path


def _move(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(src), str(dst))
    return dst


# --- layouts ------------------------------------------------------------------------------


def test_official_layout(tiny_cityscapes: Path) -> None:
    roots = find_data_roots(tiny_cityscapes)
    assert roots == DataRoots(tiny_cityscapes, tiny_cityscapes)
    assert list_splits(roots) == ["train", "val"]
    samples = list_samples(roots, "train")
    assert [s.stem for s in samples] == [
        "aachen_000000_000019",
        "aachen_000002_000019",
        "bremen_000001_000019",
        "bremen_000003_000019",
    ]
    first = samples[0]
    assert first.city == "aachen" and first.label_format == "labelIds"
    assert first.image == tiny_cityscapes / "leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png"
    assert first.label == tiny_cityscapes / "gtFine/train/aachen/aachen_000000_000019_gtFine_labelIds.png"
    assert len(list_samples(roots, "val")) == 2
    assert "Cityscapes" in roots.describe() and str(tiny_cityscapes) in roots.describe()


def test_root_may_be_leftimg8bit_itself_or_a_parent(tiny_cityscapes: Path, tmp_path: Path) -> None:
    assert find_data_roots(tiny_cityscapes / "leftImg8bit").image_root == tiny_cityscapes
    nested = _move(tiny_cityscapes, tmp_path / "outer" / "cityscapes")
    assert find_data_roots(tmp_path / "outer") == DataRoots(nested, nested)


def test_unzipped_twice_leftimg8bit_inside_leftimg8bit(tiny_cityscapes: Path) -> None:
    images = tiny_cityscapes / "leftImg8bit"
    _move(images, tiny_cityscapes / "tmp" / "leftImg8bit")
    _move(tiny_cityscapes / "tmp", images)  # now leftImg8bit/leftImg8bit/train/...
    roots = find_data_roots(tiny_cityscapes)
    assert roots.image_root == images and roots.label_root == tiny_cityscapes
    assert len(list_samples(roots, "train")) == 4


def test_labels_trainids_preferred(cityscapes_factory) -> None:
    root = cityscapes_factory(train_ids=True)
    samples = list_samples(find_data_roots(root), "train")
    assert {s.label_format for s in samples} == {"labelTrainIds"}
    assert all(s.label.name.endswith("_gtFine_labelTrainIds.png") for s in samples)


def test_kaggle_two_datasets_slug_convention(cityscapes_factory, isolated: Path) -> None:
    root = cityscapes_factory()
    kaggle = isolated / "kaggle_input"
    _move(root / "leftImg8bit", kaggle / "cityscapes-leftimg8bit-trainvaltest" / "leftImg8bit")
    _move(root / "gtFine", kaggle / "gtfine-trainvaltest" / "gtFine")
    (kaggle / "some-other-dataset" / "images").mkdir(parents=True)
    roots = find_data_roots()
    assert roots.image_root == kaggle / "cityscapes-leftimg8bit-trainvaltest"
    assert roots.label_root == kaggle / "gtfine-trainvaltest"
    assert len(list_samples(roots, "train")) == 4


def test_kaggle_datasets_owner_slug_convention(cityscapes_factory, isolated: Path) -> None:
    root = cityscapes_factory()
    slug = isolated / "kaggle_input" / "datasets" / "someone" / "cityscapes"
    _move(root / "leftImg8bit", slug / "leftImg8bit")
    _move(root / "gtFine", slug / "gtFine")
    assert find_data_roots() == DataRoots(slug, slug)


def test_kaggle_prefers_labels_next_to_images(cityscapes_factory, isolated: Path) -> None:
    kaggle = isolated / "kaggle_input"
    _move(cityscapes_factory(), kaggle / "b-full")
    _move(cityscapes_factory() / "gtFine", kaggle / "a-labels-only" / "gtFine")
    assert find_data_roots() == DataRoots(kaggle / "b-full", kaggle / "b-full")


def test_search_is_bounded_in_depth(cityscapes_factory, isolated: Path) -> None:
    _move(cityscapes_factory(), isolated / "kaggle_input" / "a" / "b" / "c" / "d" / "e" / "deep")
    assert find_data_roots() is None


def test_environment_variable(tiny_cityscapes: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYSCAPES_DATASET", str(tiny_cityscapes))
    assert candidate_roots(None)[0] == tiny_cityscapes
    assert find_data_roots() == DataRoots(tiny_cityscapes, tiny_cityscapes)


def test_environment_variable_pointing_nowhere_raises(monkeypatch, isolated: Path) -> None:
    monkeypatch.setenv("CITYSCAPES_DATASET", str(isolated / "missing"))
    with pytest.raises(DataError, match=r"\$CITYSCAPES_DATASET") as err:
        resolve_data_roots(synthetic_dir=isolated / "synth")
    assert "does not exist" in str(err.value)
    assert not (isolated / "synth").exists()


def test_local_data_cityscapes(cityscapes_factory, isolated: Path) -> None:
    local = _move(cityscapes_factory(), isolated / "work" / "data" / "cityscapes")
    assert find_data_roots() == DataRoots(Path("data/cityscapes"), Path("data/cityscapes"))
    assert list_samples(find_data_roots(), "val")[0].image.resolve().is_relative_to(local)


def test_explicit_root_wins_over_environment(cityscapes_factory, monkeypatch) -> None:
    given, other = cityscapes_factory(), cityscapes_factory()
    monkeypatch.setenv("CITYSCAPES_DATASET", str(other))
    assert candidate_roots(given) == [given]
    assert find_data_roots(given).image_root == given


def test_nothing_found_in_auto_mode_returns_none() -> None:
    assert find_data_roots() is None


# --- explicit roots that are not usable ---------------------------------------------------


def test_explicit_missing_root_raises_with_layout_and_fix(isolated: Path) -> None:
    with pytest.raises(DataError) as err:
        resolve_data_roots(isolated / "nope", synthetic_dir=isolated / "synth")
    message = str(err.value)
    assert str(isolated / "nope") in message and "does not exist" in message
    assert "leftImg8bit/{train,val}/<city>" in message and "Fix:" in message
    assert not (isolated / "synth").exists(), "an explicit root must never fall back to synthetic"


def test_labels_only_needs_need_images_false(tiny_cityscapes: Path) -> None:
    shutil.rmtree(tiny_cityscapes / "leftImg8bit")
    with pytest.raises(DataError, match="expected leftImg8bit/ and gtFine/"):
        find_data_roots(tiny_cityscapes)
    roots = find_data_roots(tiny_cityscapes, need_images=False)
    assert "labels only" in roots.describe()
    samples = list_samples(roots, "val", need_images=False)
    assert len(samples) == 2 and all(s.image is None for s in samples)
    assert list_splits(roots) == ["train", "val"]


# --- bad split contents -------------------------------------------------------------------


def test_missing_split_lists_existing_ones(tiny_cityscapes: Path) -> None:
    with pytest.raises(DataError, match=r"split 'test' not found.*\['train', 'val'\]"):
        list_samples(find_data_roots(tiny_cityscapes), "test")


def test_no_images_says_what_is_there_instead(tiny_cityscapes: Path) -> None:
    for png in (tiny_cityscapes / "leftImg8bit" / "val").rglob("*.png"):
        png.rename(png.with_suffix(".jpg"))
    with pytest.raises(DataError) as err:
        list_samples(find_data_roots(tiny_cityscapes), "val")
    message = str(err.value)
    assert "<city>/*_leftImg8bit.png" in message and "leftImg8bit.jpg" in message
    assert str(tiny_cityscapes / "leftImg8bit" / "val") in message and "Fix:" in message


def test_flat_split_without_city_folders_gets_a_fix(tiny_cityscapes: Path) -> None:
    val = tiny_cityscapes / "leftImg8bit" / "val"
    for png in list(val.rglob("*.png")):
        png.rename(val / png.name)
    with pytest.raises(DataError, match="Fix: move the files into <city>/ subfolders"):
        list_samples(find_data_roots(tiny_cityscapes), "val")


def test_images_without_labels_are_named(cityscapes_factory) -> None:
    root = cityscapes_factory(color=True)
    (root / "gtFine/train/bremen/bremen_000003_000019_gtFine_labelIds.png").unlink()
    (root / "gtFine/train/aachen/aachen_000000_000019_gtFine_labelIds.png").unlink()
    with pytest.raises(DataError) as err:
        list_samples(find_data_roots(root), "train")
    message = str(err.value)
    assert "2 of 4 images have no label file" in message
    assert "aachen_000000_000019_leftImg8bit.png" in message
    assert "bremen_000003_000019_leftImg8bit.png" in message
    assert "colour masks are visualisations" in message  # the computed fix


def test_labels_without_images_are_named(tiny_cityscapes: Path) -> None:
    (tiny_cityscapes / "leftImg8bit/val/bremen/bremen_000001_000019_leftImg8bit.png").unlink()
    with pytest.raises(DataError, match=r"(?s)1 label files have no image.*bremen_000001_000019_gtFine"):
        list_samples(find_data_roots(tiny_cityscapes), "val")


# --- synthetic fallback -------------------------------------------------------------------


def test_synthetic_fallback_is_loud_and_reused(isolated: Path, caplog: pytest.LogCaptureFixture) -> None:
    synth = isolated / "work" / "synth"
    with pytest.warns(UserWarning, match="SYNTHETIC data set"):
        roots = resolve_data_roots(synthetic_dir=synth, synthetic_size=(64, 128), num_train=2, num_val=1)
    assert roots.synthetic and roots.image_root == synth
    assert "not Cityscapes" in caplog.text and "CITYSCAPES_DATASET" in caplog.text
    assert "SYNTHETIC" in roots.describe()
    assert len(list_samples(roots, "train")) == 2 and len(list_samples(roots, "val")) == 1
    stamp = next(synth.rglob("*_leftImg8bit.png")).stat().st_mtime_ns
    with pytest.warns(UserWarning, match="SYNTHETIC"):
        again = resolve_data_roots(synthetic_dir=synth, synthetic_size=(64, 128), num_train=2, num_val=1)
    assert again == roots
    assert next(synth.rglob("*_leftImg8bit.png")).stat().st_mtime_ns == stamp
    with pytest.warns(UserWarning, match="SYNTHETIC"):
        bigger = resolve_data_roots(synthetic_dir=synth, synthetic_size=(64, 128), num_train=3, num_val=1)
    assert len(list_samples(bigger, "train")) == 3  # other parameters: regenerated, not stale
