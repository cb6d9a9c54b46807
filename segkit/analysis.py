"""A finished run read back and analysed: notebooks 03 and 04.

`load_run` reads a run directory (config, history, metrics, best model); the rest scores it
(per-class table, inference modes compared, per-image mIoU) and picks images to draw with
`segkit.viz` (triptychs, worst samples).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from segkit import runtime
from segkit.data.cityscapes import read_sample
from segkit.data.discover import Sample
from segkit.data.layouts import AUTO
from segkit.errors import CheckpointError
from segkit.evaluation import (
    checkpoint_path,
    data_roots_for,
    evaluate_checkpoint,
    load_model,
)
from segkit.inference import predict_image
from segkit.labels import LabelSpace, space_of_record
from segkit.models import checkpoint_origin, is_released
from segkit.models.released import EXAMPLE, derived_dir


@dataclass
class LoadedRun:
    """A training run read back: config.json, history.csv, metrics.json and the best model."""

    run_dir: Path
    config: dict  # config.json: {"config", "data", "environment", ...}
    history: pd.DataFrame  # history.csv
    metrics: dict | None  # metrics.json (None if training never evaluated)
    model: Any  # torch.nn.Module in eval mode
    ckpt: dict  # the checkpoint dict (image_size, normalization, epoch, ...)
    roots: Any  # DataRoots the evaluation reads
    device: Any  # torch.device
    checkpoint: str = ""  # the checkpoint file or released model it was loaded from

    @property
    def space(self) -> LabelSpace:
        """The label space the model predicts in (its checkpoint's; older ones: cityscapes)."""
        return space_of_record(self.ckpt)

    @property
    def released(self) -> bool:
        """A released model (no training run behind it: no history, no metrics.json)."""
        return is_released(self.ckpt)

    @property
    def origin(self) -> str:
        """Where the model came from, in one line (a run's epoch, or the released model's repo)."""
        return checkpoint_origin(self.ckpt)


def load_run(
    run_dir: str | Path,
    data_root: str = "",
    checkpoint: str = "",
    device: str = "auto",
    layouts: tuple = AUTO,
    image_size: tuple[int, int] = (0, 0),
) -> LoadedRun:
    """Read a run directory written by `segkit train` / notebook 02.

    Args:
        run_dir: the run directory.
        data_root: data to evaluate on; "" = the data the run was trained on.
        checkpoint: a checkpoint file, or a released model (a save_pretrained folder or its
            Hugging Face repo id; it has no run directory: figures go to runs/released/<name>/);
            "" = `<run_dir>/best_model.pth`.
        device: auto, cpu, cuda.
        image_size: the size the model's inputs are resized to cover, (0, 0) = the checkpoint's.
        layouts: the data layout to evaluate on (`layouts.layouts_of(cfg)`); AUTO with data_root ""
            = the data the run was trained on.

    Returns:
        The run, model loaded.
    """
    run_dir = Path(run_dir)
    ref = checkpoint_path(str(run_dir), checkpoint)
    if not checkpoint and not Path(ref).is_file():
        raise CheckpointError(
            f"no checkpoint at {ref}: expected a finished training run in {run_dir}. Train first "
            f"(notebook 02, or `segkit train --run-dir {run_dir}`), set run_dir to an existing run, or set "
            f"checkpoint to a released model, e.g. {EXAMPLE}"
        )
    dev = runtime.resolve_device(device)
    model, ckpt = load_model(ref, dev, image_size)
    if is_released(ckpt):  # no training run behind it: nothing to read back, figures go beside its reports
        run_dir = derived_dir(ref, ckpt)
        roots = data_roots_for(data_root, ckpt, layouts=layouts)
        return LoadedRun(run_dir, {}, pd.DataFrame(), None, model, ckpt, roots, dev, str(ref))
    config = json.loads((run_dir / "config.json").read_text()) if (run_dir / "config.json").is_file() else {}
    history = pd.read_csv(run_dir / "history.csv") if (run_dir / "history.csv").is_file() else pd.DataFrame()
    metrics = json.loads((run_dir / "metrics.json").read_text()) if (run_dir / "metrics.json").is_file() else None
    roots = data_roots_for(data_root, ckpt, layouts=layouts)
    return LoadedRun(run_dir, config, history, metrics, model, ckpt, roots, dev, str(ref))


def speed_report(run: LoadedRun) -> str:
    """The speed table `segkit benchmark` measured for this checkpoint (its speed.json), or how to measure it."""
    from segkit import backends  # imports the runtimes' registry: only when asked
    from segkit.benchmark import format_table

    record = backends.read_speed(run.checkpoint, run.ckpt)
    if record is None:
        where = backends.speed_path(run.checkpoint, run.ckpt)
        return (
            f"not benchmarked yet (no {where}). Measure latency, frames/s and memory per backend, and what each "
            f"costs in mIoU, with: segkit benchmark --checkpoint {run.checkpoint} --data-root <data set>"
        )
    return format_table(record)


def per_class_table(summary: dict) -> pd.DataFrame:
    """Per-class IoU and Dice in % and ground-truth pixels (NaN: class absent, left out of the mean)."""
    table = pd.DataFrame(summary["per_class"]).T.rename(
        columns={"iou": "IoU %", "dice": "Dice %", "gt_pixels": "gt pixels"}
    )
    for col in ("IoU %", "Dice %"):
        table[col] = (100 * table[col].astype(float)).round(1)
    table["gt pixels"] = table["gt pixels"].astype(np.int64)
    table.loc["mean"] = [
        round(100 * summary["miou"], 1),
        round(100 * summary["mean_dice"], 1),
        table["gt pixels"].sum(),
    ]
    return table


def compare_inference(
    run: LoadedRun,
    split: str,
    modes: Sequence[str] = ("whole", "slide", "flip"),
    eval_resolution: str = "label",
    max_images: int = 0,
    batch_size: int = 1,
    done: dict[str, dict] | None = None,
) -> pd.DataFrame:
    """Score the same checkpoint with several inference modes: mIoU and wall time of each.

    Args:
        run: the loaded run.
        split: split to evaluate.
        modes: inference modes to compare.
        eval_resolution: "label" (official) or "train".
        max_images: first N images only (0 = all).
        batch_size: images per forward pass.
        done: summaries already computed with the same settings, by mode (not run again).

    Returns:
        A DataFrame indexed by mode: mIoU %, pixel accuracy %, seconds, seconds per image, images.
    """
    rows = {}
    for mode in modes:
        s = (done or {}).get(mode) or evaluate_checkpoint(
            run.model, run.ckpt, run.roots, split, mode, eval_resolution, batch_size, max_images
        )
        images = s["protocol"]["images"]
        rows[mode] = {
            "mIoU %": round(100 * s["miou"], 2),
            "pixel acc %": round(100 * s["pixel_accuracy"], 2),
            "seconds": round(s["seconds"], 2),
            "s / image": round(s["seconds"] / max(1, images), 3),
            "images": images,
        }
    return pd.DataFrame(rows).T


def triptychs(
    run: LoadedRun,
    samples: Sequence[Sample],
    inference: str = "whole",
    scores: dict | None = None,
    max_width: int = 1024,
) -> list[dict]:
    """Input, ground truth and prediction of each sample, for `viz.plot_triptychs`.

    Args:
        run: the loaded run (model and checkpoint).
        samples: `Sample`s to predict.
        inference: whole, slide, flip or ms.
        scores: optional {stem: image mIoU} shown in the titles.
        max_width: larger images are shrunk for display (prediction at full size first).

    Returns:
        [{"image", "target", "pred", "name"[, "miou"]}] with (H, W, 3) and (H, W) arrays.
    """
    out = []
    for sample in samples:
        image, target = read_sample(sample, run.space)
        item = {
            "image": image,
            "target": target,
            "pred": predict_image(run.model, run.ckpt, image, inference),
            "name": sample.stem,
        }
        if scores is not None and sample.stem in scores:
            item["miou"] = scores[sample.stem]
        out.append(_shrink(item, max_width))
    return out


def _shrink(item: dict, max_width: int) -> dict:
    """Scale a display item down to max_width: the image area-averaged, the label maps nearest."""
    h, w = item["target"].shape
    if w <= max_width:
        return item
    size = (max_width, round(h * max_width / w))
    item["image"] = cv2.resize(item["image"], size, interpolation=cv2.INTER_AREA)
    for key in ("target", "pred"):
        item[key] = cv2.resize(item[key], size, interpolation=cv2.INTER_NEAREST_EXACT)
    return item


def per_image_scores(run: LoadedRun, split: str, inference: str = "whole", max_images: int = 0) -> dict[str, float]:
    """{image stem: its own mIoU} over a split (official resolution), for picking failure cases."""
    s = evaluate_checkpoint(run.model, run.ckpt, run.roots, split, inference, "label", 1, max_images, per_image=True)
    return {row["name"]: row["miou"] for row in s["per_image"]}


def worst_samples(samples: Sequence[Sample], scores: dict[str, float], n: int) -> list[Sample]:
    """The n samples with the lowest image mIoU (images without a score are skipped)."""
    scored = [s for s in samples if s.stem in scores and scores[s.stem] == scores[s.stem]]  # NaN != NaN
    return sorted(scored, key=lambda s: scores[s.stem])[:n]


def saved_figures(folder: str | Path) -> pd.DataFrame:
    """The PNGs in a figures folder with their sizes (a DataFrame)."""
    files = sorted(Path(folder).glob("*.png"))
    return pd.DataFrame({"file": [str(p) for p in files], "KB": [round(p.stat().st_size / 1024, 1) for p in files]})
