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
from segkit.data.cityscapes import read_image
from segkit.data.discover import DataRoots, find_data_roots, list_samples, resolve_data_roots
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


def data_roots_for(data_root: str, ckpt: dict | None, need_images: bool = True) -> DataRoots:
    """The data root given, else the one the checkpoint was trained on, else auto-discovery."""
    trained_on = (ckpt or {}).get("config", {}).get("data_root", "")
    root = data_root or trained_on or None
    if not need_images:
        found = find_data_roots(root, need_images=False)
        if found is not None:
            return found
    return resolve_data_roots(root)


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
        roots = data_roots_for(cfg.data_root, ckpt)
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
    """Score prediction PNGs against the split's gtFine labels (only gtFine is needed)."""
    roots = data_roots_for(cfg.data_root, None, need_images=False)
    samples = list_samples(roots, cfg.split, need_images=False)
    samples = samples[: cfg.max_images] if cfg.max_images else samples
    return score_predictions(Path(cfg.predictions), [s.label for s in samples], cfg.format, cfg.split,
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
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for path, target in progress.bar(list(zip(images, targets)), desc="predict", unit="img"):
        image = read_image(path)
        array = encode_prediction(predict(image), image, cfg.format)
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if array.ndim == 3 else array
        if not cv2.imwrite(str(target), array):
            raise SegkitError(f"could not write {target}; is {out_dir} writable?")
    runtime.log.info("%d image(s) in %.1f s (%s inference, %s backend)", len(images), time.perf_counter() - start,
                     cfg.inference, cfg.backend)
    return targets
