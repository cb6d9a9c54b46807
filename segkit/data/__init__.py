"""Street-scene data: its layouts (layouts), find it (discover), read it (cityscapes), augment it (transforms), count it
(stats), draw a stand-in (synthetic) and pre-resize it (cache).

Names are imported lazily so that `segkit synth` and `import segkit.data.synthetic` don't pay for
torch and Albumentations.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CityscapesDataset": "cityscapes",
    "check_samples": "cityscapes",
    "read_image": "cityscapes",
    "read_label": "cityscapes",
    "DEFAULT_SYNTHETIC_DIR": "discover",
    "DataRoots": "discover",
    "Sample": "discover",
    "candidate_roots": "discover",
    "find_data_roots": "discover",
    "list_samples": "discover",
    "list_splits": "discover",
    "resolve_data_roots": "discover",
    "Layout": "layouts",
    "layouts_for": "layouts",
    "layouts_of": "layouts",
    "label_format_of": "layouts",
    "space_of": "spaces",
    "class_pixel_counts": "stats",
    "class_statistics": "stats",
    "class_weights": "stats",
    "MEAN": "transforms",
    "STD": "transforms",
    "denormalize": "transforms",
    "eval_transform": "transforms",
    "train_transform": "transforms",
    "generate_synthetic": "synthetic",
    "check_table": "report",
    "class_frequency_table": "report",
    "describe_data": "report",
    "split_city_counts": "report",
    "decoding_table": "report",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'segkit.data' has no attribute {name!r}")
    return getattr(importlib.import_module(f"segkit.data.{_EXPORTS[name]}"), name)
