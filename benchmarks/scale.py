"""How the data path's cost grows with the number of frames, at full Cityscapes size (1024x2048).

For each N (default 100, 500, 2975 = Cityscapes' train split) a data root in the Cityscapes layout
(leftImg8bit/ + gtFine/ labelIds, 18 cities) is measured as `segkit train` and `segkit prepare` use it:

    discover       `resolve_data_roots` + `list_samples` (how `segkit train` finds and pairs its frames), best of 5
    cache build    `prepare_cache` (= `segkit prepare`) at the preset's image size: wall and CPU time, its threads
    cache size     the .npy arrays and manifest on disk
    cache check    `find_cache`: training's check that the cache matches every file (size, mtime, path), best of 5
    epoch cached   one epoch of the training DataLoader (`build_loaders`) over the cache, --workers workers:
                   wall time, the workers' CPU time, samples/s per worker
    epoch PNG      the same epoch with the cache off: every frame decoded from its PNG files
    peak RSS       of the main process and of a DataLoader worker, per stage: all of it (VmHWM) and the
                   anonymous part (sampled; the rest is the cache's memory-mapped file pages, which the kernel drops)

then the exponent k of cost ∝ N^k for each (least squares on log cost against log N), and the cost at
25,000 frames extrapolated from that fit (an estimate, not a measurement).

    python benchmarks/scale.py --sizes 100 500        # ~5 min on 2 cores (3 of them drawing frames), ~1.6 GB disk
    python benchmarks/scale.py                        # 100 500 2975: ~12 min on 2 cores, ~7 GB of disk at its peak
    python benchmarks/scale.py --quick                # seconds: N = 4, 8, 16 at 64x128 (what the test runs)

Frames: --distinct scenes are drawn by segkit's synthetic generator (`render_scene`), blurred slightly
(sigma 0.7) and written as PNG level 6, which brings the generator's noisy photos to real Cityscapes
frames' size and decode time (the JSON records both; compare with --real-dir). The N frames of a data
root are hard links to these (copies where the file system has no links) under distinct names: the
data path's cost does not depend on whether two files hold the same pixels, except through the page
cache — the distinct frames stay in RAM, where 2,975 real frames (~6.5 GB) may not, so the PNG
epoch here is a lower bound for a cold disk. Results: <work-dir>/scale.json and scale.md; the frames
and caches are deleted at the end unless --keep (each N's cache as soon as it is measured).

Last line: `worst_exponent: K` (the largest k among the times, CPU times included).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import shutil
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2
import numpy as np
import torch

from segkit.config import TrainConfig
from segkit.data.cache import cache_dir_candidates, find_cache, prepare_cache
from segkit.data.discover import list_samples, resolve_data_roots
from segkit.data.loaders import build_loaders
from segkit.data.synthetic import render_scene
from segkit.recipes import apply_preset

FRAME_SIZE = (1024, 2048)
SIZES = (100, 500, 2975)
ESTIMATE_N = 25_000
CITIES = 18  # Cityscapes' train split has 18 cities
BLUR_SIGMA = 0.7  # the generator's sensor noise compresses worse than a real photo's; this brings size and decode near
PNG_IMAGE = [cv2.IMWRITE_PNG_COMPRESSION, 6]
PNG_LABEL = [cv2.IMWRITE_PNG_COMPRESSION, 9]
POOL_VERSION = 1
MEASURES = {  # key: (row label, unit)
    "discover_s": ("discover (resolve_data_roots + list_samples)", "s"),
    "cache_build_s": ("cache build (prepare_cache)", "s"),
    "cache_build_cpu_s": ("cache build, CPU time of its threads", "s"),
    "cache_gb": ("cache size on disk", "GB"),
    "cache_check_s": ("cache check (find_cache)", "s"),
    "epoch_cached_s": ("one epoch, cached", "s"),
    "epoch_png_s": ("one epoch, PNG (cache off)", "s"),
    "epoch_cached_worker_cpu_s": ("one epoch, cached: CPU time of the workers", "s"),
    "epoch_png_worker_cpu_s": ("one epoch, PNG: CPU time of the workers", "s"),
    "peak_rss_mb": ("peak RSS, main process (all stages)", "MB"),
    "peak_anon_mb": ("peak anonymous RSS, main process (sampled)", "MB"),
    "worker_peak_rss_mb": ("peak RSS of one DataLoader worker", "MB"),
    "worker_peak_anon_mb": ("peak anonymous RSS of one worker (sampled)", "MB"),
}


# ----------------------------------------------------------------------------- memory


def _status(pid: int | str = "self") -> dict[str, int]:
    """/proc/<pid>/status's memory lines in kB ({} where there is no /proc, or the process ended)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    return {k: int(v.split()[0]) for k, _, v in (line.partition(":") for line in lines) if k.startswith(("Vm", "Rss"))}


def _children() -> list[int]:
    """The pids of this process's children (DataLoader workers), from /proc; [] elsewhere."""
    try:
        return [int(p) for p in Path(f"/proc/self/task/{os.getpid()}/children").read_text().split()]
    except OSError:
        return []


def _cpu_seconds(pid: int) -> float:
    """CPU time of a process so far: /proc/<pid>/schedstat (ns), else /proc/<pid>/stat (clock ticks); 0 if it ended."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        pass
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


class Usage:
    """What one stage used: peak RSS (VmHWM, exact: reset at the start through clear_refs), and sampled at
    20 Hz the anonymous part (what only swap could free; the rest is memory-mapped file pages), the
    DataLoader workers' peak RSS and their CPU time."""

    def __enter__(self) -> Usage:  # noqa: PYI034 (a final class)
        try:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
            self.exact = True
        except OSError:
            self.exact = False
        self.anon_kb, self.worker_kb, self.worker_anon_kb = _status().get("RssAnon", 0), 0, 0
        self.worker_cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.anon_kb = max(self.anon_kb, _status().get("RssAnon", 0))
            self.workers_now()

    def workers_now(self) -> None:
        """The workers' peaks so far (their VmHWM covers their whole life); called once more before they exit."""
        for pid in _children():
            status = _status(pid)
            self.worker_kb = max(self.worker_kb, status.get("VmHWM", 0))
            self.worker_anon_kb = max(self.worker_anon_kb, status.get("RssAnon", 0))
            self.worker_cpu[pid] = max(self.worker_cpu.get(pid, 0.0), _cpu_seconds(pid))

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kb = _status().get("VmHWM", 0) if self.exact else None

    def record(self) -> dict[str, float | None]:
        return {
            "peak_rss_mb": self.peak_kb / 1024 if self.peak_kb else None,
            "peak_anon_mb": self.anon_kb / 1024 if self.anon_kb else None,
            "worker_peak_rss_mb": self.worker_kb / 1024 if self.worker_kb else None,
            "worker_peak_anon_mb": self.worker_anon_kb / 1024 if self.worker_anon_kb else None,
            "worker_cpu_s": sum(self.worker_cpu.values()) or None,
        }


# ----------------------------------------------------------------------------- frames


def make_pool(folder: Path, distinct: int, size: tuple[int, int]) -> list[tuple[Path, Path]]:
    """`distinct` (photo, labelIds) PNG pairs of `size`, reused when the folder already holds this pool."""
    marker, params = folder / "pool.json", {"version": POOL_VERSION, "distinct": distinct, "size": list(size)}
    pairs = [(folder / f"{i:05d}_image.png", folder / f"{i:05d}_label.png") for i in range(distinct)]
    if marker.is_file() and json.loads(marker.read_text()) == params:
        return pairs
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)

    def write(i: int, image: np.ndarray, label: np.ndarray) -> None:
        photo = cv2.GaussianBlur(image[..., ::-1], (0, 0), BLUR_SIGMA)  # RGB -> BGR for cv2
        ok = cv2.imwrite(str(pairs[i][0]), np.ascontiguousarray(photo), PNG_IMAGE)
        if not (ok and cv2.imwrite(str(pairs[i][1]), label, PNG_LABEL)):
            raise OSError(f"could not write {pairs[i][0]}: is the disk full?")

    with ThreadPoolExecutor(max_workers=2) as pool:  # cv2 encodes without the GIL while the next scene renders
        futures = [pool.submit(write, i, *render_scene(np.random.default_rng([7, i]), *size)) for i in range(distinct)]
        for future in futures:
            future.result()
    marker.write_text(json.dumps(params))
    return pairs


def frame_facts(pairs: list[tuple[Path, Path]], real_dir: Path | None) -> dict:
    """Mean PNG bytes and median decode ms of the pool's frames (and of real ones in `real_dir`)."""
    facts = {"synthetic": _png_facts([p for p, _ in pairs[:8]], [q for _, q in pairs[:8]])}
    if real_dir is not None:
        images = sorted(real_dir.rglob("*_leftImg8bit.png"))[:8]
        labels = sorted(real_dir.rglob("*_labelIds.png"))[:8]
        if not images:
            raise SystemExit(f"--real-dir {real_dir}: no *_leftImg8bit.png files below it")
        facts["real"] = _png_facts(images, labels) | {"folder": str(real_dir)}
    return facts


def _png_facts(images: list[Path], labels: list[Path]) -> dict:
    def decode_ms(path: Path, flag: int) -> float:
        start = time.perf_counter()
        cv2.imread(str(path), flag)
        return 1000 * (time.perf_counter() - start)

    out = {
        "frames": len(images),
        "image_bytes": float(np.mean([p.stat().st_size for p in images])),
        "image_decode_ms": float(np.median([decode_ms(p, cv2.IMREAD_COLOR) for p in images])),
    }
    if labels:
        out |= {
            "label_bytes": float(np.mean([p.stat().st_size for p in labels])),
            "label_decode_ms": float(np.median([decode_ms(p, cv2.IMREAD_UNCHANGED) for p in labels])),
        }
    return out


def make_root(root: Path, n: int, pairs: list[tuple[Path, Path]]) -> str:
    """A Cityscapes-layout train split of `n` frames, hard links to the pool (copies if links fail)."""
    how = "hard links"
    for i in range(n):
        city = f"city{i % CITIES:02d}"
        stem = f"{city}_{i // CITIES:06d}_000019"
        image = root / "leftImg8bit" / "train" / city / f"{stem}_leftImg8bit.png"
        label = root / "gtFine" / "train" / city / f"{stem}_gtFine_labelIds.png"
        for source, target in zip(pairs[i % len(pairs)], (image, label)):
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source, target)
            except OSError:  # another device, or a file system without hard links
                shutil.copyfile(source, target)
                how = "copies"
    return how


# ----------------------------------------------------------------------------- one N


def measure(root: Path, n: int, args: argparse.Namespace) -> dict:
    """Every measure for the data root `root` of `n` frames (its cache is deleted unless --keep)."""
    out: dict = {"n": n}
    with Usage() as mem:  # cheap and easily disturbed by other jobs: the best of REPEATS
        out["discover_s"], (roots, samples) = _best(lambda: _discover(root))
    assert len(samples) == n and not roots.synthetic, (len(samples), n)
    stages = {"discover": mem.record()}
    cfg = _config(root, args)
    with Usage() as mem:
        start, cpu = time.perf_counter(), time.process_time()  # process time: all of its threads
        cache = prepare_cache(roots, cfg.image_size, ("train",), workers=args.cache_workers)
        out["cache_build_s"] = time.perf_counter() - start
        out["cache_build_cpu_s"] = time.process_time() - cpu
    stages["cache_build"] = mem.record()
    assert cache == cache_dir_candidates(roots.image_root, cfg.image_size)[0], cache
    files = [p for p in cache.iterdir() if p.is_file()]
    out["cache_gb"] = sum(p.stat().st_blocks * 512 for p in files) / 1e9  # allocated, not apparent, bytes
    with Usage() as mem:
        out["cache_check_s"], found = _best(lambda: find_cache(samples, cfg.image_size))
    assert found == cache, found
    stages["cache_check"] = mem.record()
    for mode, key in (("auto", "epoch_cached"), ("off", "epoch_png")):
        epoch, stages[key] = _epoch(_config(root, args, cache=mode))
        out |= {f"{key}_s": epoch["seconds"], f"{key}_samples": epoch["samples"]}
        out[f"{key}_first_batch_s"] = epoch["first_batch_s"]
        # Steady state, the first batch (workers starting, files opening) left out: what one worker sustains.
        steady = (epoch["samples"] - epoch["first_samples"]) / max(1e-9, epoch["seconds"] - epoch["first_batch_s"])
        out[f"{key}_per_worker"] = steady / max(1, args.workers)
        cpu = stages[key]["worker_cpu_s"]  # what other jobs on the machine change much less than wall time
        out[f"{key}_worker_cpu_s"] = cpu
        out[f"{key}_per_worker_cpu_s"] = epoch["samples"] / cpu if cpu else None  # samples per CPU-second
    out["stages"] = stages
    for key in ("peak_rss_mb", "peak_anon_mb", "worker_peak_rss_mb", "worker_peak_anon_mb"):
        values = [s[key] for s in stages.values() if s[key] is not None]
        out[key] = max(values) if values else None
    if not args.keep:
        shutil.rmtree(cache.parent)  # <root>/segkit_cache: the largest thing written
    return out


REPEATS = 5


def _best(call) -> tuple[float, object]:
    """(the shortest of REPEATS timed calls, the last result)."""
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - start)
    return min(times), result


def _discover(root: Path) -> tuple:
    """What `segkit train` does first: find the data root's layout, then list and pair the train split."""
    roots = resolve_data_roots(str(root))
    return roots, list_samples(roots, "train")


def _config(root: Path, args: argparse.Namespace, cache: str = "auto") -> TrainConfig:
    """The preset's TrainConfig on this root: the loader `segkit train` builds (val: one train frame, unused)."""
    values = {
        "preset": args.preset,
        "data_root": str(root),
        "num_workers": args.workers,
        "cache": cache,
        "val_split": "train",
        "max_val_images": 1,
        "device": "cpu",
    }
    if args.image_size:
        values["image_size"] = tuple(args.image_size)
    if args.batch_size:
        values["batch_size"] = args.batch_size
    return apply_preset(TrainConfig(**values), explicit=set(values))


def _epoch(cfg: TrainConfig) -> tuple[dict, dict]:
    """One epoch of the training DataLoader: seconds from the first request to the last batch (workers'
    start-up included), samples, and the memory of that stage."""
    with Usage() as mem:
        train, val = build_loaders(cfg, resolve_data_roots(cfg.data_root), torch.device("cpu"))
        train.sampler.set_epoch(0)
        start, first, first_samples, samples = time.perf_counter(), None, 0, 0
        for names in (batch["name"] for batch in train):
            if first is None:
                first, first_samples = time.perf_counter() - start, len(names)
            samples += len(names)
        seconds = time.perf_counter() - start
        mem.workers_now()
        del train, val
        gc.collect()  # the persistent workers exit with their iterator
    return {
        "seconds": seconds,
        "samples": samples,
        "first_batch_s": first,
        "first_samples": first_samples,
    }, mem.record()


# ----------------------------------------------------------------------------- fit and report


def fit(results: list[dict], estimate_n: int = ESTIMATE_N) -> dict[str, dict]:
    """Per measure: k and c of cost = c * N^k (least squares on log-log) and the cost at `estimate_n`."""
    fits = {}
    for key in MEASURES:
        points = [(r["n"], r[key]) for r in results if r.get(key)]
        if len(points) < 2:
            fits[key] = {"k": None, "c": None, "estimate": None}
            continue
        x, y = np.log([p[0] for p in points]), np.log([p[1] for p in points])
        k, log_c = np.polyfit(x, y, 1)
        fits[key] = {"k": float(k), "c": float(math.exp(log_c)), "estimate": float(math.exp(log_c) * estimate_n**k)}
    return fits


def table(report: dict) -> str:
    """The markdown table: one row per measure, one column per N, k and the estimate."""
    sizes = [r["n"] for r in report["results"]]
    head = ["measure", *(f"N = {n:,}" for n in sizes), "k (cost ∝ N^k)", f"N = {report['estimate_n']:,} (estimated)"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, (label, unit) in MEASURES.items():
        f = report["fit"][key]
        cells = [_fmt(r.get(key)) for r in report["results"]]
        k = "n/a" if f["k"] is None else f"{f['k']:.2f}"
        rows.append(f"| {label} ({unit}) | " + " | ".join([*cells, k, _fmt(f["estimate"])]) + " |")
    for key in ("epoch_cached", "epoch_png"):
        per = [f"{r[f'{key}_per_worker']:.1f}" for r in report["results"]]
        label = "cached" if key == "epoch_cached" else "PNG"
        rows.append(f"| {label}: samples/s per worker, after the first batch | " + " | ".join([*per, "", ""]) + " |")
    return "\n".join(rows)


def _fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3g}" if abs(value) < 100 else f"{value:,.0f}"


def _disk_needed(args: argparse.Namespace, image_size: tuple[int, int]) -> float:
    """Bytes the run writes at its peak: the pool, and the largest cache (every cache with --keep)."""
    frame = 3.0e6 * args.frame_size[0] * args.frame_size[1] / (1024 * 2048)  # image + label PNG, generous
    row = 4 * image_size[0] * image_size[1] * 1.1  # image + mask bytes; rows of wider frames are larger (cover)
    caches = sum(args.sizes) if args.keep else max(args.sizes)
    return args.distinct * frame + caches * row


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="numbers of frames measured")
    p.add_argument("--distinct", type=int, default=200, help="distinct scenes rendered (the rest are links to them)")
    p.add_argument("--frame-size", type=int, nargs=2, default=list(FRAME_SIZE), metavar=("H", "W"))
    p.add_argument("--preset", default="t4-fast", help="the training recipe whose loader is measured")
    p.add_argument("--image-size", type=int, nargs=2, default=None, metavar=("H", "W"), help="default: the preset's")
    p.add_argument("--batch-size", type=int, default=0, help="default: the preset's")
    p.add_argument("--workers", type=int, default=1, help="DataLoader workers (Kaggle T4 x2 gives each GPU 1)")
    p.add_argument("--cache-workers", type=int, default=-1, help="prepare_cache threads, -1 = one per CPU (max 8)")
    p.add_argument("--real-dir", type=Path, default=None, help="real Cityscapes frames to compare PNG size/decode")
    p.add_argument("--work-dir", type=Path, default=Path("runs/benchmarks/scale"))
    p.add_argument("--keep", action="store_true", help="keep the frames and caches (deleted by default)")
    p.add_argument("--quick", action="store_true", help="test-sized: N = 4 8 16, 64x128 frames, 32x64 training size")
    args = p.parse_args(argv)
    if min(args.sizes) < 1 or args.distinct < 1 or args.workers < 0 or min(args.frame_size) < 16:
        p.error("--sizes and --distinct must be >= 1, --workers >= 0 and --frame-size >= 16 16; e.g. --sizes 100 500")
    if args.quick:
        args.sizes, args.distinct, args.frame_size = [4, 8, 16], 4, [64, 128]
        args.image_size, args.batch_size = args.image_size or [32, 64], args.batch_size or 2
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(1)
    cv2.setNumThreads(0)
    work = args.work_dir
    image_size = tuple(args.image_size or apply_preset(TrainConfig(preset=args.preset)).image_size)
    work.mkdir(parents=True, exist_ok=True)
    free, need = shutil.disk_usage(work).free, _disk_needed(args, image_size)
    if need > free:
        raise SystemExit(
            f"about {need / 1e9:.1f} GB of disk needed in {work}, {free / 1e9:.1f} GB free: use --work-dir"
        )
    start = time.perf_counter()
    pairs = make_pool(work / "pool", args.distinct, tuple(args.frame_size))
    h, w = args.frame_size
    print(f"pool: {args.distinct} distinct {h}x{w} frames ({time.perf_counter() - start:.0f} s)")
    report = {
        "machine": {"cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()},
        "settings": {
            "frame_size": args.frame_size,
            "image_size": list(image_size),
            "preset": args.preset,
            "batch_size": _config(work, args).batch_size,
            "workers": args.workers,
            "cache_workers": args.cache_workers,
            "distinct_frames": args.distinct,
            "torch": torch.__version__,
            "date": time.strftime("%Y-%m-%d %H:%M"),
        },
        "frames": frame_facts(pairs, args.real_dir),
        "estimate_n": ESTIMATE_N,
        "results": [],
    }
    for n in sorted(args.sizes):
        root = work / f"n{n}"
        shutil.rmtree(root, ignore_errors=True)
        report["settings"]["files"] = make_root(root, n, pairs)
        result = measure(root, n, args)
        report["results"].append(result)
        print(
            f"N={n}: " + ", ".join(f"{k} {_fmt(result[k])}" for k in MEASURES) + f" ({report['settings']['files']})",
            flush=True,
        )
        if not args.keep:
            shutil.rmtree(root)
    report["fit"] = fit(report["results"])
    (work / "scale.json").write_text(json.dumps(report, indent=1))
    (work / "scale.md").write_text(table(report) + "\n")
    print(table(report))
    print(f"results: {work / 'scale.json'}, {work / 'scale.md'}")
    if not args.keep:
        shutil.rmtree(work / "pool")
    times = [k for k in MEASURES if k.endswith("_s") and report["fit"][k]["k"] is not None]
    if not times:
        print("worst_exponent: n/a (one size only: nothing to fit)")
        return report
    worst = max(times, key=lambda k: report["fit"][k]["k"])
    print(f"worst_exponent: {report['fit'][worst]['k']:.2f} ({worst})")
    return report


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
