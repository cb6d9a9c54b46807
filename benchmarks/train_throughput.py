"""Training images/s of each preset's model at its training crop vs the seed's plain U-Net.

For every preset in `segkit.recipes.PRESETS` and for the seed's U-Net (base 64, depth 4) at 256x512:
a few optimizer steps (forward, cross-entropy, backward, AdamW; a frozen encoder or its BatchNorm
fixed where the recipe says so) on random batches after one warm-up step, each model in its own
process so that its peak memory is its own. Also the forward GFLOPs per image at the training size
(torch.utils.flop_counter; a training step costs about 3x that) and the peak memory (CUDA:
max_memory_allocated; CPU: peak RSS of the process, which includes ~0.3 GB of imported libraries).

    python benchmarks/train_throughput.py [--steps 2] [--batch-size 2] [--device auto] [--presets NAME ...]

Last line: `speedup_vs_seed_unet: X` (cpu-quick images/s / seed U-Net images/s).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time

import torch
import torch.nn.functional as F

from segkit.config import TrainConfig
from segkit.engine import finetune
from segkit.models import create_model
from segkit.recipes import PRESETS, apply_preset
from segkit.runtime import resolve_device

SEED_UNET = {
    "name": "seed unet (base 64)",
    "model": "unet",
    "encoder": "",
    "kwargs": {"base_channels": 64, "depth": 4},
    "image_size": (256, 512),
}


def jobs() -> list[dict]:
    """One job per preset (its model and training size) plus the seed's U-Net (preset seed is the same model)."""
    out = []
    for name in PRESETS:
        cfg = apply_preset(TrainConfig(preset=name), set())
        out.append(
            {
                "name": name,
                "model": cfg.model,
                "encoder": cfg.encoder,
                "kwargs": cfg.model_choice.options,
                "image_size": cfg.crop,
                "encoder_lr_scale": cfg.encoder_lr_scale,
                "freeze_encoder_bn": cfg.freeze_encoder_bn,
            }
        )
    return out + [SEED_UNET]


def gflops_per_image(model: torch.nn.Module, image_size: tuple[int, int], device: torch.device) -> float:
    """Forward FLOPs of one image (a multiply-add counts 2) in GFLOPs."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.zeros(1, 3, *image_size, device=device))
    return counter.get_total_flops() / 1e9


def measure(job: dict, steps: int, batch_size: int, device_name: str) -> dict:
    """Train `steps` steps after one warm-up step; images/s, GFLOPs/image, peak memory (MB)."""
    torch.manual_seed(0)
    device = resolve_device(device_name)
    # Speed does not depend on the initial weights: random init, nothing downloaded.
    model = create_model(job["model"], 19, encoder=job["encoder"], encoder_weights="none", **job["kwargs"]).to(device)
    # As the recipe trains: a frozen encoder runs forward only, a frozen BatchNorm keeps its statistics.
    finetune.prepare(model, job.get("encoder_lr_scale", 1.0), job.get("freeze_encoder_bn", False))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    h, w = job["image_size"]
    # 512x1024 on a CPU: as few images per step as training allows (BatchNorm after global pooling, as
    # in DeepLabV3+'s ASPP, needs 2).
    batch = batch_size if h * w <= 256 * 512 else 2
    image = torch.randn(batch, 3, h, w, device=device)  # (B, 3, H, W)
    mask = torch.randint(0, 19, (batch, h, w), device=device)  # (B, H, W)
    flops = gflops_per_image(model.eval(), (h, w), device)
    model.train()
    for step in range(steps + 1):
        if step == 1:  # the first step allocates and picks kernels: not timed
            _sync(device)
            start = time.perf_counter()
        loss = F.cross_entropy(model(image), mask, ignore_index=255)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    _sync(device)
    seconds = time.perf_counter() - start
    peak = (
        torch.cuda.max_memory_allocated(device) / 2**20
        if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    return {
        **job,
        "batch": batch,
        "images_per_sec": steps * batch / seconds,
        "gflops": flops,
        "peak_mb": peak,
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "device": str(device),
        "threads": torch.get_num_threads(),
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2, help="timed optimizer steps per model (after one warm-up)")
    parser.add_argument("--batch-size", type=int, default=2, help="images per step (2 at 512x1024)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda")
    parser.add_argument(
        "--presets", nargs="*", default=[], help="only these presets (with cpu-quick and the seed U-Net)"
    )
    args = parser.parse_args()
    wanted = set(args.presets) | {"cpu-quick", SEED_UNET["name"]} if args.presets else None
    results = {}
    with mp.get_context("spawn").Pool(1, maxtasksperchild=1) as pool:  # a fresh process per model
        for job in jobs():
            if wanted is not None and job["name"] not in wanted:
                continue
            r = pool.apply(measure, (job, args.steps, args.batch_size, args.device))
            results[job["name"]] = r
            label = r["model"] + (f"+{r['encoder']}" if r["encoder"] else "")
            print(
                f"{r['name']:<22} {label:<24} {r['image_size'][0]}x{r['image_size'][1]:<5} batch {r['batch']} "
                f"{r['params_m']:6.2f} M params {r['gflops']:7.1f} GFLOPs/img {r['images_per_sec']:7.2f} img/s "
                f"peak {r['peak_mb']:6.0f} MB ({r['device']}, {r['threads']} threads)",
                flush=True,
            )
    ratio = results["cpu-quick"]["images_per_sec"] / results[SEED_UNET["name"]]["images_per_sec"]
    print(f"speedup_vs_seed_unet: {ratio:.1f}")


if __name__ == "__main__":
    main()
