"""`segkit evaluate` and `segkit predict`: score a checkpoint or a folder of predictions, write PNGs.

Scoring a checkpoint is `segkit.engine.evaluate_split`, the same function that writes a training
run's metrics.json; predicting is `segkit.inference`'s one prediction path.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import cv2
import torch

from segkit import progress, runtime
from segkit.checkpoint import load_checkpoint
from segkit.config import EvalConfig, PredictConfig
from segkit.data.discover import DataRoots, find_data_roots, list_samples, resolve_data_roots
from segkit.data.inputs import PredictInputs
from segkit.data.layouts import AUTO, Layout, layouts_for, layouts_of
from segkit.data.pairs import trained_on_pairs
from segkit.engine import evaluate_split
from segkit.errors import SegkitError
from segkit.files import write_json
from segkit.inference import encode_prediction, list_images, load_predictor, prediction_name
from segkit.models import model_from_checkpoint
from segkit.scoring import score_predictions


def checkpoint_path(run_dir: str, checkpoint: str) -> Path:
    """The checkpoint file: given, or <run_dir>/best_model.pth."""
    return Path(checkpoint) if checkpoint else Path(run_dir) / "best_model.pth"


def load_model(path: Path, device: torch.device) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild the model a checkpoint describes; returns (model in eval mode, checkpoint dict)."""
    ckpt = load_checkpoint(path, map_location="cpu")
    return model_from_checkpoint(ckpt, device), ckpt


def data_roots_for(data_root: str, ckpt: dict | None, need_images: bool = True,
                   layouts: tuple[Layout, ...] = AUTO) -> DataRoots:
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
    runtime.log.info("the data the checkpoint was trained on (%s) is gone: searching as training did", record["label_root"])
    return None


def _trained_on(ckpt: dict) -> tuple[str, tuple[Layout, ...]]:
    """The data_root and layouts of the checkpoint's training config (older checkpoints: auto)."""
    config = ckpt.get("config", {})
    fields = {k: config[k] for k in ("layout", "image_glob", "label_glob", "label_format", "color_tolerance") if k in config}
    return config.get("data_root", ""), layouts_for(**fields)


def evaluate_checkpoint(model: torch.nn.Module, ckpt: dict, roots: DataRoots, split: str = "val",
                        inference: str = "whole", eval_resolution: str = "label", batch_size: int = 1,
                        max_images: int = 0, *, per_image: bool = False) -> dict:
    """`evaluate_split` at the checkpoint's training size (the summary schema of metrics.json)."""
    return evaluate_split(model, roots=roots, image_size=tuple(ckpt["image_size"]), split=split, inference=inference,
                          eval_resolution=eval_resolution, batch_size=batch_size, max_images=max_images,
                          per_image=per_image)


def run_evaluation(cfg: EvalConfig) -> tuple[dict, Path | None]:
    """`segkit evaluate`: a folder of predictions, or a checkpoint on a split. Returns (summary, file written)."""
    if cfg.predictions:
        summary = score_folder(cfg)
        out = Path(cfg.output) if cfg.output else None
    else:
        device = runtime.resolve_device(cfg.device)
        path = checkpoint_path(cfg.run_dir, cfg.checkpoint)
        model, ckpt = load_model(path, device)
        roots = data_roots_for(cfg.data_root, ckpt, layouts=layouts_of(cfg))
        summary = evaluate_checkpoint(model, ckpt, roots, cfg.split, cfg.inference, cfg.eval_resolution,
                                      cfg.batch_size, cfg.max_images)
        summary["checkpoint"] = str(path)
        # Never replace training's metrics.json silently: evaluations get their own name.
        out = Path(cfg.output) if cfg.output else path.parent / f"eval_{cfg.split}_{cfg.inference}_{cfg.eval_resolution}.json"
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_json(out, summary)
    return summary, out


def score_folder(cfg: EvalConfig) -> dict:
    """Score prediction PNGs against the split's label files (only the labels are needed)."""
    roots = data_roots_for(cfg.data_root, None, need_images=False, layouts=layouts_of(cfg))
    samples = list_samples(roots, cfg.split, need_images=False)
    samples = samples[: cfg.max_images] if cfg.max_images else samples
    return score_predictions(Path(cfg.predictions), samples, cfg.format, cfg.split,
                             inference=cfg.inference if cfg.inference != "whole" else "unknown")


def run_prediction(cfg: PredictConfig) -> list[Path]:
    """`segkit predict`: one PNG per input image, at its size, in the requested format."""
    images = list_images(cfg.img)
    out_dir = Path(cfg.output)
    targets = [out_dir / prediction_name(p, cfg.format) for p in images]
    clobber = [t for t in targets if t.exists()]
    if clobber and not cfg.overwrite:
        raise SegkitError(
            f"{len(clobber)} prediction file(s) already exist in {out_dir} (e.g. {clobber[0].name}); "
            "choose another --output or pass --overwrite to replace them"
        )
    predict = load_predictor(Path(cfg.checkpoint), cfg.backend, cfg.inference, cfg.device)
    # issue #20: photos as taken and image pairs; an unreadable file is named, the rest still predicted
    inputs = PredictInputs(cfg.pairs, trained_on_pairs(load_checkpoint(Path(cfg.checkpoint), mmap=True)))
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for path, target in progress.bar(list(zip(images, targets)), desc="predict", unit="img"):
        image = inputs.read(path)  # as seen (EXIF), RGB; a pair's photo half; None: failed (logged)
        if image is None:
            continue
        array = encode_prediction(predict(image), image, cfg.format)
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if array.ndim == 3 else array
        if not cv2.imwrite(str(target), array):
            raise SegkitError(f"could not write {target}; is {out_dir} writable?")
    runtime.log.info("%d image(s) in %.1f s (%s inference, %s backend)", len(images), time.perf_counter() - start,
                     cfg.inference, cfg.backend)
    inputs.finish(len(images), out_dir)  # issue #20: raises counting the files that failed
    return targets
