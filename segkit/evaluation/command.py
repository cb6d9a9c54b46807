"""`segkit evaluate`: score a checkpoint on a split, or a folder of prediction PNGs.

Scoring a checkpoint is `evaluate_split`, the same function that writes a training run's
metrics.json; the data is the one given, else the data the checkpoint was trained on.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import torch

from segkit import runtime
from segkit.config import DataConfig, EvalConfig
from segkit.data.discover import DataRoots, find_data_roots, list_samples, resolve_data_roots
from segkit.data.layouts import AUTO, Layout, layouts_for, layouts_of
from segkit.data.spaces import space_of
from segkit.evaluation.network import evaluate_split
from segkit.evaluation.predictions import score_predictions
from segkit.files import write_json
from segkit.labels import LabelSpace, load_space, space_of_record
from segkit.models import at_image_size, model_from_checkpoint, open_checkpoint
from segkit.models.released import derived_dir


def checkpoint_path(run_dir: str, checkpoint: str) -> str:
    """What to open: the checkpoint given (a file, or a released model), or <run_dir>/best_model.pth."""
    return checkpoint or str(Path(run_dir) / "best_model.pth")


def load_model(
    ref: str | Path, device: torch.device, image_size: tuple[int, int] = (0, 0)
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild the model a checkpoint or released model describes; returns (model in eval mode, checkpoint dict).

    `image_size`: the size its inputs are resized to cover, (0, 0) = the checkpoint's (`at_image_size`).
    """
    ckpt = at_image_size(open_checkpoint(ref), image_size)
    return model_from_checkpoint(ckpt, device), ckpt


def data_roots_for(
    data_root: str, ckpt: dict | None, need_images: bool = True, layouts: tuple[Layout, ...] = AUTO
) -> DataRoots:
    """The data given (a root or a layout), else the data the checkpoint was trained on, else auto-discovery.

    A checkpoint records the data it was trained on (`DataRoots.record`); while those folders exist
    they are used as they are, otherwise the training run's own data_root and layout are searched again.
    """
    if not data_root and layouts == AUTO and ckpt is not None:
        recorded = _recorded_roots(ckpt)
        if recorded is not None:
            return recorded
        data_root, layouts = _trained_on(ckpt)
    if not need_images:
        found = find_data_roots(data_root or None, need_images=False, layouts=layouts)
        if found is not None:
            return found
    return resolve_data_roots(data_root or None, layouts=layouts)


def _recorded_roots(ckpt: dict) -> DataRoots | None:
    """The data the checkpoint recorded, if its folders still exist."""
    record = ckpt.get("data")
    if not record:
        return None
    if Path(record["image_root"]).is_dir() and Path(record["label_root"]).is_dir():
        return DataRoots.from_record(record)
    runtime.log.info(
        "the data the checkpoint was trained on (%s) is gone: searching as training did", record["label_root"]
    )
    return None


def _trained_on(ckpt: dict) -> tuple[str, tuple[Layout, ...]]:
    """The data_root and layouts of the checkpoint's training config (older checkpoints: auto)."""
    config = ckpt.get("config", {})
    given = {f.name: config[f.name] for f in fields(DataConfig) if f.name in config and f.name != "data_root"}
    return config.get("data_root", ""), layouts_for(**given)


def evaluate_checkpoint(
    model: torch.nn.Module,
    ckpt: dict,
    roots: DataRoots,
    split: str = "val",
    inference: str = "whole",
    eval_resolution: str = "label",
    batch_size: int = 1,
    max_images: int = 0,
    *,
    per_image: bool = False,
    space: LabelSpace | None = None,
    class_map: str = "",
) -> dict:
    """`evaluate_split` at the checkpoint's training size (the summary schema of metrics.json).

    `space` is the label space of the data's label files (None = the checkpoint's own); a model of
    another space is scored through `class_map` or the built-in map between the two.
    """
    return evaluate_split(
        model,
        roots=roots,
        image_size=tuple(ckpt["image_size"]),
        split=split,
        inference=inference,
        eval_resolution=eval_resolution,
        batch_size=batch_size,
        max_images=max_images,
        per_image=per_image,
        space=space,
        class_map=class_map,
    )


def data_space(cfg: EvalConfig, roots: DataRoots, ckpt: dict | None) -> LabelSpace:
    """The label space of the data evaluated: --classes; the checkpoint's own on the data it was trained
    on; else the data's own (`space_of`). The run prints where it came from."""
    if not cfg.classes and ckpt is not None and not cfg.data_root and layouts_of(cfg) == AUTO:
        space = space_of_record(ckpt)
        runtime.log.info("label space %s: the checkpoint's, on the data it was trained on", space.describe())
        return space
    space, where = space_of(cfg.classes, roots)
    runtime.log.info("%s", where)
    return space


def run_evaluation(cfg: EvalConfig) -> tuple[dict, Path | None]:
    """`segkit evaluate`: a folder of predictions, or a checkpoint on a split. Returns (summary, file written)."""
    if cfg.predictions:
        summary = score_folder(cfg)
        out = Path(cfg.output) if cfg.output else None
    else:
        device = runtime.resolve_device(cfg.device)
        ref = checkpoint_path(cfg.run_dir, cfg.checkpoint)
        model, ckpt = load_model(ref, device, cfg.image_size)
        roots = data_roots_for(cfg.data_root, ckpt, layouts=layouts_of(cfg))
        summary = evaluate_checkpoint(
            model,
            ckpt,
            roots,
            cfg.split,
            cfg.inference,
            cfg.eval_resolution,
            cfg.batch_size,
            cfg.max_images,
            space=data_space(cfg, roots, ckpt),
            class_map=cfg.class_map,
        )
        summary["checkpoint"] = ref
        # Never replace training's metrics.json silently: evaluations get their own name, and one at a
        # size asked for its own too (a sweep of --image-size keeps every size's result).
        size = "_{}x{}".format(*cfg.image_size) if tuple(cfg.image_size) != (0, 0) else ""
        name = f"eval_{cfg.split}_{cfg.inference}_{cfg.eval_resolution}{size}.json"
        out = Path(cfg.output) if cfg.output else derived_dir(ref, ckpt) / name
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_json(out, summary)
    return summary, out


def score_folder(cfg: EvalConfig) -> dict:
    """Score prediction PNGs against the split's label files (only the labels are needed)."""
    roots = data_roots_for(cfg.data_root, None, need_images=False, layouts=layouts_of(cfg))
    samples = list_samples(roots, cfg.split, need_images=False)
    samples = samples[: cfg.max_images] if cfg.max_images else samples
    return score_predictions(
        Path(cfg.predictions),
        samples,
        cfg.format,
        cfg.split,
        inference=cfg.inference if cfg.inference != "whole" else "unknown",
        space=data_space(cfg, roots, None),
        pred_space=load_space(cfg.prediction_classes) if cfg.prediction_classes else None,
        class_map=cfg.class_map,
    )
