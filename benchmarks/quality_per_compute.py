"""Quality per compute: the mIoU cpu-quick reaches in a fixed CPU time, against other uses of that time.

Every candidate is a real `segkit train` run in its own process with the same wall-clock budget on
the same data, scored afterwards by `segkit evaluate` on its final weights (last.pth) with one
protocol: cityscapes-19 trainIds, the label files' own resolution, whole-image inference, the val
split (held out: generated from other seeds than train). Candidates: the `cpu-quick` preset as
shipped, the same recipe at other training sizes (always the seed's 256x512), and, with
--models, the same recipe and size with other models (smp architecture + encoder, random or
pretrained encoder: --encoder-weights). With no --data-root the data are synthetic (Cityscapes
layout, 512x1024 by default); --data-root takes any layout segkit finds, and --data-flags passes
the flags that pick one (e.g. "--label-set coarse") to training and evaluation. --variants gives
any other recipe the same budget: NAME=FLAGS, e.g. "big=--image-size 128 256 --crop-size 64 128".
Every candidate's per-class IoU is printed, with its worst class: the mean hides thin classes.

    python benchmarks/quality_per_compute.py [--budget-min 5] [--data-root DIR] [--sizes 96x192 ...]
        [--models fpn+tu-resnet10t segformer+mit_b0 ...] [--encoder-weights none|imagenet]
        [--variants "NAME=--flag value ..." ...] [--data-flags "..."]

The preset's own budget is 15 minutes; 5 minutes per candidate keeps this benchmark near 30 minutes.
Last line: `quality_per_compute: X` = cpu-quick mIoU / mIoU of the same recipe and budget at 256x512.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

SEED_SIZE = (256, 512)  # the seed notebook's training size


def parse_size(text: str) -> tuple[int, int]:
    h, _, w = text.partition("x")
    return int(h), int(w)


def run(command: list[str]) -> tuple[float, float]:
    """Run a segkit command in its own process; (seconds, peak RSS of that process in MB)."""
    start = time.perf_counter()
    process = subprocess.Popen(command)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"failed ({process.returncode}): {' '.join(command)}")
    return time.perf_counter() - start, usage.ru_maxrss / 1024


def candidate(name: str, size: tuple[int, int] | None, args: argparse.Namespace, data_root: Path,
              model_flags: tuple[str, ...] = ()) -> dict:
    """Train one candidate for the budget, then score its last weights with the official protocol."""
    run_dir = Path(args.work_dir) / "runs" / name.replace(" ", "_")
    train = [sys.executable, "-m", "segkit", "train", "--preset", "cpu-quick", "--data-root", str(data_root),
             "--run-dir", str(run_dir), "--time-budget", str(args.budget_min), "--overwrite", "--seed", "0"]
    if size is not None:
        train += ["--image-size", str(size[0]), str(size[1])]
    train += list(model_flags) + shlex.split(args.data_flags)
    print(f"\n=== {name}: training for {args.budget_min} min", flush=True)
    seconds, peak_mb = run(train)
    history = _history(run_dir)
    report = run_dir / "eval_last.json"
    split, eval_flags = eval_split_and_flags(shlex.split(args.data_flags))
    run([sys.executable, "-m", "segkit", "evaluate", "--checkpoint", str(run_dir / "last.pth"),
         "--data-root", str(data_root), "--split", split, "--eval-resolution", "label", "--output", str(report),
         *eval_flags])
    metrics = json.loads(report.read_text())
    config = json.loads((run_dir / "config.json").read_text())["config"]
    speeds = sorted(float(r["images_per_sec"]) for r in history)
    return {"name": name, "size": tuple(config["image_size"]), "epochs": len(history),
            "images_per_sec": speeds[len(speeds) // 2], "images_seen": int(history[-1]["steps"]) * config["batch_size"],
            "wall_min": seconds / 60, "peak_mb": peak_mb, "miou": 100 * metrics["miou"],
            "pixel_accuracy": 100 * metrics["pixel_accuracy"], "protocol": metrics["protocol"],
            "per_class": {k: v["iou"] for k, v in metrics["per_class"].items() if v["iou"] is not None}}


def eval_split_and_flags(flags: list[str]) -> tuple[str, list[str]]:
    """The split training validated on (--val-split, default val) and the data flags evaluate takes."""
    split, keep, words = "val", [], iter(flags)
    for word in words:
        if word in ("--train-split", "--val-split"):
            value = next(words, "val")
            split = value if word == "--val-split" else split
        else:
            keep.append(word)
    return split, keep


def _history(run_dir: Path) -> list[dict]:
    with open(run_dir / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget-min", type=float, default=5.0, help="training minutes per candidate")
    parser.add_argument("--data-root", default="", help="data in the Cityscapes layout; '' = synthetic")
    parser.add_argument("--train-images", type=int, default=120, help="synthetic train images")
    parser.add_argument("--val-images", type=int, default=30, help="synthetic val images")
    parser.add_argument("--synthetic-size", default="512x1024", help="synthetic image size HxW")
    parser.add_argument("--sizes", nargs="*", default=["96x192", "128x256", "256x512"],
                        help="other training sizes to give the same budget (256x512 is the reference)")
    parser.add_argument("--models", nargs="*", default=[],
                        help="other models to give the same budget at the preset's size, as MODEL+ENCODER (e.g. fpn+tu-resnet10t)")
    parser.add_argument("--encoder-weights", default="none",
                        help="encoder init for --models: none (random, as cpu-quick's U-Net) or imagenet (needs the weights)")
    parser.add_argument("--variants", nargs="*", default=[],
                        help='other recipes to give the same budget, as NAME=FLAGS (e.g. "big=--image-size 128 256 --crop-size 64 128")')
    parser.add_argument("--data-flags", default="", help="flags for both train and evaluate that pick the data's layout")
    parser.add_argument("--work-dir", default="runs/benchmarks/quality", help="data and runs go here")
    args = parser.parse_args()

    data_root = Path(args.data_root) if args.data_root else Path(args.work_dir) / "synthetic"
    if not args.data_root:
        h, w = parse_size(args.synthetic_size)
        run([sys.executable, "-m", "segkit", "synth", "--out", str(data_root), "--num-train", str(args.train_images),
             "--num-val", str(args.val_images), "--image-size", str(h), str(w), "--seed", "0", "--overwrite"])
    from segkit.config import PRESETS

    preset_size = tuple(PRESETS["cpu-quick"]["fields"]["image_size"])
    sizes = [parse_size(s) for s in args.sizes]
    sizes = [s for s in dict.fromkeys(sizes + [SEED_SIZE]) if s != preset_size]  # the reference runs always
    results = [candidate("cpu-quick", None, args, data_root)]
    results += [candidate(f"cpu-quick at {h}x{w}", (h, w), args, data_root) for h, w in sizes]
    for spec in args.models:
        model, _, encoder = spec.partition("+")
        flags = ("--model", model, "--encoder", encoder, "--encoder-weights", args.encoder_weights)
        results.append(candidate(f"{spec} ({args.encoder_weights})", None, args, data_root, flags))
    for spec in args.variants:
        name, _, flags = spec.partition("=")
        results.append(candidate(name, None, args, data_root, tuple(shlex.split(flags))))

    print(f"\nsame budget each: {args.budget_min} min of training; protocol: {results[0]['protocol']}")
    print(f"{'candidate':<34} {'size':>9} {'img/s':>6} {'images':>7} {'epochs':>6} {'peak RSS':>9} "
          f"{'pix acc':>8} {'mIoU':>6}")
    for r in results:
        print(f"{r['name']:<34} {r['size'][0]:>4}x{r['size'][1]:<4} {r['images_per_sec']:>6.1f} "
              f"{r['images_seen']:>7} {r['epochs']:>6} {r['peak_mb']:>6.0f} MB {r['pixel_accuracy']:>7.1f}% "
              f"{r['miou']:>6.1f}")
    print_per_class(results)
    best = max(results, key=lambda r: r["miou"])
    if best is not results[0]:
        print(f"note: {best['name']} beat the shipped cpu-quick in this run; consider changing the preset")
    reference = next(r for r in results if r["size"] == SEED_SIZE and r is not results[0])
    print(f"quality_per_compute: {results[0]['miou'] / max(reference['miou'], 1e-9):.2f}")


def print_per_class(results: list[dict]) -> None:
    """IoU (%) of every class any candidate was scored on, one column per candidate, then the worst."""
    classes = list(dict.fromkeys(c for r in results for c in r["per_class"]))
    names = [f"#{i}" for i in range(len(results))]
    print("\nper-class IoU (%); " + ", ".join(f"{n} = {r['name']}" for n, r in zip(names, results)))
    print(f"{'class':<15}" + "".join(f"{n:>7}" for n in names))
    for c in classes:
        print(f"{c:<15}" + "".join(f"{100 * r['per_class'][c]:>7.1f}" if c in r["per_class"] else f"{'-':>7}" for r in results))
    for n, r in zip(names, results):
        worst = min(r["per_class"], key=r["per_class"].get)
        print(f"worst class of {n} {r['name']}: {worst} {100 * r['per_class'][worst]:.1f}")


if __name__ == "__main__":
    main()
