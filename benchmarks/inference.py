"""CPU inference at 1024x2048: onnxruntime against eager PyTorch, same model, same thread count.

The model is the `cpu-quick` preset's architecture (U-Net, base 16, depth 4) with seeded random
weights: speed does not depend on the weights. Its checkpoint says image_size 1024x2048, so the
network runs at the full Cityscapes resolution. Timed: the forward pass (1, 3, 1024, 2048) ->
logits, best of a few repetitions after one warm-up; then one end-to-end `segkit predict` call per
backend (normalise, resize, forward, upsample, argmax), timed once.

    python benchmarks/inference.py [--threads 2] [--repeats 3] [--work-dir runs/benchmarks/inference]

Last line: `onnx_speedup: X` (eager PyTorch forward time / onnxruntime forward time).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from segkit.checkpoint import FORMAT, VERSION, atomic_save, load_checkpoint
from segkit.data.transforms import MEAN, STD
from segkit.export import OnnxModel, export_onnx
from segkit.inference import load_predictor, predict_image
from segkit.models import create_model, model_from_checkpoint, model_spec

FULL_SIZE = (1024, 2048)


def write_checkpoint(path: Path) -> Path:
    """A segkit checkpoint of the cpu-quick architecture (seeded weights) at image_size 1024x2048."""
    torch.manual_seed(0)
    model = create_model("unet", 19, base_channels=16, depth=4)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model": model.state_dict(),
        "model_spec": model_spec(model),
        "num_classes": 19,
        "image_size": list(FULL_SIZE),
        "normalization": {"mean": list(MEAN), "std": list(STD)},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_save(payload, path)


def best_seconds(fn, repeats: int) -> float:
    """Best wall time of `repeats` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="threads for both backends")
    parser.add_argument("--repeats", type=int, default=3, help="timed repetitions after one warm-up")
    parser.add_argument("--work-dir", default="runs/benchmarks/inference", help="checkpoint and .onnx go here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ckpt_path = write_checkpoint(Path(args.work_dir) / "best_model.pth")
    onnx_path = export_onnx(ckpt_path, ckpt_path.with_suffix(".onnx"))
    ckpt = load_checkpoint(ckpt_path)
    torch_model = model_from_checkpoint(ckpt)
    ort_model = OnnxModel(onnx_path, threads=args.threads)
    x = torch.randn(1, 3, *FULL_SIZE, generator=torch.Generator().manual_seed(0))  # (1, 3, H, W)

    with torch.no_grad():
        agree = (torch_model(x).argmax(1) == ort_model(x).argmax(1)).float().mean().item()
        t_torch = best_seconds(lambda: torch_model(x), args.repeats)
    t_ort = best_seconds(lambda: ort_model(x), args.repeats)
    print(
        f"model: unet base 16 depth 4 (cpu-quick architecture), input 1x3x{FULL_SIZE[0]}x{FULL_SIZE[1]}, "
        f"{args.threads} threads, torch {torch.__version__}"
    )
    print(
        f"forward: eager PyTorch {t_torch:.2f} s, onnxruntime {t_ort:.2f} s (best of {args.repeats}); "
        f"argmax agreement {agree:.5f}"
    )

    image = np.random.default_rng(0).integers(0, 256, (*FULL_SIZE, 3), dtype=np.uint8)
    ort_predict = load_predictor(ckpt_path, "onnx")
    e2e_torch = timed(lambda: predict_image(torch_model, ckpt, image))  # both already warm
    e2e_ort = timed(lambda: ort_predict(image))
    print(f"end to end (segkit predict, one image): torch {e2e_torch:.2f} s, onnx {e2e_ort:.2f} s")
    print(f"onnx_speedup: {t_torch / t_ort:.2f}")


if __name__ == "__main__":
    main()
