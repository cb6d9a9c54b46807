"""`segkit evaluate` and `segkit predict`: load a checkpoint once, score a split or write PNGs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader

from segkit import runtime
from segkit.checkpoint import load_checkpoint, model_from_checkpoint
from segkit.config import EvalConfig, PredictConfig
from segkit.errors import SegkitError
from segkit.labels import CLASS_NAMES


def checkpoint_path(run_dir: str, checkpoint: str) -> Path:
    """The checkpoint file: given, or <run_dir>/best_model.pth."""
    return Path(checkpoint) if checkpoint else Path(run_dir) / "best_model.pth"


def load_model(path: Path, device: torch.device) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild the model a checkpoint describes; returns (model in eval mode, checkpoint dict)."""
    ckpt = load_checkpoint(path, map_location="cpu")
    return model_from_checkpoint(ckpt, device), ckpt


def data_roots_for(data_root: str, ckpt: dict | None, need_images: bool = True):
    """The data root given, else the one the checkpoint was trained on, else auto-discovery."""
    from segkit.data.discover import find_data_roots, resolve_data_roots

    trained_on = (ckpt or {}).get("config", {}).get("data_root", "")
    root = data_root or trained_on or None
    if not need_images:
        found = find_data_roots(root, need_images=False)
        if found is not None:
            return found
    return resolve_data_roots(root)


def evaluate_checkpoint(
    model: torch.nn.Module,
    ckpt: dict,
    roots,
    split: str = "val",
    inference: str = "whole",
    eval_resolution: str = "label",
    batch_size: int = 1,
    max_images: int = 0,
    device: torch.device | None = None,
    per_image: bool = False,
) -> dict:
    """Score a model on a split; the summary carries its protocol (and "seconds", "per_image").

    Args:
        model: network in eval mode.
        ckpt: its checkpoint dict (for the training size).
        roots: DataRoots of the data set.
        split: split name.
        inference: whole, slide, flip or ms.
        eval_resolution: "label" (official: label files' own size) or "train".
        batch_size: images per forward pass.
        max_images: first N images only (0 = all).
        device: where to run (defaults to the model's device).
        per_image: also return [(name, mIoU)] per image (for "worst images").

    Returns:
        The metrics summary dict (schema of metrics.json).
    """
    from segkit.data.cityscapes import CityscapesDataset
    from segkit.data.discover import list_samples
    from segkit.data.loaders import collate
    from segkit.data.transforms import eval_transform
    from segkit.engine import evaluate
    from segkit.metrics import make_protocol

    device = device or next(model.parameters()).device
    image_size = tuple(ckpt["image_size"])
    samples = list_samples(roots, split)
    samples = samples[:max_images] if max_images else samples
    label_res = eval_resolution == "label"
    ds = CityscapesDataset(samples, eval_transform(None if label_res else image_size), label_resolution=label_res)
    loader = DataLoader(ds, batch_size=batch_size, collate_fn=collate, num_workers=min(2, runtime.default_num_workers()))
    ev = evaluate(model, loader, device, image_size, inference=inference, per_image=per_image)
    resolution = "label" if label_res else f"train {image_size[0]}x{image_size[1]}"
    protocol = make_protocol(resolution=resolution, inference=inference, split=split, images=ev["images"],
                             data="synthetic" if roots.synthetic else str(roots.label_root))
    summary = ev["confusion"].summary(CLASS_NAMES, protocol)
    summary["seconds"] = ev["seconds"]
    summary["confusion_matrix"] = ev["confusion"].mat.cpu().tolist()
    if per_image:
        summary["per_image"] = [{"name": n, "miou": m} for n, m in ev["per_image"]]
    return summary


def run_evaluation(cfg: EvalConfig) -> tuple[dict, Path | None]:
    """`segkit evaluate`: a folder of predictions, or a checkpoint on a split. Returns (summary, file written)."""
    from segkit.run import write_json

    if cfg.predictions:
        summary = score_folder(cfg)
        out = Path(cfg.output) if cfg.output else None
    else:
        device = runtime.resolve_device(cfg.device)
        path = checkpoint_path(cfg.run_dir, cfg.checkpoint)
        model, ckpt = load_model(path, device)
        roots = data_roots_for(cfg.data_root, ckpt)
        summary = evaluate_checkpoint(model, ckpt, roots, cfg.split, cfg.inference, cfg.eval_resolution,
                                      cfg.batch_size, cfg.max_images, device)
        summary["checkpoint"] = str(path)
        # Never replace training's metrics.json silently: evaluations get their own name.
        out = Path(cfg.output) if cfg.output else path.parent / f"eval_{cfg.split}_{cfg.inference}_{cfg.eval_resolution}.json"
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_json(out, summary)
    return summary, out


def score_folder(cfg: EvalConfig) -> dict:
    """Score prediction PNGs against the split's gtFine labels (only gtFine is needed)."""
    from segkit.data.discover import list_samples
    from segkit.scoring import score_predictions

    roots = data_roots_for(cfg.data_root, None, need_images=False)
    samples = list_samples(roots, cfg.split, need_images=False)
    samples = samples[: cfg.max_images] if cfg.max_images else samples
    return score_predictions(Path(cfg.predictions), [s.label for s in samples], cfg.format, cfg.split,
                             inference=cfg.inference if cfg.inference != "whole" else "unknown")


# ----------------------------------------------------------------------------- predict


def normalise(image: np.ndarray, mean, std) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (1, 3, H, W) float normalised tensor, as the training transforms do."""
    from segkit.data.transforms import normalize_image

    return torch.from_numpy(normalize_image(image, tuple(mean), tuple(std))).permute(2, 0, 1)[None].contiguous()


def predict_image(model: torch.nn.Module, ckpt: dict, image: np.ndarray, inference: str = "whole") -> np.ndarray:
    """trainId prediction (H, W) uint8 at the image's own size."""
    from segkit.inference import infer

    device = next(model.parameters()).device
    norm = ckpt.get("normalization", {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)})
    x = normalise(image, norm["mean"], norm["std"]).to(device)
    scores = infer(model, x, tuple(ckpt["image_size"]), inference, size_divisor=getattr(model, "size_divisor", 32))
    return scores.argmax(1)[0].to(torch.uint8).cpu().numpy()


def run_prediction(cfg: PredictConfig) -> list[Path]:
    """`segkit predict`: one PNG per input image, at its size, in the requested format."""
    from segkit.data.cityscapes import read_image
    from segkit.inference import encode_prediction, list_images, prediction_name

    images = list_images(cfg.img)
    out_dir = Path(cfg.output)
    targets = [out_dir / prediction_name(p, cfg.format) for p in images]
    clobber = [t for t in targets if t.exists()]
    if clobber and not cfg.overwrite:
        raise SegkitError(
            f"{len(clobber)} prediction file(s) already exist in {out_dir} (e.g. {clobber[0].name}); "
            "choose another --output or pass --overwrite to replace them"
        )
    predictor = _predictor(cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for path, target in zip(images, targets):
        image = read_image(path)
        pred = predictor(image)
        array = encode_prediction(pred, image, cfg.format)
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if array.ndim == 3 else array
        if not cv2.imwrite(str(target), array):
            raise SegkitError(f"could not write {target}; is {out_dir} writable?")
    runtime.log.info("%d image(s) in %.1f s (%s inference, %s backend)", len(images), time.perf_counter() - start,
                     cfg.inference, cfg.backend)
    return targets


def _predictor(cfg: PredictConfig):
    """image (H, W, 3) uint8 -> trainIds (H, W) uint8, with the chosen backend."""
    if cfg.backend == "onnx":
        from segkit.export import onnx_predictor

        return onnx_predictor(Path(cfg.checkpoint), cfg.inference)
    device = runtime.resolve_device(cfg.device)
    model, ckpt = load_model(Path(cfg.checkpoint), device)
    return lambda image: predict_image(model, ckpt, image, cfg.inference)
