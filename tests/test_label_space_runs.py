"""Training, prediction, evaluation and fine-tuning in another label space than Cityscapes', end to end."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from segkit import labels as L
from segkit.config import EvalConfig, PredictConfig, TrainConfig
from segkit.data.cityscapes import read_label
from segkit.engine import fit
from segkit.errors import ConfigError
from segkit.evaluation.command import run_evaluation
from segkit.evaluation.network import evaluate_split
from segkit.models import model_from_checkpoint
from segkit.predict import predict_images

CAMVID = L.builtin_space("camvid")


def write_camvid(root: Path, splits: dict[str, int], size: tuple[int, int] = (32, 64), seed: int = 0) -> Path:
    """SegNet's CamVid release in miniature: <split>/*.png photos, <split>annot/*.png values 0..10, 11 = void."""
    rng = np.random.default_rng(seed)
    h, w = size
    for split, n in splits.items():
        (root / split).mkdir(parents=True)
        (root / f"{split}annot").mkdir()
        for i in range(n):
            label = np.full((h, w), 3, np.uint8)  # Road
            label[: h // 3] = 0  # Sky
            label[h // 3 : h // 2, : w // 2] = 1  # Building
            label[h // 3 : h // 2, w // 2 :] = 5  # Tree
            x = int(rng.integers(4, w - 12))
            label[h // 2 :, x : x + 6] = 8  # a Car
            label[-2:, :] = 11  # void
            image = CAMVID.to_color(CAMVID.to_index(label)).astype(np.int16) + rng.integers(-20, 20, (h, w, 3))
            name = f"0001TP_{i:06d}.png"
            cv2.imwrite(str(root / split / name), np.clip(image, 0, 255).astype(np.uint8)[..., ::-1])
            cv2.imwrite(str(root / f"{split}annot" / name), label)
    return root


def camvid_config(data: Path, run_dir: Path, **changes) -> TrainConfig:
    base = TrainConfig(
        data_root=str(data),
        layout="glob",
        image_glob="{split}/*.png",
        label_glob="{split}annot/*.png",
        label_format="labelIds",
        classes="camvid",
        run_dir=str(run_dir),
        base_channels=8,
        depth=2,
        image_size=(32, 64),
        epochs=2,
        batch_size=2,
        lr=3e-3,
        num_workers=0,
        num_vis=1,
        log_every=1,
        device="cpu",
    )
    return replace(base, **changes)


@pytest.fixture(scope="module")
def camvid(tmp_path_factory) -> Path:
    return write_camvid(tmp_path_factory.mktemp("camvid"), {"train": 4, "val": 2})


@pytest.fixture(scope="module")
def camvid_run(camvid, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("camvid-run") / "run"
    fit(camvid_config(camvid, run))
    return run


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def test_trains_in_the_camvid_space(camvid_run):
    ckpt = _load(camvid_run / "best_model.pth")
    assert L.space_of_record(ckpt) == CAMVID and ckpt["num_classes"] == 11 and ckpt["label_space"] == "camvid-11"
    assert model_from_checkpoint(ckpt)(torch.zeros(1, 3, 32, 64)).shape[1] == 11
    metrics = json.loads((camvid_run / "metrics.json").read_text())
    assert list(metrics["per_class"]) == list(CAMVID.names)
    assert metrics["protocol"]["label_space"] == "camvid-11"
    record = json.loads((camvid_run / "config.json").read_text())
    assert record["space"]["name"] == "camvid" and "from --classes camvid" in record["space_from"]


def _predict(camvid, camvid_run, out: Path, fmt: str) -> list[Path]:
    cfg = PredictConfig(
        checkpoint=str(camvid_run / "best_model.pth"), img=str(camvid / "val"), output=str(out), format=fmt
    )
    return predict_images(cfg)


def _confusion(pairs: list[tuple[np.ndarray, np.ndarray]], n: int) -> np.ndarray:
    """An independent count: truth row, prediction column, void pixels left out."""
    cm = np.zeros((n, n), np.int64)
    for pred, truth in pairs:
        keep = truth != 11
        np.add.at(cm, (truth[keep], pred[keep]), 1)
    return cm


def _score(camvid, pred_dir: Path, fmt: str, **changes) -> dict:
    cfg = EvalConfig(
        data_root=str(camvid),
        layout="glob",
        image_glob="{split}/*.png",
        label_glob="{split}annot/*.png",
        label_format="labelIds",
        classes="camvid",
        predictions=str(pred_dir),
        format=fmt,
        **changes,
    )
    return run_evaluation(cfg)[0]


def test_predict_writes_camvids_own_values_and_evaluate_counts_them_right(camvid, camvid_run, tmp_path):
    written = _predict(camvid, camvid_run, tmp_path / "pred", "labelIds")
    preds = [np.array(Image.open(p)) for p in written]
    assert all(p.dtype == np.uint8 and set(np.unique(p)) <= set(range(12)) for p in preds)
    truths = [np.array(Image.open(camvid / "valannot" / p.name.replace("_labelIds", ""))) for p in written]
    summary = _score(camvid, tmp_path / "pred", "labelIds")
    expected = _confusion(list(zip(preds, truths)), 11)
    np.testing.assert_array_equal(
        np.array([[v["gt_pixels"]] for v in summary["per_class"].values()])[:, 0], expected.sum(1)
    )
    inter = np.diag(expected)
    union = expected.sum(0) + expected.sum(1) - inter
    ious = [v["iou"] for v in summary["per_class"].values()]
    for k in range(11):
        assert (ious[k] is None) == (union[k] == 0)
        if union[k]:
            assert ious[k] == pytest.approx(inter[k] / union[k])


@pytest.mark.parametrize("fmt", ["labelIds", "trainIds", "color"])
def test_truth_written_as_predictions_scores_one_in_every_format(camvid, tmp_path, fmt):
    out = tmp_path / fmt
    out.mkdir()
    for label_file in sorted((camvid / "valannot").glob("*.png")):
        index = CAMVID.to_index(np.array(Image.open(label_file)))
        array = {"labelIds": CAMVID.to_values(index), "trainIds": index, "color": CAMVID.to_color(index)}[fmt]
        Image.fromarray(array).save(out / f"{label_file.stem}_{fmt}.png")
    summary = _score(camvid, out, fmt)
    assert summary["miou"] == pytest.approx(1.0) and summary["protocol"]["label_space"] == "camvid-11"


def test_predictions_of_the_same_folder_round_trip_through_each_format(camvid, camvid_run, tmp_path):
    scores = {
        fmt: _score(camvid, tmp_path / fmt, fmt)
        for fmt in ("labelIds", "trainIds", "color")
        if _predict(camvid, camvid_run, tmp_path / fmt, fmt)
    }
    assert scores["labelIds"]["miou"] == scores["trainIds"]["miou"] == scores["color"]["miou"]


def test_a_cityscapes_model_on_camvid_data_is_scored_through_the_builtin_map(camvid, tiny_run):
    model = model_from_checkpoint(_load(tiny_run / "best_model.pth"))
    cfg = camvid_config(camvid, Path("unused"))
    from segkit.data.discover import resolve_data_roots
    from segkit.data.layouts import layouts_of

    roots = resolve_data_roots(str(camvid), layouts=layouts_of(cfg))
    summary = evaluate_split(model, roots=roots, image_size=(32, 64), space=CAMVID)
    assert list(summary["per_class"]) == list(CAMVID.names)
    assert "cityscapes->camvid" in summary["protocol"]["class_map"]
    from segkit.metrics import protocol_text

    assert "classes mapped by cityscapes->camvid" in protocol_text(summary)
    with pytest.raises(ConfigError, match="--class-map"):
        evaluate_split(model, roots=roots, image_size=(32, 64), space=L.builtin_space("ade20k"))


def test_fine_tuning_a_cityscapes_checkpoint_onto_camvid_gets_a_new_head(camvid, tiny_run, tmp_path, caplog):
    start = tiny_run / "best_model.pth"
    cfg = camvid_config(camvid, tmp_path / "ft", init_from=str(start), base_channels=4, epochs=1)
    with caplog.at_level("INFO", logger="segkit"):
        fit(cfg)
    assert "the classifier is new for camvid (11 classes), started fresh" in caplog.text
    ckpt = _load(tmp_path / "ft" / "best_model.pth")
    assert L.space_of_record(ckpt) == CAMVID and "classifier is new" in ckpt["pretrained"]["head"]


def test_fine_tuning_with_a_class_map_starts_the_classifier_from_the_mapped_rows(camvid, tiny_run):
    from segkit.models import build_model

    start = _load(tiny_run / "best_model.pth")
    cfg = camvid_config(camvid, Path("unused"), init_from=str(tiny_run / "best_model.pth"), base_channels=4)
    m = L.builtin_map("cityscapes->camvid")
    net = build_model(cfg.model_choice, space=CAMVID, class_map=m)
    own = net.state_dict()
    head = [k for k, v in own.items() if v.shape != start["model"][k].shape]
    assert head  # the classifier's weight (and bias)
    for k in head:
        car = CAMVID.index_of("Car")
        expected = start["model"][k][[13, 14, 15, 16]].float().mean(0)
        torch.testing.assert_close(own[k][car].float(), expected)
    body = [k for k in own if k not in head]
    assert all(torch.equal(own[k], start["model"][k]) for k in body)


def test_resume_in_another_space_is_refused(camvid, tmp_path):
    data = write_camvid(tmp_path / "data", {"train": 2, "val": 1})
    names = ", ".join(f"{{name: {n}, id: {i}}}" for i, n in enumerate(CAMVID.names))
    (data / "classes.yaml").write_text(f"name: mine\nclasses: [{names}]\nignore: [11]\n")
    cfg = camvid_config(data, tmp_path / "run", classes="", epochs=1)
    fit(cfg)
    (data / "classes.yaml").write_text(f"name: mine\nclasses: [{names.replace('Sky', 'Heaven')}]\nignore: [11]\n")
    with pytest.raises(ConfigError, match="trained in the mine .*label space.*--run-dir"):
        fit(replace(cfg, resume=True, epochs=2))


def test_sixteen_bit_and_palette_label_files(tmp_path):
    wide = L.LabelSpace("wide", (L.ClassInfo("a", (300,), (1, 1, 1)), L.ClassInfo("b", (40000,), (2, 2, 2))), (0,))
    label = np.array([[300, 40000, 0]], np.uint16)
    cv2.imwrite(str(tmp_path / "wide.png"), label)
    assert read_label(tmp_path / "wide.png", "labelIds", space=wide).tolist() == [[0, 1, 255]]
    voc = L.builtin_space("pascal-voc")
    im = Image.fromarray(np.array([[0, 15, 255]], np.uint8), mode="P")
    im.putpalette(L.voc_palette().ravel().tolist())
    im.save(tmp_path / "voc.png")  # a palette PNG: the value is the palette index, not its colour
    assert read_label(tmp_path / "voc.png", "labelIds", space=voc).tolist() == [[0, 15, 255]]


def test_segkit_evaluate_of_a_cityscapes_checkpoint_on_camvid_names_the_map(camvid, tiny_run, tmp_path):
    common = {
        "data_root": str(camvid),
        "layout": "glob",
        "image_glob": "{split}/*.png",
        "label_glob": "{split}annot/*.png",
        "label_format": "labelIds",
        "checkpoint": str(tiny_run / "best_model.pth"),
        "device": "cpu",
    }
    summary, _ = run_evaluation(EvalConfig(classes="camvid", output=str(tmp_path / "m.json"), **common))
    assert summary["protocol"]["label_space"] == "camvid-11"
    assert summary["protocol"]["class_map"].startswith("cityscapes->camvid")
    own = tmp_path / "mine.yaml"
    own.write_text(
        "name: mine\nclasses: [{name: a, id: [0, 1, 2, 3, 4, 5]}, {name: b, id: [6, 7, 8, 9, 10]}]\nignore: [11]\n"
    )
    with pytest.raises(ConfigError, match="no built-in map between them.*--class-map"):
        run_evaluation(EvalConfig(classes=str(own), output=str(tmp_path / "n.json"), **common))
    mapping = tmp_path / "map.yaml"
    cs = L.builtin_space("cityscapes").names
    mapping.write_text(
        "from: cityscapes\nto: mine.yaml\nmap: {"
        + ", ".join(f"'{n}': {'a' if i < 10 else 'b'}" for i, n in enumerate(cs))
        + "}\n"
    )
    summary, _ = run_evaluation(
        EvalConfig(classes=str(own), class_map=str(mapping), output=str(tmp_path / "o.json"), **common)
    )
    assert list(summary["per_class"]) == ["a", "b"] and summary["protocol"]["class_map"].startswith("map ")
