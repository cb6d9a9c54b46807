"""ConfusionMatrix: known-answer tables, merge, dtypes, torchmetrics cross-check, protocol."""

from __future__ import annotations

import json
import math

import pytest
import torch

from segkit.errors import ConfigError, DataError
from segkit.labels import CLASS_NAMES
from segkit.metrics import ConfusionMatrix, format_table, make_protocol

# 4 classes; 255 = ignore. Class 3 appears in neither target nor pred (left out);
# class 2 is predicted once but absent from the ground truth (IoU 0, counted);
# the last pixel is a gt-0 pixel predicted as void (255): a false negative of class 0.
TARGET = torch.tensor([0, 0, 0, 1, 1, 255, 255, 0])
PRED = torch.tensor([0, 0, 1, 1, 2, 0, 2, 255])
MAT = [[2, 1, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
# class 0: tp 2, fp 0, fn 1 + 1 void = 2 -> IoU 2/4, Dice 4/6
# class 1: tp 1, fp 1, fn 1 -> IoU 1/3, Dice 2/4;  class 2: tp 0, fp 1, fn 0 -> 0, 0
IOU = [1 / 2, 1 / 3, 0.0, math.nan]
DICE = [2 / 3, 1 / 2, 0.0, math.nan]


@pytest.fixture
def toy() -> ConfusionMatrix:
    cm = ConfusionMatrix(num_classes=4)
    cm.update(PRED, TARGET)
    return cm


def test_known_answer_table(toy):
    assert toy.mat.dtype == torch.int64 and toy.mat.tolist() == MAT
    assert toy.void_pred.tolist() == [1, 0, 0, 0]
    torch.testing.assert_close(toy.iou(), torch.tensor(IOU, dtype=torch.float64), equal_nan=True)
    torch.testing.assert_close(toy.dice(), torch.tensor(DICE, dtype=torch.float64), equal_nan=True)
    assert toy.miou() == pytest.approx((1 / 2 + 1 / 3 + 0) / 3)
    assert toy.mean_dice() == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)
    assert toy.pixel_accuracy() == pytest.approx(3 / 6)  # 6 pixels with valid gt, 3 correct
    assert toy.gt_pixels().tolist() == [4, 2, 0, 0]


def test_class_subsets(toy):
    assert toy.miou([0, 1]) == pytest.approx((1 / 2 + 1 / 3) / 2)
    assert toy.miou([1, 3]) == pytest.approx(1 / 3)  # NaN class left out of the subset mean
    assert math.isnan(toy.miou([3]))
    assert toy.mean_dice([0]) == pytest.approx(2 / 3)


def test_empty_matrix_is_nan_not_zero():
    cm = ConfusionMatrix(num_classes=3)
    cm.update(torch.full((2, 2), 255), torch.full((2, 2), 255))  # everything ignored
    assert cm.mat.sum() == 0 and math.isnan(cm.miou()) and math.isnan(cm.pixel_accuracy())
    assert cm.summary(class_names=["a", "b", "c"])["miou"] is None


def test_negative_predictions_are_void():
    cm = ConfusionMatrix(num_classes=2)
    cm.update(torch.tensor([-1, 1, 7]), torch.tensor([1, 1, 0]))
    assert cm.mat.tolist() == [[0, 0], [0, 1]] and cm.void_pred.tolist() == [1, 1]
    assert cm.iou().tolist() == [0.0, 0.5]


def test_merge_equals_update_on_concatenation():
    g = torch.Generator().manual_seed(0)
    pred = torch.randint(0, 20, (2, 16, 16), generator=g)  # 19 = out of range -> void
    target = torch.randint(0, 19, (2, 16, 16), generator=g)
    target[target == 5] = 255
    whole, a, b = ConfusionMatrix(), ConfusionMatrix(), ConfusionMatrix()
    whole.update(pred, target)
    a.update(pred[:1], target[:1])
    b.update(pred[1:], target[1:])
    a.merge(b)
    assert torch.equal(a.mat, whole.mat) and torch.equal(a.void_pred, whole.void_pred)
    assert a.mat.sum() + a.void_pred.sum() == (target != 255).sum()
    a.reset()
    assert a.mat.sum() == 0 and a.void_pred.sum() == 0


@pytest.mark.parametrize("pred_dtype", [torch.uint8, torch.int32, torch.int64])
def test_dtypes_shapes_and_device(pred_dtype):
    cm = ConfusionMatrix(num_classes=4, device="cpu")
    cm.update(PRED.clamp(max=254).to(pred_dtype).view(2, 1, 4), TARGET.to(torch.uint8).view(2, 1, 4))
    assert cm.mat.tolist() == MAT and cm.mat.device == torch.device("cpu")
    assert cm.iou().dtype == torch.float64


def test_bad_inputs_are_refused():
    cm = ConfusionMatrix(num_classes=4)
    with pytest.raises(ValueError, match="argmax"):
        cm.update(torch.zeros(2, 4, 3, 3), torch.zeros(2, 3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="integer"):
        cm.update(torch.zeros(3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(DataError, match="label_to_train"):
        cm.update(torch.zeros(3, dtype=torch.long), torch.tensor([0, 26, 255]))
    with pytest.raises(ValueError, match="merge"):
        cm.merge(ConfusionMatrix(num_classes=19))


def test_all_reduce_noop_and_single_process_group(toy, tmp_path):
    toy.all_reduce()  # no process group: unchanged
    assert toy.mat.tolist() == MAT
    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        toy.all_reduce()
    finally:
        torch.distributed.destroy_process_group()
    assert toy.mat.tolist() == MAT and toy.void_pred.tolist() == [1, 0, 0, 0]


def test_equals_torchmetrics_jaccard():
    from torchmetrics.classification import MulticlassJaccardIndex

    g = torch.Generator().manual_seed(1)
    target = torch.randint(0, 15, (3, 32, 32), generator=g)  # classes 15..18 absent from gt
    pred = torch.randint(0, 17, (3, 32, 32), generator=g)  # 15, 16 predicted only; 17, 18 nowhere
    target[torch.rand(target.shape, generator=g) < 0.2] = 255
    ours = ConfusionMatrix()
    ours.update(pred, target)
    metric = MulticlassJaccardIndex(num_classes=19, ignore_index=255, average=None)
    theirs = metric(pred, target).double()
    iou = ours.iou()
    defined = ~iou.isnan()
    assert defined.tolist() == [True] * 17 + [False] * 2
    assert iou[15] == 0 and iou[16] == 0
    torch.testing.assert_close(iou[defined], theirs[defined], atol=1e-6, rtol=0)


def test_summary_schema_is_plain_json(toy):
    protocol = make_protocol("toy-4", resolution="train 64x128", inference="whole", split="val", images=2)
    s = toy.summary(class_names=["a", "b", "c", "d"], protocol=protocol)
    assert set(s) == {"miou", "mean_dice", "pixel_accuracy", "per_class", "protocol"}
    assert s["per_class"]["a"] == {
        "iou": pytest.approx(0.5),
        "dice": pytest.approx(2 / 3),
        "gt_pixels": 4,
    }
    assert s["per_class"]["c"]["iou"] == 0.0 and s["per_class"]["d"] == {
        "iou": None,
        "dice": None,
        "gt_pixels": 0,
    }
    assert type(s["miou"]) is float and type(s["per_class"]["a"]["gt_pixels"]) is int
    assert s["protocol"] == {
        "label_space": "toy-4",
        "resolution": "train 64x128",
        "inference": "whole",
        "split": "val",
        "images": 2,
    }
    assert json.loads(json.dumps(s)) == s


def test_summary_default_protocol_says_unknown():
    s = ConfusionMatrix().summary()
    assert list(s["per_class"]) == list(CLASS_NAMES)
    assert s["protocol"]["label_space"] == "cityscapes-19" and s["protocol"]["resolution"] == "unknown"


def test_format_table_states_protocol(toy):
    s = toy.summary(["a", "b", "c", "d"], make_protocol("toy-4", images=500, extra_field="x"))
    table = format_table(s)
    lines = table.splitlines()
    assert lines[0] == (
        "mIoU 27.8 | 4 classes (toy-4; 1 absent, left out), label resolution, whole-image inference, val, 500 images"
    )
    assert lines[2].split() == ["a", "50.0", "66.7", "4"]
    assert lines[5].split() == ["d", "-", "-", "0"]
    assert lines[-1] == "pixel accuracy 50.0"
    with pytest.raises(ValueError, match="protocol"):
        format_table({k: v for k, v in s.items() if k != "protocol"})


def test_make_protocol_rejects_unknown_resolution():
    with pytest.raises(ConfigError, match="train HxW"):
        make_protocol(resolution="512x1024")
