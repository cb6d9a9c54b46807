"""segkit.labels equals cityscapesscripts.helpers.labels, and its lookups give known answers."""

from __future__ import annotations

import numpy as np
import pytest

from segkit import labels as sk


@pytest.fixture(autouse=True)
def _numpy_in1d(monkeypatch):
    """cityscapesscripts 2.3 calls np.in1d, which numpy 2.4 removed; np.isin is its replacement."""
    if not hasattr(np, "in1d"):
        monkeypatch.setattr(np, "in1d", np.isin, raising=False)


@pytest.fixture
def cs():
    from cityscapesscripts.helpers import labels

    return labels


def test_every_field_of_every_label_matches_official(cs):
    assert sk.Label._fields == cs.Label._fields
    assert len(sk.LABELS) == len(cs.labels) == 35
    for ours, theirs in zip(sk.LABELS, cs.labels):
        assert tuple(ours) == tuple(theirs), ours.name
    assert sk.LABELS[-1] == ("license plate", -1, -1, "vehicle", 7, False, True, (0, 0, 142))


def test_constants_match_official(cs):
    evaluated = [lb for lb in cs.labels if not lb.ignoreInEval]
    assert sk.NUM_CLASSES == len(evaluated) == 19
    assert sk.MAX_LABEL_ID == max(lb.id for lb in cs.labels) == 33
    assert sk.IGNORE_INDEX == 255
    assert sorted(lb.trainId for lb in evaluated) == list(range(19))


def test_class_names_and_palette_in_train_id_order(cs):
    assert sk.CLASS_NAMES == tuple(cs.trainId2label[t].name for t in range(19))
    assert sk.CLASS_NAMES[:3] == ("road", "sidewalk", "building") and sk.CLASS_NAMES[-1] == "bicycle"
    assert sk.PALETTE.shape == (19, 3) and sk.PALETTE.dtype == np.uint8
    assert [tuple(c) for c in sk.PALETTE.tolist()] == [cs.trainId2label[t].color for t in range(19)]


def test_luts_match_official(cs):
    for lut in (sk.LABEL_TO_TRAIN, sk.TRAIN_TO_LABEL):
        assert lut.shape == (256,) and lut.dtype == np.uint8
    for label_id in range(256):
        lb = cs.id2label.get(label_id)
        expected = lb.trainId if lb is not None and 0 <= lb.trainId < 255 else 255
        assert sk.LABEL_TO_TRAIN[label_id] == expected, label_id
    for train_id in range(19):
        assert sk.TRAIN_TO_LABEL[train_id] == cs.trainId2label[train_id].id
    assert sk.TRAIN_TO_LABEL[255] == 0  # ignored pixels are submitted as "unlabeled"
    for label_id in range(34):
        assert tuple(sk.LABEL_COLORS[label_id]) == cs.id2label[label_id].color


def test_label_to_train_known_answers():
    label = np.array([[0, 7, 8], [26, 33, 34], [255, 9, 24]], dtype=np.uint8)
    expected = np.array([[255, 0, 1], [13, 18, 255], [255, 255, 11]], dtype=np.uint8)
    out = sk.label_to_train(label)
    assert out.dtype == np.uint8 and out.shape == label.shape
    np.testing.assert_array_equal(out, expected)
    # int32 input of the same values gives the same answer
    np.testing.assert_array_equal(sk.label_to_train(label.astype(np.int32)), expected)


def test_train_to_label_known_answers_and_round_trip():
    mask = np.array([[0, 18, 255], [10, 13, 5]], dtype=np.uint8)
    np.testing.assert_array_equal(sk.train_to_label(mask), [[7, 33, 0], [23, 26, 17]])
    every = np.array(list(range(19)) + [255], dtype=np.uint8)
    np.testing.assert_array_equal(sk.label_to_train(sk.train_to_label(every)), every)


def test_colors_known_answers():
    mask = np.array([[0, 255], [13, 18]], dtype=np.uint8)
    rgb = sk.train_to_color(mask)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb, [[[128, 64, 128], [0, 0, 0]], [[0, 0, 142], [119, 11, 32]]])
    label = np.array([[5, 7, 0]], dtype=np.uint8)
    np.testing.assert_array_equal(sk.label_to_color(label), [[[111, 74, 0], [128, 64, 128], [0, 0, 0]]])
    # the official colour files are consistent whichever id space they are drawn from
    label = np.arange(34, dtype=np.uint8)
    evaluated = sk.LABEL_TO_TRAIN[label] != 255
    np.testing.assert_array_equal(
        sk.label_to_color(label)[evaluated], sk.train_to_color(sk.label_to_train(label))[evaluated]
    )
