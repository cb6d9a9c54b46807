"""Cityscapes' official table (labelId, trainId, colour per label) and the cityscapes space under its
historical names (`LABEL_TO_TRAIN`, `CLASS_NAMES`, `PALETTE`, `label_to_train`, ...).

The table mirrors `cityscapesscripts.helpers.labels` (tests/test_labels.py proves it), so segkit
needs no cityscapesscripts at run time.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from segkit.labels.space import IGNORE_INDEX, ClassInfo, LabelSpace, thin_classes


class Label(NamedTuple):
    """One row of the official table (field names as in cityscapesscripts)."""

    name: str
    id: int  # labelId: the value stored in *_gtFine_labelIds.png
    trainId: int  # 0..18 for evaluated classes, 255 (or -1) for the rest
    category: str
    categoryId: int
    hasInstances: bool
    ignoreInEval: bool
    color: tuple[int, int, int]


# fmt: off
LABELS: tuple[Label, ...] = (
    Label("unlabeled",             0, 255, "void",         0, False, True,  (0, 0, 0)),
    Label("ego vehicle",           1, 255, "void",         0, False, True,  (0, 0, 0)),
    Label("rectification border",  2, 255, "void",         0, False, True,  (0, 0, 0)),
    Label("out of roi",            3, 255, "void",         0, False, True,  (0, 0, 0)),
    Label("static",                4, 255, "void",         0, False, True,  (0, 0, 0)),
    Label("dynamic",               5, 255, "void",         0, False, True,  (111, 74, 0)),
    Label("ground",                6, 255, "void",         0, False, True,  (81, 0, 81)),
    Label("road",                  7,   0, "flat",         1, False, False, (128, 64, 128)),
    Label("sidewalk",              8,   1, "flat",         1, False, False, (244, 35, 232)),
    Label("parking",               9, 255, "flat",         1, False, True,  (250, 170, 160)),
    Label("rail track",           10, 255, "flat",         1, False, True,  (230, 150, 140)),
    Label("building",             11,   2, "construction", 2, False, False, (70, 70, 70)),
    Label("wall",                 12,   3, "construction", 2, False, False, (102, 102, 156)),
    Label("fence",                13,   4, "construction", 2, False, False, (190, 153, 153)),
    Label("guard rail",           14, 255, "construction", 2, False, True,  (180, 165, 180)),
    Label("bridge",               15, 255, "construction", 2, False, True,  (150, 100, 100)),
    Label("tunnel",               16, 255, "construction", 2, False, True,  (150, 120, 90)),
    Label("pole",                 17,   5, "object",       3, False, False, (153, 153, 153)),
    Label("polegroup",            18, 255, "object",       3, False, True,  (153, 153, 153)),
    Label("traffic light",        19,   6, "object",       3, False, False, (250, 170, 30)),
    Label("traffic sign",         20,   7, "object",       3, False, False, (220, 220, 0)),
    Label("vegetation",           21,   8, "nature",       4, False, False, (107, 142, 35)),
    Label("terrain",              22,   9, "nature",       4, False, False, (152, 251, 152)),
    Label("sky",                  23,  10, "sky",          5, False, False, (70, 130, 180)),
    Label("person",               24,  11, "human",        6, True,  False, (220, 20, 60)),
    Label("rider",                25,  12, "human",        6, True,  False, (255, 0, 0)),
    Label("car",                  26,  13, "vehicle",      7, True,  False, (0, 0, 142)),
    Label("truck",                27,  14, "vehicle",      7, True,  False, (0, 0, 70)),
    Label("bus",                  28,  15, "vehicle",      7, True,  False, (0, 60, 100)),
    Label("caravan",              29, 255, "vehicle",      7, True,  True,  (0, 0, 90)),
    Label("trailer",              30, 255, "vehicle",      7, True,  True,  (0, 0, 110)),
    Label("train",                31,  16, "vehicle",      7, True,  False, (0, 80, 100)),
    Label("motorcycle",           32,  17, "vehicle",      7, True,  False, (0, 0, 230)),
    Label("bicycle",              33,  18, "vehicle",      7, True,  False, (119, 11, 32)),
    Label("license plate",        -1,  -1, "vehicle",      7, False, True,  (0, 0, 142)),
)
# fmt: on


def cityscapes_space() -> LabelSpace:
    """The cityscapes space from the official table: labelIds 0..33 -> the 19 evaluated classes."""
    train = sorted((lb for lb in LABELS if 0 <= lb.trainId < IGNORE_INDEX), key=lambda lb: lb.trainId)
    ignore = tuple(lb.id for lb in LABELS if lb.id >= 0 and not 0 <= lb.trainId < IGNORE_INDEX)
    return LabelSpace("cityscapes", tuple(ClassInfo(lb.name, (lb.id,), lb.color) for lb in train), ignore)


# -- Cityscapes under its historical names (the cityscapes space; labelIds files) -------------------

CITYSCAPES: LabelSpace = cityscapes_space()  # also `builtin_space("cityscapes")`: the same object
NUM_CLASSES = CITYSCAPES.num_classes  # evaluated Cityscapes classes (trainIds)
MAX_LABEL_ID = 33  # labelId files hold 0..33; any larger value means a wrong file
TRAIN_LABELS: tuple[Label, ...] = tuple(
    sorted((lb for lb in LABELS if 0 <= lb.trainId < IGNORE_INDEX), key=lambda lb: lb.trainId)
)
CLASS_NAMES: tuple[str, ...] = CITYSCAPES.names
PALETTE: np.ndarray = CITYSCAPES.palette  # (19, 3)

THIN_CLASSES: tuple[int, ...] = thin_classes(CITYSCAPES)


def _lut(pairs: list[tuple[int, int]], fill: int) -> np.ndarray:
    lut = np.full(256, fill, dtype=np.uint8)
    for src, dst in pairs:
        lut[src] = dst
    return lut


# labelId -> trainId; every value a labelId file never takes also maps to IGNORE_INDEX.
LABEL_TO_TRAIN: np.ndarray = _lut(
    [(lb.id, lb.trainId if 0 <= lb.trainId < IGNORE_INDEX else IGNORE_INDEX) for lb in LABELS if lb.id >= 0],
    IGNORE_INDEX,
)
# trainId -> labelId (the submission format); ignored pixels become 0 ("unlabeled").
TRAIN_TO_LABEL: np.ndarray = _lut([(lb.trainId, lb.id) for lb in TRAIN_LABELS], 0)
# labelId -> colour of the official gtFine_color.png files.
LABEL_COLORS: np.ndarray = np.zeros((256, 3), dtype=np.uint8)
for _lb in LABELS:
    if _lb.id >= 0:
        LABEL_COLORS[_lb.id] = _lb.color
# trainId -> colour; ignored pixels are black.
TRAIN_COLORS: np.ndarray = np.zeros((256, 3), dtype=np.uint8)
TRAIN_COLORS[:NUM_CLASSES] = PALETTE


def label_to_train(label: np.ndarray) -> np.ndarray:
    """Map a labelId array to trainIds (255 = ignore). Shape is kept; dtype becomes uint8."""
    return LABEL_TO_TRAIN[label.astype(np.uint8, copy=False)]


def train_to_label(mask: np.ndarray) -> np.ndarray:
    """Map a trainId array (0..18, 255) to labelIds; ignored pixels become 0 (unlabeled)."""
    return TRAIN_TO_LABEL[mask.astype(np.uint8, copy=False)]


def train_to_color(mask: np.ndarray) -> np.ndarray:
    """Colour a trainId array with the official palette. Shape: (H, W) -> (H, W, 3) uint8."""
    return TRAIN_COLORS[mask.astype(np.uint8, copy=False)]


def label_to_color(label: np.ndarray) -> np.ndarray:
    """Colour a labelId array as the official *_gtFine_color.png. Shape: (H, W) -> (H, W, 3)."""
    return LABEL_COLORS[label.astype(np.uint8, copy=False)]
