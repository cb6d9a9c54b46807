"""Samples/s of the training data path at 256x512 from full-resolution PNGs: cached vs uncached.

Both paths run the same train transform (resize, random scale + crop, flip, colour jitter,
normalise) with the same (index, seed) items, in one process with one thread, as a DataLoader
worker does. Uncached decodes a 2048x1024 PNG pair per sample; cached reads a row of the
memory-mapped arrays `segkit prepare` wrote.

    python benchmarks/data_throughput.py [--images 4] [--work-dir runs/benchmarks/data]

Last line: `cache_speedup: X` (goal >= 20).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2
import torch

from segkit.data.cache import CachedDataset, find_cache, prepare_cache
from segkit.data.cityscapes import CityscapesDataset
from segkit.data.discover import find_data_roots, list_samples
from segkit.data.synthetic import generate_synthetic
from segkit.data.transforms import train_transform

IMAGE_SIZE = (256, 512)
FULL_SIZE = (1024, 2048)


def samples_per_second(dataset, n: int) -> float:
    """Items per second over `n` (index, seed) items cycling through the data set."""
    dataset[(0, 0)]  # warm-up: imports, first file-system access, memory maps
    start = time.perf_counter()
    for k in range(n):
        item = dataset[(k % len(dataset), k)]
        assert item["image"].shape == (3, *IMAGE_SIZE) and item["mask"].shape == IMAGE_SIZE
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=4, help="full-resolution synthetic train images")
    parser.add_argument("--uncached-items", type=int, default=24, help="items timed on the uncached path")
    parser.add_argument("--cached-items", type=int, default=600, help="items timed on the cached path")
    parser.add_argument("--work-dir", default="runs/benchmarks/data", help="synthetic data and cache go here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(0)

    t0 = time.perf_counter()
    root = generate_synthetic(Path(args.work_dir) / "synthetic", args.images, 1, FULL_SIZE, seed=0, overwrite=True)
    print(
        f"data: {args.images} synthetic {FULL_SIZE[0]}x{FULL_SIZE[1]} PNG pairs in {root} "
        f"({time.perf_counter() - t0:.1f} s; reused if they match)"
    )
    roots = find_data_roots(root)
    samples = list_samples(roots, "train")
    t0 = time.perf_counter()
    cache_dir = prepare_cache(roots, IMAGE_SIZE, ("train",), Path(args.work_dir) / "cache", workers=1)
    print(
        f"segkit prepare: {len(samples)} images ready in {time.perf_counter() - t0:.2f} s "
        "(1 thread; a matching cache is reused)"
    )
    assert find_cache(samples, IMAGE_SIZE, cache_dir=cache_dir) == cache_dir

    uncached = CityscapesDataset(samples, train_transform(IMAGE_SIZE))
    cached = CachedDataset(cache_dir, "train", train_transform(IMAGE_SIZE), samples=samples)
    slow = samples_per_second(uncached, args.uncached_items)
    fast = samples_per_second(cached, args.cached_items)
    print(f"uncached (decode {FULL_SIZE[0]}x{FULL_SIZE[1]} PNGs + augment): {slow:.1f} samples/s")
    print(f"cached (memory-mapped {IMAGE_SIZE[0]}x{IMAGE_SIZE[1]} arrays + augment): {fast:.1f} samples/s")
    # The cache removes decoding and the first resize; the augmentation itself is the floor.
    print(
        f"per sample: decode + resize {1000 / slow - 1000 / fast:.1f} ms (removed by the cache), "
        f"augmentation {1000 / fast:.1f} ms (kept)"
    )
    print(f"cache_speedup: {fast / slow:.1f}")


if __name__ == "__main__":
    main()
