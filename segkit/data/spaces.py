"""Which label space a data set's label files are in: `segkit.labels.resolve_space` for found data."""

from __future__ import annotations

from segkit.data.discover import DataRoots
from segkit.labels import LabelSpace, builtin_space, find_space_file, resolve_space


def space_of(classes: str, roots: DataRoots) -> tuple[LabelSpace, str]:
    """The label space of the data at `roots`, and where it came from (one line to print and record).

    `--classes` first; then the data set's own description beside its labels or images
    (`config_v*.json`, `class_dict.csv`, `classes.yaml`); then its layout's space; else cityscapes.
    segkit's synthetic stand-in writes Cityscapes labelIds.
    """
    if roots.synthetic and not classes:
        space = builtin_space("cityscapes")
        return space, f"label space {space.describe()}: the synthetic stand-in's"
    if not classes:
        for root in dict.fromkeys((roots.label_root, roots.image_root)):
            if find_space_file(root):
                return resolve_space("", root)
    return resolve_space(classes, None, getattr(roots.layout, "space", "") or None)
