"""Scoring prediction folders: equality with the official evaluation script; bad input."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segkit import config, inference
from segkit.errors import ConfigError, DataError
from segkit.evaluation import match_predictions, score_predictions
from segkit.labels import CLASS_NAMES, LABEL_TO_TRAIN

# Predicted labelIds: most evaluated classes, unevaluated ones (0 unlabeled, 4 static, 9 parking:
# void predictions, false negatives officially) and bicycle (33), which no ground truth holds.
# Classes 12..18 (wall, fence, pole, ...) are in neither: left out of the mean.
_PRED_IDS = np.array([7, 8, 11, 21, 23, 24, 26, 33, 0, 4, 9], dtype=np.uint8)


@pytest.fixture(autouse=True)
def _numpy_in1d(monkeypatch):
    """cityscapesscripts 2.3 calls np.in1d, which numpy 2.4 removed; np.isin is its replacement."""
    if not hasattr(np, "in1d"):
        monkeypatch.setattr(np, "in1d", np.isin, raising=False)


def _gt_files(root: Path, kind: str = "labelIds") -> list[Path]:
    return sorted((root / "gtFine" / "val").rglob(f"*_gtFine_{kind}.png"))


def _write_predictions(gt_files: list[Path], out: Path, seed: int = 0, train_ids: bool = False) -> list[Path]:
    """Predictions that agree with the ground truth on ~60% of pixels, random labelIds elsewhere."""
    rng = np.random.default_rng(seed)
    paths = []
    for gt_path in gt_files:
        gt = np.array(Image.open(gt_path))
        pred = np.where(rng.random(gt.shape) < 0.6, gt, rng.choice(_PRED_IDS, size=gt.shape)).astype(np.uint8)
        city = gt_path.name.split("_")[0]
        path = out / city / gt_path.name.replace("gtFine_labelIds", "pred")
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(LABEL_TO_TRAIN[pred] if train_ids else pred).save(path)
        paths.append(path)
    return paths


def _official(pred_files: list[Path], gt_files: list[Path]) -> dict:
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as official

    args = official.CArgs()
    args.__dict__.update(vars(official.args))  # a copy: the module-level args stay untouched
    args.evalInstLevelScore = False  # needs *_instanceIds.png, not part of the IoU
    args.evalPixelAccuracy = False
    args.JSONOutput = False  # would write evaluationResults/ under $CITYSCAPES_DATASET
    args.quiet = True
    return official.evaluateImgLists([str(p) for p in pred_files], [str(g) for g in gt_files], args)


def _write_gt(root: Path, n: int = 4, size: tuple[int, int] = (64, 128), seed: int = 3) -> Path:
    """Official-layout val label files (labelIds, labelTrainIds): bands of a few classes + void."""
    rng = np.random.default_rng(seed)
    ids = np.array([7, 8, 11, 21, 23, 24, 26, 0, 1], dtype=np.uint8)  # 0, 1: ignored in evaluation
    for i in range(n):
        city = ("aachen", "bremen")[i % 2]
        label = np.repeat(rng.choice(ids, size=(8, 1)), size[0] // 8, axis=0).repeat(size[1], axis=1)
        label[rng.random(size) < 0.1] = rng.choice(ids)
        out = root / "gtFine" / "val" / city
        out.mkdir(parents=True, exist_ok=True)
        stem = f"{city}_{i:06d}_000019_gtFine"
        Image.fromarray(label).save(out / f"{stem}_labelIds.png")
        Image.fromarray(LABEL_TO_TRAIN[label]).save(out / f"{stem}_labelTrainIds.png")
    return root


@pytest.fixture
def val_set(tmp_path, monkeypatch):
    root = _write_gt(tmp_path / "cityscapes")
    monkeypatch.setenv("CITYSCAPES_DATASET", str(root))
    monkeypatch.chdir(tmp_path)  # nothing may land in the repository
    return root


def test_equals_official_evaluation(val_set, tmp_path):
    gt_files = _gt_files(val_set)
    pred_files = _write_predictions(gt_files, tmp_path / "pred")
    theirs = _official(pred_files, gt_files)
    ours = score_predictions(tmp_path / "pred", gt_files, split="val", inference="whole")
    for name in CLASS_NAMES:
        official_iou, our_iou = theirs["classScores"][name], ours["per_class"][name]["iou"]
        if math.isnan(official_iou):
            assert our_iou is None, name
        else:
            assert our_iou == pytest.approx(official_iou, abs=1e-6), name
    assert ours["miou"] == pytest.approx(theirs["averageScoreClasses"], abs=1e-6)
    # the test data exercise every case: absent classes, predicted-only bicycle, void predictions
    assert ours["per_class"]["wall"]["iou"] is None and ours["per_class"]["bicycle"]["iou"] == 0.0
    assert ours["protocol"] == {
        "label_space": "cityscapes-19",
        "resolution": "label",
        "inference": "whole",
        "split": "val",
        "images": 4,
        "pred_format": "labelIds",
    }


def test_train_ids_gt_and_predictions_give_the_same_numbers(val_set, tmp_path):
    _write_predictions(_gt_files(val_set), tmp_path / "a")
    _write_predictions(_gt_files(val_set), tmp_path / "b", train_ids=True)
    by_label = score_predictions(tmp_path / "a", _gt_files(val_set))
    by_train = score_predictions(tmp_path / "b", _gt_files(val_set, "labelTrainIds"), pred_format="trainIds")
    assert by_train["per_class"] == by_label["per_class"]


def test_match_predictions_recursive_and_in_gt_order(val_set, tmp_path):
    gt_files = _gt_files(val_set)
    preds = _write_predictions(gt_files, tmp_path / "pred")
    (tmp_path / "pred" / "deep" / "er").mkdir(parents=True)
    moved = preds[0].rename(tmp_path / "pred" / "deep" / "er" / preds[0].name)
    pairs = match_predictions(tmp_path / "pred", gt_files)
    assert [g for _, g in pairs] == gt_files
    assert pairs[0][0] == moved and [p for p, _ in pairs[1:]] == preds[1:]


def test_missing_prediction_names_the_frame(val_set, tmp_path):
    gt_files = _gt_files(val_set)
    _write_predictions(gt_files, tmp_path / "pred")[1].unlink()
    with pytest.raises(DataError, match=f"1 of 4 .*{gt_files[1].name}"):
        score_predictions(tmp_path / "pred", gt_files)


def test_duplicate_and_stray_predictions_are_refused(val_set, tmp_path):
    gt_files = _gt_files(val_set)
    preds = _write_predictions(gt_files, tmp_path / "pred")
    copy = preds[0].with_name(preds[0].name.replace("_pred", "_color"))
    copy.write_bytes(preds[0].read_bytes())
    with pytest.raises(DataError, match="several predictions"):
        match_predictions(tmp_path / "pred", gt_files)
    copy.unlink()
    (tmp_path / "pred" / "zurich_000001_000019_pred.png").write_bytes(preds[0].read_bytes())
    with pytest.raises(DataError, match="match no ground-truth frame: .*zurich.*wrong split"):
        match_predictions(tmp_path / "pred", gt_files)


def test_size_mismatch_says_both_sizes_and_the_fix(val_set, tmp_path):
    gt_files = _gt_files(val_set)
    preds = _write_predictions(gt_files, tmp_path / "pred")
    Image.fromarray(np.zeros((32, 64), np.uint8)).save(preds[2])
    with pytest.raises(DataError, match="is 32x64 .* is 64x128 .*predict at the label files' resolution"):
        score_predictions(tmp_path / "pred", gt_files)


def test_colour_prediction_is_refused(val_set, tmp_path):
    gt_files = _gt_files(val_set)
    preds = _write_predictions(gt_files, tmp_path / "pred")
    Image.fromarray(np.zeros((64, 128, 3), np.uint8)).save(preds[0])
    with pytest.raises(DataError, match="colour image.*--format labelIds"):
        score_predictions(tmp_path / "pred", gt_files)


def test_wrong_format_is_detected_both_ways(val_set, tmp_path):
    gt_files = _gt_files(val_set)
    _write_predictions(gt_files, tmp_path / "train", train_ids=True)
    _write_predictions(gt_files, tmp_path / "label")
    with pytest.raises(DataError, match="looks like a trainIds file.*--format trainIds"):
        score_predictions(tmp_path / "train", gt_files, pred_format="labelIds")
    with pytest.raises(DataError, match="looks like a labelIds file.*--format labelIds"):
        score_predictions(tmp_path / "label", gt_files, pred_format="trainIds")
    with pytest.raises(DataError, match="one channel of ids.*--format labelIds"):
        score_predictions(tmp_path / "label", gt_files, pred_format="color")
    with pytest.raises(ConfigError, match="pred_format"):
        score_predictions(tmp_path / "label", gt_files, pred_format="overlay")


def test_no_ground_truth_is_refused(tmp_path):
    with pytest.raises(DataError, match="no ground-truth"):
        match_predictions(tmp_path, [])


def test_ground_truth_is_checked_by_the_training_reader(val_set, tmp_path):
    """labelIds saved as *_labelTrainIds.png: read_label's message and fix, as in training."""
    gt_files = _gt_files(val_set, "labelTrainIds")
    for label_ids, train_ids in zip(_gt_files(val_set), gt_files):
        train_ids.write_bytes(label_ids.read_bytes())
    _write_predictions(_gt_files(val_set), tmp_path / "pred")
    with pytest.raises(
        DataError,
        match=rf"trainId file {re.escape(str(gt_files[0]))} holds values .*It may be a "
        r"labelIds file; fix: rename it \*_gtFine_labelIds.png",
    ):
        score_predictions(tmp_path / "pred", gt_files)


def test_choices_kept_in_two_places_agree():
    """Choices that cannot be one object (a dict of specs, an if-chain) name the same values as
    segkit.config, which validates what users pass."""
    assert set(inference.MODES) == set(config.INFERENCE_MODES)
    assert set(config.SCORE_FORMATS) <= set(config.PREDICT_FORMATS)  # what predict writes, evaluate reads
    pred, image = np.zeros((2, 3), np.uint8), np.zeros((2, 3, 3), np.uint8)
    for fmt in config.PREDICT_FORMATS:  # encode_prediction dispatches on each format by name
        assert inference.encode_prediction(pred, image, fmt).shape[:2] == (2, 3), fmt
