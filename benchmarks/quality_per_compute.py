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

Pretrained against scratch, per class, at equal time (one command):

    python benchmarks/quality_per_compute.py --pretrained --equal-steps --budget-min 15 \
        --data-root /work/shared/data/kitti-mini --seeds 0 1

runs `cpu-quick` (random init), `cpu-pretrained` (ImageNet encoder; its weights must be findable:
hub cache, $SEGKIT_WEIGHTS_DIR, /kaggle/input, else the preset's own message stops it) and
`cpu-pretrained` from random init (`--encoder-weights none`, the same recipe), and ends with
`pretrained_vs_scratch: X` = cpu-pretrained mIoU / cpu-quick mIoU (mean over seeds).

`--side-by-side` is the other answer to a shared machine: a seed's candidates train at the same
time, one thread each, so the scheduler gives each the same share of whatever CPU is left; equal
wall-clock time is then equal CPU time, though less of it than on idle cores. `--equal-steps` is for
shared machines, where equal wall-clock budgets are not equal work. A calibration, back to back,
trains each candidate twice (1 epoch, then 1 + enough epochs for --calibrate-images images) and
takes the difference of the two runs' CPU time (the training process and its data workers, `wait4`):
CPU seconds per training image with data loading, start-up and evaluation cancelled out. Each
candidate then trains for the images it would see in the budget on idle cores, cpu-quick's
--anchor-img-s (images/s of a real run on 2 idle cores) times the ratio of cpu-quick's CPU cost per
image to the candidate's, as a number of epochs with no time budget. """

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


def train_command(run_dir: Path, data_root: Path, flags: list[str], seed: int = 0) -> list[str]:
    """`segkit train` on cpu-quick's recipe, then `flags` (a later --preset replaces cpu-quick)."""
    return [
        sys.executable,
        "-m",
        "segkit",
        "train",
        "--preset",
        "cpu-quick",
        "--data-root",
        str(data_root),
        "--run-dir",
        str(run_dir),
        "--overwrite",
        "--seed",
        str(seed),
        *flags,
    ]


def cpu_run(command: list[str]) -> float:
    """CPU seconds (user + system) of a command's process and the data workers it waited for."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(command)}")
    return usage.ru_utime + usage.ru_stime


def calibrate(name: str, flags: list[str], args: argparse.Namespace, data_root: Path) -> dict:
    """CPU seconds per training image (data loading included): two runs, 1 and 1 + k epochs, differenced."""
    run_dir = Path(args.work_dir) / "calibration" / name.replace(" ", "_")
    common = ["--time-budget", "0", "--eval-every", "100000", *flags, *shlex.split(args.data_flags)]
    short = cpu_run(train_command(run_dir, data_root, [*common, "--epochs", "1"]))
    per_epoch = int(_history(run_dir)[-1]["steps"]) * _config(run_dir)["batch_size"]
    extra = max(1, -(-args.calibrate_images // per_epoch))
    long = cpu_run(train_command(run_dir, data_root, [*common, "--epochs", str(1 + extra)]))
    cost = (long - short) / (extra * per_epoch)
    print(
        f"calibration {name}: {cost * 1000:.1f} CPU ms per training image ({extra} epochs of {per_epoch})", flush=True
    )
    return {"cpu_s_per_image": cost, "images_per_epoch": per_epoch}


def candidate(
    name: str,
    size: tuple[int, int] | None,
    args: argparse.Namespace,
    data_root: Path,
    model_flags: tuple[str, ...] = (),
    seed: int = 0,
    epochs: int | None = None,
) -> dict:
    """Train one candidate for the budget (or `epochs`, no budget), then score its last weights officially."""
    run_dir = Path(args.work_dir) / "runs" / f"{name}_seed{seed}".replace(" ", "_")
    limit = (
        ["--time-budget", str(args.budget_min)] if epochs is None else ["--time-budget", "0", "--epochs", str(epochs)]
    )
    flags = limit + ([] if size is None else ["--image-size", str(size[0]), str(size[1])])
    train = train_command(run_dir, data_root, flags + list(model_flags) + shlex.split(args.data_flags), seed)
    print(
        f"\n=== {name}, seed {seed}: training for "
        + (f"{args.budget_min} min" if epochs is None else f"{epochs} epochs (equal steps)"),
        flush=True,
    )
    seconds, peak_mb = run(train)
    history = _history(run_dir)
    report = run_dir / "eval_last.json"
    split, eval_flags = eval_split_and_flags(shlex.split(args.data_flags))
    run(
        [
            sys.executable,
            "-m",
            "segkit",
            "evaluate",
            "--checkpoint",
            str(run_dir / "last.pth"),
            "--data-root",
            str(data_root),
            "--split",
            split,
            "--eval-resolution",
            "label",
            "--output",
            str(report),
            *eval_flags,
        ]
    )
    metrics = json.loads(report.read_text())
    config = json.loads((run_dir / "config.json").read_text())["config"]
    speeds = sorted(float(r["images_per_sec"]) for r in history)
    return {
        "name": name,
        "seed": seed,
        "size": tuple(config["image_size"]),
        "epochs": len(history),
        "images_per_sec": speeds[len(speeds) // 2],
        "images_seen": int(history[-1]["steps"]) * config["batch_size"],
        "wall_min": seconds / 60,
        "peak_mb": peak_mb,
        "miou": 100 * metrics["miou"],
        "pixel_accuracy": 100 * metrics["pixel_accuracy"],
        "protocol": metrics["protocol"],
        "per_class": {k: v["iou"] for k, v in metrics["per_class"].items() if v["iou"] is not None},
    }


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


def _config(run_dir: Path) -> dict:
    return json.loads((run_dir / "config.json").read_text())["config"]


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
    parser.add_argument(
        "--sizes",
        nargs="*",
        default=["96x192", "128x256", "256x512"],
        help="other training sizes to give the same budget (256x512 is the reference)",
    )
    parser.add_argument(
        "--models",
        nargs="*",
        default=[],
        help="other models to give the same budget at the preset's size, as MODEL+ENCODER (e.g. fpn+tu-resnet10t)",
    )
    parser.add_argument(
        "--encoder-weights",
        default="none",
        help="encoder init for --models: none (random, as cpu-quick's U-Net) or imagenet (needs the weights)",
    )
    parser.add_argument(
        "--variants",
        nargs="*",
        default=[],
        help="other recipes to give the same budget, as NAME=FLAGS "
        '(e.g. "big=--image-size 128 256 --crop-size 64 128")',
    )
    parser.add_argument(
        "--pretrained",
        action="store_true",
        help="compare cpu-quick, cpu-pretrained and cpu-pretrained from random init (no size sweep)",
    )
    parser.add_argument(
        "--equal-steps",
        action="store_true",
        help="equal work instead of equal wall-clock: calibrate CPU cost per image, train for epochs",
    )
    parser.add_argument(
        "--anchor-img-s",
        type=float,
        default=0.0,
        help="--equal-steps: cpu-quick's training images/s on 2 idle cores on this data (0 = measure it now)",
    )
    parser.add_argument("--calibrate-images", type=int, default=300, help="--equal-steps: images per calibration")
    parser.add_argument("--seeds", nargs="*", type=int, default=[0], help="seeds; every candidate runs with each")
    parser.add_argument(
        "--side-by-side",
        action="store_true",
        help="train a seed's candidates at the same time, one thread each (a shared machine: equal load)",
    )
    parser.add_argument(
        "--data-flags", default="", help="flags for both train and evaluate that pick the data's layout"
    )
    parser.add_argument("--work-dir", default="runs/benchmarks/quality", help="data and runs go here")
    args = parser.parse_args()

    data_root = Path(args.data_root) if args.data_root else Path(args.work_dir) / "synthetic"
    if not args.data_root:
        h, w = parse_size(args.synthetic_size)
        run(
            [
                sys.executable,
                "-m",
                "segkit",
                "synth",
                "--out",
                str(data_root),
                "--num-train",
                str(args.train_images),
                "--num-val",
                str(args.val_images),
                "--image-size",
                str(h),
                str(w),
                "--seed",
                "0",
                "--overwrite",
            ]
        )
    plan = candidates(args)
    epochs = equal_step_epochs(plan, args, data_root) if args.equal_steps else {}
    if args.side_by_side:  # all of a seed's candidates at once: they share the machine's load alike
        from concurrent.futures import ThreadPoolExecutor

        os.environ["OMP_NUM_THREADS"] = "1"  # one thread each: oversubscribed OpenMP threads spin
        with ThreadPoolExecutor(len(plan)) as pool:
            results = [
                r
                for seed in args.seeds
                for r in pool.map(
                    lambda c, seed=seed: candidate(c[0], c[1], args, data_root, c[2], seed, epochs.get(c[0])), plan
                )
            ]
    else:
        results = [
            candidate(name, size, args, data_root, flags, seed, epochs.get(name))
            for seed in args.seeds
            for name, size, flags in plan
        ]

    work = f"{args.budget_min} min of training" + (" on 2 idle cores, as equal steps" if args.equal_steps else "")
    print(f"\nsame budget each: {work}; protocol: {results[0]['protocol']}")
    print(
        f"{'candidate':<34} {'seed':>4} {'size':>9} {'img/s':>6} {'images':>7} {'epochs':>6} {'peak RSS':>9} "
        f"{'pix acc':>8} {'mIoU':>6}"
    )
    for r in results:
        print(
            f"{r['name']:<34} {r['seed']:>4} {r['size'][0]:>4}x{r['size'][1]:<4} {r['images_per_sec']:>6.1f} "
            f"{r['images_seen']:>7} {r['epochs']:>6} {r['peak_mb']:>6.0f} MB {r['pixel_accuracy']:>7.1f}% "
            f"{r['miou']:>6.1f}"
        )
    print_per_class(results)
    mean = {name: sum(r["miou"] for r in results if r["name"] == name) / len(args.seeds) for name, _, _ in plan}
    best = max(mean, key=mean.get)
    if best != plan[0][0] and not args.pretrained:
        print(f"note: {best} beat the shipped cpu-quick in this run; consider changing the preset")
    if args.pretrained:
        print(f"pretrained_vs_scratch: {mean['cpu-pretrained'] / max(mean['cpu-quick'], 1e-9):.2f}")
    else:
        reference = next(name for name, size, _ in plan if size == SEED_SIZE)
        print(f"quality_per_compute: {mean['cpu-quick'] / max(mean[reference], 1e-9):.2f}")


def candidates(args: argparse.Namespace) -> list[tuple[str, tuple[int, int] | None, tuple[str, ...]]]:
    """(name, training size or None = the recipe's own, extra flags) of every candidate, cpu-quick first."""
    plan: list[tuple[str, tuple[int, int] | None, tuple[str, ...]]] = [("cpu-quick", None, ())]
    if args.pretrained:
        plan += [
            ("cpu-pretrained", None, ("--preset", "cpu-pretrained")),
            ("cpu-pretrained, random init", None, ("--preset", "cpu-pretrained", "--encoder-weights", "none")),
        ]
    else:
        from segkit.recipes import PRESETS

        preset_size = tuple(PRESETS["cpu-quick"].fields["image_size"])
        sizes = [parse_size(s) for s in args.sizes]
        sizes = [s for s in dict.fromkeys(sizes + [SEED_SIZE]) if s != preset_size]  # the reference runs always
        plan += [(f"cpu-quick at {h}x{w}", (h, w), ()) for h, w in sizes]
    for spec in args.models:
        model, _, encoder = spec.partition("+")
        plan.append(
            (
                f"{spec} ({args.encoder_weights})",
                None,
                ("--model", model, "--encoder", encoder, "--encoder-weights", args.encoder_weights),
            )
        )
    for spec in args.variants:
        name, _, flags = spec.partition("=")
        plan.append((name, None, tuple(shlex.split(flags))))
    return plan


def equal_step_epochs(plan: list, args: argparse.Namespace, data_root: Path) -> dict[str, int]:
    """Epochs per candidate = the images it would train on in the budget on idle cores (module docstring)."""
    costs = {}
    for name, size, flags in plan:
        size_flags = [] if size is None else ["--image-size", str(size[0]), str(size[1])]
        costs[name] = calibrate(name, [*size_flags, *flags], args, data_root)
    anchor = args.anchor_img_s or anchor_rate(args, data_root)
    reference = costs[plan[0][0]]["cpu_s_per_image"]
    epochs = {}
    for name, cost in costs.items():
        images = anchor * 60 * args.budget_min * reference / cost["cpu_s_per_image"]
        epochs[name] = max(1, round(images / cost["images_per_epoch"]))
        print(f"{name}: {images / (60 * args.budget_min):.1f} img/s on idle cores -> {epochs[name]} epochs", flush=True)
    return epochs


def anchor_rate(args: argparse.Namespace, data_root: Path) -> float:
    """cpu-quick's training images/s now (median epoch of a 1-minute run): run it on idle cores."""
    run_dir = Path(args.work_dir) / "calibration" / "anchor"
    print(f"anchor: cpu-quick for 1 minute; load now {os.getloadavg()[0]:.2f} (must be idle)", flush=True)
    run(
        train_command(
            run_dir, data_root, ["--time-budget", "1", "--eval-every", "100000", *shlex.split(args.data_flags)]
        )
    )
    speeds = sorted(float(r["images_per_sec"]) for r in _history(run_dir)[1:] or _history(run_dir))
    return speeds[len(speeds) // 2]


def print_per_class(results: list[dict]) -> None:
    """IoU (%) of every class any candidate was scored on, one column per candidate, then the worst."""
    classes = list(dict.fromkeys(c for r in results for c in r["per_class"]))
    names = [f"#{i}" for i in range(len(results))]
    print("\nper-class IoU (%); " + ", ".join(f"{n} = {r['name']} (seed {r['seed']})" for n, r in zip(names, results)))
    print(f"{'class':<15}" + "".join(f"{n:>7}" for n in names))
    for c in classes:
        print(
            f"{c:<15}"
            + "".join(f"{100 * r['per_class'][c]:>7.1f}" if c in r["per_class"] else f"{'-':>7}" for r in results)
        )
    for n, r in zip(names, results):
        worst = min(r["per_class"], key=r["per_class"].get)
        print(f"worst class of {n} {r['name']}: {worst} {100 * r['per_class'][worst]:.1f}")


if __name__ == "__main__":
    main()
