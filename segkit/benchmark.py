"""`segkit benchmark`: how fast each inference backend runs a model, what memory it takes, what it costs in mIoU.

For a checkpoint, a released model, or a preset's architecture with random weights (speed alone),
each backend of `segkit.backends` runs in a process of its own, so that its peak memory is its own
(the peak resident set size of a process that imports torch, builds that backend and runs it; on
CUDA `torch.cuda.max_memory_allocated`, which sees PyTorch's allocations only). After `warmup`
untimed runs it times:

- the model alone: a (batch_size, 3, H, W) normalised tensor in, logits out (p50/p90/p99 latency, frames/s);
- the whole path a user runs, one frame at a time: decode a PNG -> preprocess -> forward -> class
  map -> colour PNG written (`segkit predict --image-size H W`'s path: `segkit.inference.predict_image`),
  the network at the frame size as when timed alone.

With `--data-root` every backend predicts the validation split too: its mIoU, its change against
eager's, and whether its class maps equal eager's. The result goes to speed.json beside the
checkpoint (written whole or not at all), which `segkit predict --backend auto` reads; when the
checkpoint is a training run's (its folder has tb/), the table goes into that TensorBoard as text.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from segkit import backends, progress, runtime
from segkit.checkpoint import atomic_save
from segkit.config import BenchmarkConfig, TrainConfig
from segkit.data.cityscapes import read_sample, sample_image
from segkit.data.discover import list_samples
from segkit.data.spaces import space_of
from segkit.data.transforms import resize_image
from segkit.errors import SegkitError
from segkit.evaluation.command import data_roots_for
from segkit.files import write_json
from segkit.inference import encode_prediction, predict_image, predicted_classes
from segkit.labels import NUM_CLASSES, space_of_record
from segkit.metrics import ConfusionMatrix
from segkit.models import at_image_size, build_model, checkpoint_payload, facts, open_checkpoint
from segkit.recipes import apply_preset
from segkit.reflect import add_config_flags, config_from_args

MEMORY_NOTE = {
    "cpu": "peak RSS of a process that runs only this backend (torch imported)",
    "cuda": "torch.cuda.max_memory_allocated (PyTorch's allocations; onnxruntime's are not counted)",
}


# ----------------------------------------------------------------------------- the whole benchmark


def run_benchmark(cfg: BenchmarkConfig) -> tuple[dict, Path]:
    """Time every requested backend, each in its own process; write speed.json. Returns (record, its path)."""
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise SegkitError(
            "--device cuda: CUDA is not available on this machine (torch.cuda.is_available() is False); "
            "use --device cpu, or run on a GPU machine"
        )
    checkpoint, out = _checkpoint_and_output(cfg)
    ckpt = open_checkpoint(checkpoint)
    image_size = tuple(cfg.image_size) if tuple(cfg.image_size) != (0, 0) else tuple(ckpt["image_size"])
    _check_divisible(image_size, ckpt)
    threads = cfg.threads or len(os.sched_getaffinity(0))
    names = _requested(cfg)
    with tempfile.TemporaryDirectory(prefix="segkit-benchmark-") as work:
        frame = _write_frame(Path(work) / "frame.png", image_size, cfg.data_root, ckpt)
        spec = {
            "checkpoint": str(checkpoint),
            "device": cfg.device,
            "threads": threads,
            "image_size": list(image_size),
            "batch_size": cfg.batch_size,
            "warmup": cfg.warmup,
            "iterations": cfg.iterations,
            "frame": str(frame),
            "data_root": cfg.data_root,
            "max_images": cfg.max_images,
            "calibration_images": cfg.calibration_images,
        }
        results = _measure_all(names, spec, Path(work))
    record = {
        "device": _device_name(cfg.device),
        "threads": threads,
        "image_size": list(image_size),
        "batch_size": cfg.batch_size,
        "torch": torch.__version__,
        "backends": results,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, record)
    if cfg.checkpoint:
        _to_tensorboard(Path(checkpoint).parent, record)
    return record, out


def _to_tensorboard(folder: Path, record: dict) -> None:
    """The table as text in the run's TensorBoard when the checkpoint is a training run's (its folder has tb/)."""
    if not (folder / "tb").is_dir():
        return
    from segkit.tb import write_text  # imports TensorBoard: only for a run directory

    size = "x".join(str(s) for s in record["image_size"])
    tag = f"benchmark/{record['device'][:4]}_{size}"
    runtime.log.info("speed table added to %s as text %s", write_text(folder, tag, format_table(record)), tag)


def _checkpoint_and_output(cfg: BenchmarkConfig) -> tuple[str, Path]:
    """The checkpoint to time (a preset's: written now with random weights) and where speed.json goes."""
    if cfg.checkpoint:
        ckpt = open_checkpoint(cfg.checkpoint)  # a clear error for a missing or foreign file
        return cfg.checkpoint, Path(cfg.output) if cfg.output else backends.speed_path(cfg.checkpoint, ckpt)
    folder = Path(cfg.output).parent if cfg.output else Path("runs") / "benchmark" / cfg.preset
    path = preset_checkpoint(cfg.preset, folder / "random_weights.pth", cfg.image_size)
    return str(path), Path(cfg.output) if cfg.output else folder / backends.SPEED_FILE


def preset_checkpoint(preset: str, path: Path, image_size: tuple[int, int] = (0, 0)) -> Path:
    """A segkit checkpoint of a preset's architecture with seeded random weights (speed does not depend on them).

    Args:
        preset: a `segkit presets` name.
        path: the file to write.
        image_size: the size it runs at, (0, 0) = the preset's (its `infer_size`, else its `image_size`).
    """
    cfg = apply_preset(TrainConfig(preset=preset), explicit={"preset"})
    torch.manual_seed(0)
    model = build_model(dataclasses.replace(cfg.model_choice, encoder_weights=""), NUM_CLASSES)  # no weights to fetch
    size = tuple(image_size) if tuple(image_size) != (0, 0) else cfg.inference_size
    payload = checkpoint_payload(model, size, random_weights=f"preset {preset}, seed 0 (segkit benchmark: speed alone)")
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_save(payload, path)


def _check_divisible(image_size: tuple[int, ...], ckpt: dict) -> None:
    from segkit.models import model_from_checkpoint

    divisor = facts(model_from_checkpoint(ckpt)).size_divisor
    if image_size[0] % divisor or image_size[1] % divisor:
        near = tuple(max(divisor, round(s / divisor) * divisor) for s in image_size)
        raise SegkitError(
            f"--image-size {image_size[0]} {image_size[1]}: the model alone takes sizes that are multiples of "
            f"{divisor}; try --image-size {near[0]} {near[1]}"
        )


def _requested(cfg: BenchmarkConfig) -> list[str]:
    """The backends to list: those asked for (else every one for the device), eager first (the reference)."""
    names = list(cfg.backends) or [n for n, b in backends.BACKENDS.items() if cfg.device in b.devices]
    return ["eager", *[n for n in dict.fromkeys(names) if n != "eager"]]


def _device_name(device: str) -> str:
    if device == "cuda":
        return f"cuda ({torch.cuda.get_device_name()})"
    return "cpu"


def _measure_all(names: list[str], spec: dict, work: Path) -> dict[str, dict]:
    """Each backend measured in a child process; class maps compared with eager's; mIoU change against eager's."""
    results: dict[str, dict] = {}
    reference: dict[str, np.ndarray] = {}
    bar = progress.bar(names, desc="benchmark", unit="backend", every=None)
    for name in bar:
        bar.set_postfix_str(name)
        why = backends.unavailable(name, spec["device"])
        if why is None:
            rec, maps = _run_child(name, spec, work)
        else:
            rec, maps = {"unavailable": why}, {}
        if "unavailable" in rec:
            runtime.log.info("%s: not measured: %s", name, rec["unavailable"])
            results[name] = _empty(rec["unavailable"])
            continue
        if name == "eager":
            reference = maps
        same = bool(maps) and maps.keys() == reference.keys() and all(maps[k].shape == reference[k].shape for k in maps)
        agree = sum(int((maps[k] == reference[k]).sum()) for k in maps) if same else 0
        total = sum(m.size for m in maps.values())
        rec["pixel_agreement"] = agree / total if same and total else None  # share of class-map pixels = eager's
        rec["outputs_equal"] = same and agree == total
        eager_miou = results.get("eager", rec).get("miou")
        rec["miou_delta"] = None if rec["miou"] is None or eager_miou is None else rec["miou"] - eager_miou
        results[name] = rec
        if not progress.watching():  # headless, the bar is silent: a line per backend says how far it got
            runtime.log.info(
                "%s: %.1f frames/s (model), %.1f end to end, p50 %.1f ms [%d of %d backends]",
                name,
                rec["fps"],
                rec["end_to_end_fps"],
                rec["latency_ms"]["p50"],
                len(results),
                len(names),
            )
    return results


def _empty(why: str) -> dict:
    return {
        "latency_ms": None,
        "fps": None,
        "end_to_end_fps": None,
        "peak_memory_mb": None,
        "miou": None,
        "miou_delta": None,
        "outputs_equal": None,
        "pixel_agreement": None,
        "unavailable": why,
    }


def _run_child(name: str, spec: dict, work: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """`python -m segkit.benchmark SPEC` for one backend: its record and class maps (or why it failed)."""
    spec_path, result_path, maps_path = (work / f"{name}.{ext}" for ext in ("spec.json", "json", "npz"))
    spec_path.write_text(json.dumps({**spec, "backend": name, "result": str(result_path), "maps": str(maps_path)}))
    done = subprocess.run(
        [sys.executable, "-m", "segkit.benchmark", str(spec_path)], stderr=subprocess.PIPE, text=True, check=False
    )
    if done.returncode != 0 or not result_path.is_file():
        last = [line for line in done.stderr.strip().splitlines() if line.strip()][-1:] or ["no message"]
        return {"unavailable": f"failed here (exit status {done.returncode}): {last[0].strip()}"}, {}
    with np.load(maps_path) as maps:
        return json.loads(result_path.read_text()), {k: maps[k] for k in maps.files}


# ----------------------------------------------------------------------------- one backend (the child)


def measure(spec: dict) -> tuple[dict, dict[str, np.ndarray]]:
    """Build one backend and measure it as `run_benchmark` describes. Returns (record, class maps)."""
    torch.set_num_threads(spec["threads"])
    cuda = spec["device"] == "cuda"
    ckpt = open_checkpoint(spec["checkpoint"])
    ctx = backends.BuildContext(
        spec["checkpoint"],
        ckpt,
        device=spec["device"],
        threads=spec["threads"],
        data_root=spec["data_root"],
        calibration_images=spec["calibration_images"],
    )
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    model = backends.load_backend(ctx, spec["backend"])
    x = torch.randn(spec["batch_size"], 3, *spec["image_size"], generator=torch.Generator().manual_seed(0))
    x = x.to(spec["device"])  # (B, 3, H, W)

    def forward() -> torch.Tensor:
        return model(x)

    with torch.no_grad():
        latencies = _timed(forward, spec["warmup"], spec["iterations"], cuda)
        maps = {"timing": predicted_classes(model(x)).to(torch.uint8).cpu().numpy()}
    at_size = at_image_size(ckpt, spec["image_size"])  # the user's path with the network at the frame size too
    e2e = _timed(lambda: _end_to_end(model, at_size, spec["frame"]), spec["warmup"], spec["iterations"], cuda)
    miou = None
    if spec["data_root"]:
        miou, val_maps = _score(model, at_size, spec["data_root"], spec["max_images"])
        maps.update(val_maps)
    p50, p90, p99 = (float(v) for v in np.percentile(latencies, [50, 90, 99]))
    record = {
        "latency_ms": {"p50": 1000 * p50, "p90": 1000 * p90, "p99": 1000 * p99},
        "fps": spec["batch_size"] * len(latencies) / float(np.sum(latencies)),
        "end_to_end_fps": len(e2e) / float(np.sum(e2e)),
        "peak_memory_mb": _peak_memory_mb(cuda),
        "miou": miou,
    }
    return record, maps


def _timed(fn: Any, warmup: int, iterations: int, cuda: bool) -> list[float]:
    """Seconds of each of `iterations` calls of `fn`, after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iterations):
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def _end_to_end(model: torch.nn.Module, ckpt: dict, frame: str) -> None:
    """What `segkit predict` does with one image: decode, predict (preprocess, forward, class map), colour PNG."""
    bgr = cv2.imread(frame, cv2.IMREAD_COLOR)
    image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    pred = predict_image(model, ckpt, image)
    out = encode_prediction(pred, image, "color")
    ok, _ = cv2.imencode(".png", cv2.cvtColor(out, cv2.COLOR_RGB2BGR))
    assert ok


def _score(model: torch.nn.Module, ckpt: dict, data_root: str, max_images: int) -> tuple[float, dict]:
    """mIoU on the validation split through the user's path (whole inference, labels at their own size)."""
    roots = data_roots_for(data_root, ckpt)
    space, (labelled, where) = space_of_record(ckpt), space_of("", roots)
    if labelled != space:
        raise SegkitError(
            f"the model predicts {space.describe()} and {roots.label_root} is labelled in {labelled.describe()} "
            f"({where}): segkit benchmark scores a model on data of its own classes. Fix: give a --data-root "
            "labelled like the model, or score it across spaces with segkit evaluate --class-map"
        )
    samples = list_samples(roots, "val")
    samples = samples[:max_images] if max_images else samples
    cm = ConfusionMatrix(space.num_classes)
    maps = {}
    for i, sample in enumerate(samples):
        image, label = read_sample(sample, space)
        pred = predict_image(model, ckpt, image)
        cm.update(torch.from_numpy(pred), torch.from_numpy(label))
        maps[f"val{i}"] = pred
    return cm.miou(), maps


def _peak_memory_mb(cuda: bool) -> float:
    if cuda:
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def _write_frame(path: Path, image_size: tuple[int, ...], data_root: str, ckpt: dict) -> Path:
    """The frame the end-to-end path decodes: a validation image at `image_size`, else a seeded smooth random one."""
    h, w = image_size
    if data_root:
        samples = list_samples(data_roots_for(data_root, ckpt), "val")
        image = resize_image(sample_image(samples[0]), (h, w))
    else:
        rng = np.random.default_rng(0)
        small = rng.integers(0, 256, (max(1, h // 16), max(1, w // 16), 3), dtype=np.uint8)
        image = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)  # photo-like: smooth, compresses as one
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


# ----------------------------------------------------------------------------- the table and the CLI


def _equal(r: dict) -> str:
    """ "yes", or "no" with the share of class-map pixels equal to eager's (a lossless runtime that fuses
    or reorders floating-point operations flips a few near-tied pixels)."""
    if r["outputs_equal"]:
        return "yes"
    agreement = r.get("pixel_agreement")
    return "no" if agreement is None else f"no ({100 * agreement:.2f}% px)"


def format_table(record: dict) -> str:
    """speed.json as a table: one row per backend; mIoU and its change in points."""
    head = f"{'backend':<17} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'fps':>7} {'e2e fps':>8} {'peak MB':>8} "
    head += f"{'mIoU':>6} {'change':>7}  equal"
    size = "x".join(str(s) for s in record["image_size"])
    memory = MEMORY_NOTE[record["device"][:4]]
    title = f"{record['device']}, {record['threads']} thread(s), {size}, batch {record['batch_size']}, "
    lines = [title + f"torch {record['torch']}; peak memory: {memory}", head]
    for name, r in record["backends"].items():
        if r.get("unavailable"):
            lines.append(f"{name:<17} not measured: {r['unavailable']}")
            continue
        lat = r["latency_ms"]
        miou = "-" if r["miou"] is None else f"{100 * r['miou']:.1f}"
        delta = "-" if r["miou_delta"] is None else f"{100 * r['miou_delta']:+.2f}"
        lines.append(
            f"{name:<17} {lat['p50']:>8.1f} {lat['p90']:>8.1f} {lat['p99']:>8.1f} {r['fps']:>7.1f} "
            f"{r['end_to_end_fps']:>8.1f} {r['peak_memory_mb']:>8.0f} {miou:>6} {delta:>7}  "
            f"{_equal(r)}"
        )
    return "\n".join(lines)


def register_cli(sub: Any) -> None:
    """`segkit benchmark`: every BenchmarkConfig field is a flag."""
    p = sub.add_parser(
        "benchmark",
        help="latency, frames/s, peak memory and mIoU cost of each inference backend",
        description=__doc__.split("\n\n")[0],
    )
    add_config_flags(p, BenchmarkConfig)
    p.set_defaults(func=cmd_benchmark)


def cmd_benchmark(args: argparse.Namespace) -> int:
    cfg, _ = config_from_args(BenchmarkConfig, args)
    record, out = run_benchmark(cfg)
    print(format_table(record))
    print(f"wrote {out}")
    return 0


def _child_main(spec_path: str) -> int:
    """The child process: measure one backend, write its record (JSON) and class maps (npz)."""
    from segkit.progress import setup_logging

    setup_logging()
    spec = json.loads(Path(spec_path).read_text())
    try:
        record, maps = measure(spec)
    except SegkitError as e:
        print(f"{spec['backend']}: {e}", file=sys.stderr)
        return 2
    np.savez(spec["maps"], **maps)
    Path(spec["result"]).write_text(json.dumps(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(_child_main(sys.argv[1]))
