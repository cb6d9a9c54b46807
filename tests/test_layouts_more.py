"""The layouts other label spaces ship in: CamVid (SegNet's release and Kaggle's colour-mask copy),
Mapillary Vistas (v1.2 and the 2.0 archive), ADE20K and Pascal VOC (splits from list files). Each is
written by the test as real PNG/JPEG files in its native tree and must be found with no flags, with
its splits as the data set names them, its label space and its label format; incomplete copies are
refused with the tree expected and what was found."""

from __future__ import annotations

import json
from pathlib import Path

import conftest
import numpy as np
import pytest
from PIL import Image
from test_layouts import isolated  # noqa: F401  (autouse: no real data leaks in)

from segkit.config import TrainConfig
from segkit.data.cityscapes import read_label, read_label_values
from segkit.data.discover import DataRoots, find_data_roots, list_samples, list_splits
from segkit.data.layouts import BUILT_IN, layouts_for, layouts_of
from segkit.errors import DataError

SIZE = (24, 32)  # (H, W): a few frames at a small size


# ----------------------------------------------------------------------------- writing the native trees


def _photo(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (*SIZE, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)  # .png or .jpg by the name


def _values(path: Path, top: int, seed: int, palette: bool = False, border: bool = False) -> np.ndarray:
    """A label file of class values 0..top (grey, or palette: the value is the index; `border`: first row 255)
    and the values written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    values = np.random.default_rng(seed).integers(0, top + 1, SIZE, dtype=np.uint8)
    values[0, :] = 255 if border else values[0, :]
    image = Image.frombytes("P" if palette else "L", SIZE[::-1], values.tobytes())
    if palette:  # colours unlike the indices, so that reading colours instead would show
        image.putpalette([c for i in range(256) for c in ((i * 37) % 256, (i * 91) % 256, (i * 53) % 256)])
    image.save(path)
    return values


def _colours(path: Path, seed: int) -> None:
    """An RGB colour mask of a few CamVid colours."""
    path.parent.mkdir(parents=True, exist_ok=True)
    palette = np.array([(128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128)], np.uint8)
    Image.fromarray(palette[np.random.default_rng(seed).integers(0, 4, SIZE)]).save(path)


CAMVID_FRAMES = {"train": ["0001TP_006690", "0001TP_006720", "0006R0_f00930"], "val": ["0016E5_07959"]}
CAMVID_FRAMES["test"] = ["0001TP_008550", "Seq05VD_f00000"]


def camvid(root: Path, skip: tuple[str, ...] = ()) -> Path:
    """SegNet's CamVid: train/ trainannot/ val/ valannot/ test/ testannot/, the same names in both (values 0..11)."""
    for split, stems in CAMVID_FRAMES.items():
        for i, stem in enumerate(stems):
            if split not in skip:
                _photo(root / split / f"{stem}.png", i)
            if f"{split}annot" not in skip:
                _values(root / f"{split}annot" / f"{stem}.png", 11, i)
    return root


def camvid_kaggle(root: Path) -> Path:
    """Kaggle's CamVid: train/ train_labels/<frame>_L.png (RGB colour masks) ..., class_dict.csv in the root."""
    for split, stems in CAMVID_FRAMES.items():
        for i, stem in enumerate(stems):
            _photo(root / split / f"{stem}.png", i)
            _colours(root / f"{split}_labels" / f"{stem}_L.png", i)
    (root / "class_dict.csv").write_text("name,r,g,b\nSky,128,128,128\nBuilding,128,0,0\nRoad,128,64,128\n")
    return root


MAPILLARY_FRAMES = {"training": ["-0a1b2c3d4e5f6g7h", "AbCdEf012345_xyz"], "validation": ["Zz9_yY8xX7wW6vV5"]}


def mapillary(root: Path, folders: tuple[str, ...] = ("labels",)) -> Path:
    """Mapillary Vistas: <split>/images/*.jpg with palette PNGs in each of `folders` (labels, v1.2/labels, ...)."""
    for split, stems in MAPILLARY_FRAMES.items():
        for i, stem in enumerate(stems):
            _photo(root / split / "images" / f"{stem}.jpg", i)
            for folder in folders:
                _values(root / split / folder / f"{stem}.png", 65, i, palette=True)
    _photo(root / "testing" / "images" / "Tt1_unlabelled.jpg", 9)  # the test split ships without labels
    for version in ("v1.2", "v2.0") if "v2.0/labels" in folders else ("v1.2",):
        (root / f"config_{version}.json").write_text(json.dumps({"labels": [{"name": "bird"}], "version": version}))
    return root


def ade20k(root: Path) -> Path:
    """ADE20K SceneParsing: ADEChallengeData2016/images|annotations/training|validation (values 0..150)."""
    base = root / "ADEChallengeData2016"
    for split, kind, n in (("training", "train", 3), ("validation", "val", 2)):
        for i in range(1, n + 1):
            _photo(base / "images" / split / f"ADE_{kind}_{i:08d}.jpg", i)
            _values(base / "annotations" / split / f"ADE_{kind}_{i:08d}.png", 150, i)
    return root


VOC_LISTS = {"train": ["2007_000032", "2007_000039", "2008_000008"], "val": ["2007_000033", "2009_000012"]}


def voc(root: Path) -> Path:
    """Pascal VOC 2012: VOCdevkit/VOC2012/JPEGImages, SegmentationClass (palette PNGs, 255 = border) and
    ImageSets/Segmentation/<split>.txt; JPEGImages also holds photos no segmentation list names."""
    base = root / "VOCdevkit" / "VOC2012"
    lists = {**VOC_LISTS, "trainval": VOC_LISTS["train"] + VOC_LISTS["val"]}
    for i, stem in enumerate(lists["trainval"]):
        _photo(base / "JPEGImages" / f"{stem}.jpg", i)
        _values(base / "SegmentationClass" / f"{stem}.png", 20, i, palette=True, border=True)  # 255: VOC's border
    _photo(base / "JPEGImages" / "2012_004331.jpg", 99)  # a detection-only photo: in no segmentation list
    (base / "SegmentationObject").mkdir(parents=True)
    for split, stems in lists.items():
        path = base / "ImageSets" / "Segmentation" / f"{split}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{s}\n" for s in stems))
    return root


# ----------------------------------------------------------------------------- found with no flags

# name -> (writer, root of the layout below the written folder, layout, space, label format,
#          {split as listed: [stems]}, {split asked for: split as listed}, label folder of the first listed split)
CASES = {
    "camvid": (camvid, "", "camvid", "camvid", "values", CAMVID_FRAMES, {}, "testannot"),
    "camvid-kaggle": (
        camvid_kaggle,
        "",
        "camvid-kaggle",
        "camvid-32",
        "color",
        CAMVID_FRAMES,
        {},
        "test_labels",
    ),
    "mapillary-v1.2": (
        mapillary,
        "",
        "mapillary-v1.2",
        "mapillary-v1.2",
        "values",
        MAPILLARY_FRAMES,
        {"train": "training", "val": "validation"},
        "labels",
    ),
    "ade20k": (
        ade20k,
        "ADEChallengeData2016",
        "ade20k",
        "ade20k",
        "values",
        {"training": [f"ADE_train_{i:08d}" for i in (1, 2, 3)], "validation": ["ADE_val_00000001", "ADE_val_00000002"]},
        {"train": "training", "val": "validation"},
        "training",
    ),
    "pascal-voc": (
        voc,
        "VOCdevkit/VOC2012",
        "pascal-voc",
        "pascal-voc",
        "values",
        {**{k: sorted(v) for k, v in VOC_LISTS.items()}, "trainval": sorted(VOC_LISTS["train"] + VOC_LISTS["val"])},
        {},
        "SegmentationClass",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_layout_is_found_with_no_flags_with_its_splits_space_and_format(case, tmp_path):
    write, below, name, space, label_format, splits, _, label_folder = CASES[case]
    root = write(tmp_path / "data" / case) / below
    roots = find_data_roots(tmp_path, layouts=layouts_of(TrainConfig()))  # a parent: the bounded search
    assert (roots.layout.name, roots.layout.space) == (name, space)
    assert roots.image_root == root and roots.label_root == root and not roots.synthetic
    assert list_splits(roots) == sorted(splits)  # the splits with labels, as the data set names them
    for split, stems in splits.items():
        samples = list_samples(roots, split)
        assert [s.stem for s in samples] == sorted(stems)
        assert all(s.label_format == label_format and s.split == split for s in samples)
        assert all(s.image.is_file() and s.label.is_file() for s in samples)
        assert all(s.image.name.startswith(s.stem) and s.label.name.startswith(s.stem) for s in samples)
    assert list_samples(roots, min(splits))[0].label.parent.name == label_folder


@pytest.mark.parametrize("case", list(CASES))
def test_each_layout_is_found_from_its_own_folder_and_by_its_flag(case, tmp_path):
    write, below, name, *_ = CASES[case]
    root = write(tmp_path / case) / below
    assert find_data_roots(root).layout.name == name  # pointed at the data set itself
    assert find_data_roots(tmp_path / case, layouts=layouts_for(name)).image_root == root
    assert name in BUILT_IN and BUILT_IN[name].space == CASES[case][3]


@pytest.mark.parametrize("case", ["mapillary-v1.2", "ade20k"])
def test_segkit_split_names_read_the_data_sets_own_folders(case, tmp_path):
    write, below, _, _, _, splits, aliases, _ = CASES[case]
    roots = find_data_roots(write(tmp_path / case) / below)
    cfg = TrainConfig()  # train_split train, val_split val: no --train-split needed
    for asked in (cfg.train_split, cfg.val_split):
        folder = aliases[asked]
        samples = list_samples(roots, asked)
        assert [s.stem for s in samples] == sorted(splits[folder]) and {s.split for s in samples} == {asked}
        assert all(folder in s.image.parts for s in samples)
    assert "testing" not in list_splits(roots)  # Mapillary's testing/ has images only


def test_mapillary_2_archive_uses_v2_labels_unless_v1_2_is_named(tmp_path):
    root = mapillary(tmp_path / "vistas", folders=("v1.2/labels", "v2.0/labels"))
    auto = find_data_roots(tmp_path)
    assert (auto.layout.name, auto.layout.space) == ("mapillary-v2.0", "mapillary-v2.0") and auto.image_root == root
    assert all(s.label.parts[-3:-1] == ("v2.0", "labels") for s in list_samples(auto, "train"))
    named = find_data_roots(tmp_path, layouts=layouts_for("mapillary-v1.2"))
    assert named.layout.space == "mapillary-v1.2"
    assert all(s.label.parts[-3:-1] == ("v1.2", "labels") for s in list_samples(named, "val"))


def test_camvid_kaggle_masks_are_colour_and_class_dict_sits_in_the_root(tmp_path):
    roots = find_data_roots(camvid_kaggle(tmp_path / "CamVid"))
    sample = list_samples(roots, "val")[0]
    assert sample.label.name == "0016E5_07959_L.png" and sample.image.name == "0016E5_07959.png"
    assert read_label_values(sample.label).shape == (*SIZE, 3)  # an RGB colour mask
    assert (roots.image_root / "class_dict.csv").is_file()


def test_voc_splits_come_from_the_list_files(tmp_path):
    voc(tmp_path / "pascal")
    for root in (tmp_path / "pascal", tmp_path / "pascal" / "VOCdevkit", tmp_path / "pascal" / "VOCdevkit" / "VOC2012"):
        roots = find_data_roots(root)
        assert roots.layout.name == "pascal-voc" and list_splits(roots) == ["train", "trainval", "val"]
    samples = list_samples(roots, "trainval")
    assert "2012_004331" not in {s.stem for s in samples}  # a photo no segmentation list names
    assert [s.stem for s in list_samples(roots, "val", need_images=False)] == sorted(VOC_LISTS["val"])
    assert {s.city for s in samples} == {""}


def test_palette_labels_are_read_as_their_index_not_their_colour(tmp_path):
    written = _values(tmp_path / "voc_label.png", 20, 3, palette=True, border=True)
    with Image.open(tmp_path / "voc_label.png") as image:
        assert image.mode == "P" and image.getpalette()[3:6] == [37, 91, 53]  # index 1 is drawn (37, 91, 53)
    values = read_label_values(tmp_path / "voc_label.png")
    assert values.shape == SIZE and np.array_equal(values, written) and set(values[0]) == {255}
    labelids = tmp_path / "palette_gtFine_labelIds.png"  # a Cityscapes id file saved with a palette
    ids = np.full(SIZE, 7, np.uint8)
    ids[:, 16:] = 26
    image = Image.frombytes("P", SIZE[::-1], ids.tobytes())
    image.putpalette([255 - (i % 256) for i in range(768)])
    image.save(labelids)
    expected = np.zeros(SIZE, np.uint8)
    expected[:, 16:] = 13
    assert np.array_equal(read_label(labelids, "labelIds"), expected)  # road 0, car 13


def test_record_round_trip_keeps_the_split_names(tmp_path):
    roots = find_data_roots(mapillary(tmp_path / "m"))
    again = DataRoots.from_record(json.loads(json.dumps(roots.record())))
    assert again == roots and again.layout.folder_of("train") == "training"
    assert [s.stem for s in list_samples(again, "val")] == MAPILLARY_FRAMES["validation"]


def test_glob_layout_reads_any_space_with_its_format(tmp_path):
    for i, split in enumerate(("train", "val")):
        _photo(tmp_path / "g" / "img" / split / f"f{i}.jpg", i)
        _values(tmp_path / "g" / "ann" / split / f"f{i}.png", 40, i)
    cfg = TrainConfig(
        data_root=str(tmp_path / "g"),
        image_glob="img/{split}/*.jpg",
        label_glob="ann/{split}/*.png",
        label_format="values",
    )
    roots = find_data_roots(cfg.data_root, layouts=layouts_of(cfg))
    assert [(s.stem, s.label_format) for s in list_samples(roots, "val")] == [("f1", "values")]


def test_images_and_labels_folders_of_other_data_are_not_taken_for_mapillary(tmp_path):
    for split in ("train", "val"):  # a glob user's tree: its split folders are not Mapillary's
        _photo(tmp_path / "mine" / "images" / split / "a.jpg", 0)
        _values(tmp_path / "mine" / "labels" / split / "a.png", 5, 0)
    with pytest.raises(DataError, match="no usable data"):
        find_data_roots(tmp_path / "mine")


# ----------------------------------------------------------------------------- incomplete copies


def test_camvid_with_labels_and_no_images_names_the_tree_and_what_is_there(tmp_path):
    root = camvid(tmp_path / "CamVid", skip=("train", "val", "test"))
    with pytest.raises(DataError) as err:
        find_data_roots(tmp_path)
    message = str(err.value)
    assert f"{root} looks like CamVid (SegNet's release) but is incomplete" in message
    assert "<root>/{split}/*.png" in message and "<root>/{split}annot/*.png" in message  # the tree expected
    assert "found in" in message and "testannot/, trainannot/, valannot/" in message and "Fix:" in message


def test_camvid_without_trainannot_says_which_splits_there_are(tmp_path):
    root = camvid(tmp_path / "CamVid", skip=("trainannot",))
    roots = find_data_roots(root)
    assert list_splits(roots) == ["test", "val"]
    with pytest.raises(DataError) as err:
        list_samples(roots, TrainConfig().train_split)
    message = str(err.value)
    assert f"split 'train' not found: expected the directory {root / 'trainannot'}" in message
    assert "found splits ['test', 'val']" in message and "{split}annot/*.png" in message


def test_voc_list_naming_missing_frames_counts_and_names_the_first(tmp_path):
    root = voc(tmp_path / "p") / "VOCdevkit" / "VOC2012"
    missing = [f"2010_00{i:04d}" for i in range(7)]
    listing = root / "ImageSets" / "Segmentation" / "train.txt"
    listing.write_text(listing.read_text() + "".join(f"{s}\n" for s in missing))
    roots = find_data_roots(root)
    with pytest.raises(DataError) as err:
        list_samples(roots, "train")
    message = str(err.value)
    assert f"7 of 10 frames listed in {listing} have no label file" in message
    assert f"expected {root / 'SegmentationClass' / '<stem>.png'}" in message
    assert ", ".join(missing[:5]) + ", ..." in message and missing[5] not in message and "train.txt" in message
    (root / "SegmentationClass" / f"{VOC_LISTS['val'][0]}.png").unlink()
    with pytest.raises(
        DataError, match=rf"1 of 2 frames listed in .*val.txt have no label file.*{VOC_LISTS['val'][0]}"
    ):
        list_samples(roots, "val")
    _values(root / "SegmentationClass" / f"{VOC_LISTS['val'][0]}.png", 20, 0, palette=True)  # labels complete again
    (root / "JPEGImages" / f"{VOC_LISTS['val'][1]}.jpg").unlink()
    with pytest.raises(DataError, match=r"(?s)1 of 2 frames .* no image file: expected .*JPEGImages/<stem>.jpg.*Fix"):
        list_samples(roots, "val")


def test_voc_without_split_lists_is_incomplete(tmp_path):
    root = voc(tmp_path / "p") / "VOCdevkit" / "VOC2012"
    for path in (root / "ImageSets" / "Segmentation").iterdir():
        path.unlink()
    with pytest.raises(DataError, match=r"(?s)looks like Pascal VOC but is incomplete: no split list.*JPEGImages/"):
        find_data_roots(tmp_path / "p")


def test_ade20k_without_images_is_incomplete(tmp_path):
    root = ade20k(tmp_path / "a") / "ADEChallengeData2016"
    for path in (root / "images" / "training").iterdir():
        path.unlink()
    (root / "images" / "training").rmdir()
    (root / "images" / "validation").rename(root / "images" / "val")  # not ADE20K's name for it
    with pytest.raises(DataError, match=r"(?s)looks like ADE20K.*images for none.*training, validation"):
        find_data_roots(tmp_path / "a")


def test_cityscapes_below_a_generic_labels_folder_is_still_found(tmp_path):
    """labels/ and annotations/ start Mapillary's and ADE20K's trees, and other data may sit in them."""
    root = conftest.write_cityscapes(tmp_path / "kaggle" / "labels" / "cityscapes")
    roots = find_data_roots(tmp_path / "kaggle")
    assert roots.layout.name == "cityscapes" and roots.image_root == root


def test_an_incomplete_copy_beside_a_complete_data_set_is_not_in_the_way(tmp_path):
    camvid(tmp_path / "data" / "old-camvid", skip=("train", "val", "test"))  # labels only
    root = ade20k(tmp_path / "data" / "ade") / "ADEChallengeData2016"
    assert find_data_roots(tmp_path / "data").image_root == root


def test_voc_list_naming_a_frame_twice_names_the_first_repeat(tmp_path):
    # One pass over the list (it was a quadratic scan: 3.3 s for a list of 25,000 frames); the first repeat is named.
    root = voc(tmp_path / "p") / "VOCdevkit" / "VOC2012"
    listing = root / "ImageSets" / "Segmentation" / "train.txt"
    first, second = VOC_LISTS["train"][1], VOC_LISTS["train"][0]
    listing.write_text(listing.read_text() + f"{first}\n{second}\n")
    with pytest.raises(DataError, match=rf"frame '{first}' is in split 'train' twice: {listing} and {listing}"):
        list_samples(find_data_roots(root), "train")
