"""DataLoaders for training and validation: a deterministic, resumable, sharded sample order.

Every sample's augmentation depends only on (seed, epoch, position), so a resumed run and any
number of workers or processes see the same crops as an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import signal
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler

from segkit import runtime
from segkit.config import TrainConfig
from segkit.data.cache import CachedDataset, find_cache, prepare_cache
from segkit.data.cityscapes import CityscapesDataset
from segkit.data.discover import list_samples
from segkit.data.pairs import size_note
from segkit.data.transforms import MEAN, STD, eval_transform, train_transform
from segkit.errors import DataError, SegkitError
from segkit.labels import LabelSpace, thin_classes
from segkit.runtime import log


class EpochSampler(Sampler):
    """Deterministic order per (seed, epoch), sharded across torchrun ranks, resumable mid-epoch.

    Yields (index, augmentation seed) pairs so that every sample's augmentation depends only on
    (seed, epoch, position) — not on worker count or on where a run was interrupted.
    """

    def __init__(
        self, n: int, seed: int, shuffle: bool = True, rank: int = 0, world: int = 1, pad: bool = True
    ) -> None:
        self.n, self.seed, self.shuffle, self.rank, self.world, self.pad = n, seed, shuffle, rank, world, pad
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start_batch: int = 0, batch_size: int = 1) -> None:
        """Select the epoch's order and skip the batches already done (resume)."""
        self.epoch, self.start = epoch, start_batch * batch_size

    def _order(self) -> list[int]:
        if not self.shuffle:
            order = list(range(self.n))
        else:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        # Training pads so every rank takes the same number of steps; evaluation must not count an
        # image twice (ranks may then hold one image more or less: evaluate has no collectives per batch).
        if self.world > 1 and self.pad:
            order += order[: (-len(order)) % self.world]
        return order[self.rank :: self.world]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for pos, idx in enumerate(self._order()):
            if pos >= self.start:
                yield idx, (self.seed * 1_000_003 + self.epoch * 10_007 + pos * self.world + self.rank) % 2**31

    def __len__(self) -> int:
        return max(0, len(self._order()) - self.start)


def collate(batch: list[dict]) -> dict:
    """Stack images and masks; keep lists when sizes differ (label-resolution validation)."""
    out: dict[str, Any] = {"name": [b["name"] for b in batch]}
    for key in ("image", "mask"):
        items = [b[key] for b in batch]
        same = all(t.shape == items[0].shape for t in items)
        out[key] = torch.stack(items) if same else items
    return out


def _worker_init(_: int) -> None:
    import cv2

    cv2.setNumThreads(0)  # one OpenCV thread per worker; workers are the parallelism
    torch.set_num_threads(1)
    # Ctrl-C reaches the whole process group: the main process alone decides (finish the step,
    # save). SIGTERM keeps torch's worker handler (exit 0), so multiprocessing can still stop us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def build_loaders(
    cfg: TrainConfig,
    roots,
    device: torch.device,
    normalization: tuple[Sequence[float], Sequence[float]] = (MEAN, STD),
    space: LabelSpace | None = None,
) -> tuple[DataLoader, DataLoader]:
    """Train loader (augmented, EpochSampler) and validation loader (`eval_loader`).

    `normalization` is the model's (mean, std): what its encoder was pretrained with; `space` the
    label space the label files are read in (None = cityscapes).
    """
    mean, std = normalization
    train_samples = _limit(list_samples(roots, cfg.train_split), cfg.max_train_images)
    val_samples = _limit(list_samples(roots, cfg.val_split), cfg.max_val_images)
    if (note := size_note(train_samples, cfg.image_size)) and runtime.is_main():
        log.info(note)  # image pairs' halves are square and small: say what image_size does to them
    if len(train_samples) < cfg.batch_size * runtime.world_size():
        log.warning(
            "only %d training images for batch_size %d x %d processes",
            len(train_samples),
            cfg.batch_size,
            runtime.world_size(),
        )
    focus = thin_classes(space) if space is not None else None
    transform = train_transform(
        cfg.image_size, cfg.scale_range, mean=mean, std=std, crop_size=cfg.crop, focus_p=cfg.focus_crop, focus=focus
    )
    cache = _find_cache(cfg, train_samples, space)  # `segkit prepare` arrays: same pixels, no PNG decoding
    train_ds = (
        CachedDataset(cache, cfg.train_split, transform, train_samples)
        if cache
        else CityscapesDataset(train_samples, transform, space=space)
    )
    workers = runtime.default_num_workers(cfg.num_workers)
    sampler = EpochSampler(len(train_ds), cfg.seed, True, runtime.rank(), runtime.world_size())
    # drop_last keeps BatchNorm away from batches of one; a generator keeps the global RNG untouched.
    train = DataLoader(
        train_ds,
        batch_size=cfg.batch_size,
        sampler=sampler,
        drop_last=len(train_ds) > cfg.batch_size,
        generator=torch.Generator().manual_seed(cfg.seed),
        **_loader_options(workers, device),
    )
    label_res = cfg.eval_resolution == "label"
    val = eval_loader(
        val_samples,
        None if label_res else cfg.image_size,
        normalization,
        batch_size=cfg.batch_size,
        num_workers=workers,
        device=device,
        cache=None if label_res else _find_cache(cfg, val_samples, space),
        split=cfg.val_split,
        space=space,
    )
    return train, val


def eval_loader(
    samples: Sequence[Any],
    resize: Sequence[int] | None,
    normalization: tuple[Sequence[float], Sequence[float]] = (MEAN, STD),
    *,
    batch_size: int = 1,
    num_workers: int = 0,
    device: torch.device | None = None,
    cache: Path | None = None,
    split: str = "",
    space: LabelSpace | None = None,
) -> DataLoader:
    """Evaluation batches: a fixed order, each torchrun rank its share (no image counted twice).

    Args:
        samples: the split's samples (with images).
        resize: None = masks at the label files' own size (the official protocol; the inference
            resizes the images), or (H, W): images and masks resized to cover it ("train" resolution).
        normalization: the model's (mean, std).
        batch_size: images per batch (sizes may differ per item: `collate` keeps lists then).
        num_workers: DataLoader worker processes.
        device: where the batches go (pinned memory for CUDA).
        cache: a `segkit prepare` cache of these samples at `resize` (resized masks only), or None.
        split: the samples' split (the cache's arrays are per split).
        space: the label space the label files are read in (None = cityscapes).
    """
    mean, std = normalization
    transform = eval_transform(None if resize is None or cache else tuple(resize), mean, std)
    ds = (
        CachedDataset(cache, split, transform, list(samples))
        if cache and resize is not None
        else CityscapesDataset(samples, transform, label_resolution=resize is None, space=space)
    )
    sampler = EpochSampler(len(ds), 0, False, runtime.rank(), runtime.world_size(), pad=False)
    return DataLoader(ds, batch_size=batch_size, sampler=sampler, **_loader_options(num_workers, device))


def _loader_options(workers: int, device: torch.device | None) -> dict[str, Any]:
    return {
        "num_workers": workers,
        "pin_memory": device is not None and device.type == "cuda",
        "collate_fn": collate,
        "persistent_workers": workers > 0,
        "worker_init_fn": _worker_init if workers > 0 else None,
    }


def _find_cache(cfg: TrainConfig, samples: list, space: LabelSpace | None = None):
    """The matching `segkit prepare` cache folder, or None (cache "off", none built, or stale: logged)."""
    if cfg.cache == "off":
        return None
    if cfg.cache == "build":
        return find_cache(samples, cfg.image_size, cache_dir=Path(cfg.run_dir) / "cache", space=space)
    return find_cache(samples, cfg.image_size, cache_dir=None if cfg.cache == "auto" else cfg.cache, space=space)


def build_cache(cfg: TrainConfig, roots, space: LabelSpace | None = None) -> None:
    """cache="build": decode, map and resize every training image once into run_dir/cache.

    The train transform starts by resizing to image_size, so training on the cache sees exactly
    the pixels it would have seen from the PNGs — minus the decoding, every epoch. Under torchrun
    each node's local rank 0 builds its own (its copy of the data, its disk; the other ranks
    wait); nodes that share one file system take turns (`prepare_cache`'s lock) and the later
    ones find it up to date.
    """
    if cfg.cache != "build":
        return
    if runtime.is_local_main():
        splits = (cfg.train_split, cfg.val_split) if cfg.eval_resolution == "train" else (cfg.train_split,)
        splits = tuple(dict.fromkeys(splits))  # KITTI may train and validate on one split
        t0 = time.monotonic()
        prepare_cache(roots, cfg.image_size, splits, out=Path(cfg.run_dir) / "cache", space=space)
        log.info("cache of %s at %dx%d ready in %.0f s", "+".join(splits), *cfg.image_size, time.monotonic() - t0)
    runtime.barrier()


def check_same_data(cfg: TrainConfig, roots, space: LabelSpace | None = None) -> None:
    """Refuse, on every rank, a run whose nodes do not hold the same files (before anything trains).

    Each node reads its own copy of the data root; EpochSampler shards one list of samples by
    position, so a node with a file more or less would train on other images than the others
    think, and see some twice or never. Every rank lists the training and validation files,
    relative to its roots; rank 0's list is the reference. Only a digest travels unless they differ.
    """
    if not runtime.several_nodes():
        return  # one machine: every process reads the same folder
    splits = tuple(dict.fromkeys((cfg.train_split, cfg.val_split)))
    try:
        files: list[str] | str = sorted(
            {name for split in splits for name in _relative_files(list_samples(roots, split), roots)}
        )
    except SegkitError as e:  # said to the others too: they would wait for this rank at the next collective
        files = str(e).rstrip(".")
    classes = {k: v for k, v in space.to_dict().items() if k != "source"} if space is not None else None
    mine = hashlib.sha1(json.dumps([files, classes], sort_keys=True).encode()).hexdigest()
    if len(set(runtime.gathered(mine))) == 1 and not isinstance(files, str):
        return
    everyone = runtime.gathered((runtime.node(), str(roots.image_root), files, classes))
    _, _, reference, reference_classes = everyone[0]
    problems: dict[str, str] = {}  # one line per node (its processes list the same files)
    for node, root, theirs, their_classes in everyone:
        if isinstance(theirs, str):
            problems.setdefault(node, f"{node}, data root {root}: {theirs}")
            continue
        if isinstance(reference, str):
            continue
        missing, extra = sorted(set(reference) - set(theirs)), sorted(set(theirs) - set(reference))
        parts = [
            _listed(f"lacks {len(missing)} files rank 0 has", missing),
            _listed(f"has {len(extra)} files rank 0 lacks", extra),
            "reads another label space (--classes or the data set's class file)"
            if their_classes != reference_classes
            else "",
        ]
        if any(parts):
            problems.setdefault(node, f"{node}, data root {root}: " + "; ".join(p for p in parts if p))
    raise DataError(
        f"the nodes of this run do not hold the same data as rank 0 on {everyone[0][0]} (data root "
        f"{everyone[0][1]}): "
        + " | ".join(problems.values())
        + ". Copy the same data set to every node (e.g. rsync -a from rank 0's host), or point --data-root at it."
    )


def _relative_files(samples: list, roots) -> list[str]:
    """Each sample's image and label file, relative to its root (nodes may keep the data at different paths)."""
    out = []
    for sample in samples:
        for path, root in ((sample.image, roots.image_root), (sample.label, roots.label_root)):
            if path is not None:
                out.append(path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name)
    return out


def _listed(what: str, names: list[str], shown: int = 5) -> str:
    if not names:
        return ""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return f"{what} ({', '.join(names[:shown])}{more})"


def _limit(samples: list, n: int) -> list:
    return samples[:n] if n else samples
