"""Tables that describe a data set (notebook 01): its source, cities per split, the data check and
class frequencies."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from segkit.data.discover import DataRoots, Sample
from segkit.data.pairs import decoding_counts
from segkit.labels import CITYSCAPES, IGNORE_INDEX


def describe_data(roots: DataRoots) -> str:
    """`DataRoots.describe()`, with a banner nobody can miss when the data are synthetic."""
    if not roots.synthetic:
        return roots.describe()
    bar = "!" * 78
    return (
        f"{bar}\n!! SYNTHETIC DATA, NOT CITYSCAPES: numbers below say nothing about Cityscapes.\n"
        "!! For real data pass data_root=/path/to/data (any layout: README, Data) or set CITYSCAPES_DATASET.\n"
        f"{bar}\n{roots.describe()}"
    )


def split_city_counts(samples: dict[str, Sequence[Sample]]) -> pd.DataFrame:
    """Images per city and split (a DataFrame: rows cities, columns splits, plus totals)."""
    table = pd.DataFrame({split: Counter(s.city or "(no folder)" for s in items) for split, items in samples.items()})
    table = table.fillna(0).astype(int).sort_index()
    table.loc["total"] = table.sum()
    return table


def check_table(checks: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """The `check_samples` reports of several splits as one table."""
    rows = {
        split: {
            "pairs": c["pairs"],
            "sizes (HxW)": ", ".join(f"{h}x{w} ({n})" for (h, w), n in c["sizes"].items()),
            "label formats": ", ".join(c["label_formats"]),
            "classes present": len([v for v in c["label_values"] if v != IGNORE_INDEX]),
            "ignored %": round(100 * c["ignored_fraction"], 2),
        }
        for split, c in checks.items()
    }
    return pd.DataFrame(rows).T


def class_frequency_table(
    counts: np.ndarray, weights: np.ndarray, class_names: Sequence[str] = CITYSCAPES.names
) -> pd.DataFrame:
    """Per-class pixels, fraction of labelled pixels and loss weight (a DataFrame).

    Args:
        counts: (C,) pixel counts, from `class_pixel_counts`.
        weights: (C,) loss weights, from `class_weights`.
        class_names: the label space's class names, in class-index order.
    """
    counts = np.asarray(counts, dtype=np.int64)
    return pd.DataFrame(
        {
            "class": list(class_names),
            "pixels": counts,
            "fraction": counts / max(1, counts.sum()),
            "weight": np.asarray(weights, dtype=np.float64),
        }
    )


def decoding_table(samples: dict[str, Sequence[Sample]], limit: int | None = None) -> pd.DataFrame:
    """How image pairs' colour masks decoded, per split (notebook 01); empty when no split holds pairs.

    Columns: pairs, pixels, and the % of pixels that took one of the 19 classes, that were the colour
    of a label outside them (void: 255), and that were farther than color_tolerance from every
    palette colour (undecided: 255; JPEG ringing and blends at edges).
    """
    rows = {}
    for split, items in samples.items():
        c = decoding_counts(list(items)[:limit])
        if c["pairs"]:
            rows[split] = {
                "pairs": c["pairs"],
                "pixels": c["pixels"],
                **{
                    name: 100 * c[key] / c["pixels"]
                    for name, key in (
                        ("train classes %", "classes"),
                        ("void colours %", "void"),
                        ("far from every colour %", "far"),
                    )
                },
            }
    return pd.DataFrame(rows).T.astype({"pairs": int, "pixels": int}) if rows else pd.DataFrame()
