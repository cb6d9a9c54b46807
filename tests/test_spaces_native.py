"""Every built-in label space in the tree its data set ships in, end to end with no flags: the space
is found (from the layout or the data set's own description), the label files are read in it, and
the truth written as predictions in each format (`labelIds` = the data set's own values, `trainIds`
= class indices, `color` = the space's colours) scores 1.0 through `segkit evaluate --predictions`.

The native trees are written by tests/test_layouts_more.py's writers (tiny real PNG/JPEG files).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_layouts_more import SIZE, _photo, _values, ade20k, camvid, voc

from segkit.config import EvalConfig, TrainConfig
from segkit.data.cityscapes import read_label
from segkit.data.discover import find_data_roots, list_samples
from segkit.data.layouts import layouts_of
from segkit.data.spaces import space_of
from segkit.errors import ConfigError
from segkit.evaluation.command import run_evaluation
from segkit.labels import builtin_space


def mapillary_with_config(root: Path) -> Path:
    """Mapillary Vistas v1.2 with its own config_v1.2.json (the built-in's names and colours, written
    as the data set's file is): the run must take the space from that file."""
    space = builtin_space("mapillary-v1.2")
    labels = [
        {"name": n, "readable": n, "color": list(map(int, c)), "evaluate": True}
        for n, c in zip(space.names, space.palette)
    ]
    labels.append({"name": "void--unlabeled", "readable": "Unlabeled", "color": [0, 0, 0], "evaluate": False})
    (root / "config_v1.2.json").parent.mkdir(parents=True, exist_ok=True)
    (root / "config_v1.2.json").write_text(json.dumps({"labels": labels, "version": "1.2"}))
    for split, stems in {"training": ["m_a", "m_b"], "validation": ["m_c", "m_d"]}.items():
        for i, stem in enumerate(stems):
            _photo(root / split / "images" / f"{stem}.jpg", i)
            _values(root / split / "labels" / f"{stem}.png", len(labels) - 1, i, palette=True)
    return root


def camvid_kaggle_full(root: Path) -> Path:
    """Kaggle's CamVid copy: RGB masks `<frame>_L.png` in the colours its class_dict.csv lists."""
    rows = [("Sky", (128, 128, 128)), ("Building", (128, 0, 0)), ("Road", (128, 64, 128)), ("Void", (0, 0, 0))]
    (root / "class_dict.csv").parent.mkdir(parents=True, exist_ok=True)
    (root / "class_dict.csv").write_text("name,r,g,b\n" + "".join(f"{n},{r},{g},{b}\n" for n, (r, g, b) in rows))
    colours = np.array([c for _, c in rows], np.uint8)
    for split, stems in {"train": ["k_a", "k_b"], "val": ["k_c", "k_d"]}.items():
        for i, stem in enumerate(stems):
            _photo(root / split / f"{stem}.png", i)
            (root / f"{split}_labels").mkdir(parents=True, exist_ok=True)
            mask = colours[np.random.default_rng(i).integers(0, len(rows), SIZE)]
            Image.fromarray(mask).save(root / f"{split}_labels" / f"{stem}_L.png")
    return root


# name -> (writer, the space the run must use, where it must come from)
NATIVE = {
    "camvid": (camvid, "camvid", "layout"),
    "camvid-kaggle": (camvid_kaggle_full, "class_dict", "class_dict.csv"),
    "mapillary-v1.2": (mapillary_with_config, "mapillary-v1.2", "config_v1.2.json"),
    "ade20k": (ade20k, "ade20k", "layout"),
    "pascal-voc": (voc, "pascal-voc", "layout"),
}


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CITYSCAPES_DATASET", raising=False)
    monkeypatch.setenv("SEGKIT_KAGGLE_INPUT", str(tmp_path / "kaggle_input"))
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("case", list(NATIVE))
def test_truth_as_predictions_scores_one_in_every_format_in_the_native_tree(case, tmp_path):
    write, expected_space, source = NATIVE[case]
    data = write(tmp_path / "data")
    roots = find_data_roots(data, layouts=layouts_of(TrainConfig()))
    space, said = space_of("", roots)
    assert expected_space in space.name and source in said, (space.name, said)
    samples = list_samples(roots, "val")
    assert samples
    for fmt in ("labelIds", "trainIds", "color"):
        if fmt == "color" and case == "ade20k":  # its palette gives road and skyscraper one colour
            with pytest.raises(ConfigError, match="same colour"):
                space.colors_to_index(np.zeros((1, 1, 3), np.uint8))
            continue
        out = tmp_path / f"pred-{fmt}"
        out.mkdir()
        for sample in samples:
            index = read_label(sample.label, sample.label_format, space=space)  # (H, W) 0..N-1, 255
            array = {"labelIds": space.to_values(index), "trainIds": index, "color": space.to_color(index)}[fmt]
            Image.fromarray(array).save(out / f"{sample.stem}_{fmt}.png")
        summary, _ = run_evaluation(EvalConfig(data_root=str(data), predictions=str(out), format=fmt, split="val"))
        assert summary["miou"] == pytest.approx(1.0), (case, fmt, summary["miou"])
        assert summary["protocol"]["label_space"] == space.tag


@pytest.mark.parametrize("case", ["camvid", "ade20k", "pascal-voc", "mapillary-v1.2"])
def test_values_round_trip_through_the_class_index(case, tmp_path):
    """What `predict --format labelIds` writes equals the data set's own label file wherever the
    file holds an evaluated class."""
    write = NATIVE[case][0]
    data = write(tmp_path / "data")
    roots = find_data_roots(data, layouts=layouts_of(TrainConfig()))
    space, _ = space_of("", roots)
    for sample in list_samples(roots, "val"):
        index = read_label(sample.label, sample.label_format, space=space)
        stored = np.array(Image.open(sample.label))
        kept = index != 255
        assert kept.any() and np.array_equal(space.to_values(index)[kept], stored[kept])
