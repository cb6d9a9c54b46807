"""DataLoaders for training and validation: a deterministic, resumable, sharded sample order.

Every sample's augmentation depends only on (seed, epoch, position), so a resumed run and any
number of workers or processes see the same crops as an uninterrupted run.
"""

from __future__ import annotations

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
    the pixels it would have seen from the PNGs — minus the decoding, every epoch.
    """
    if cfg.cache != "build":
        return
    if runtime.is_main():
        splits = (cfg.train_split, cfg.val_split) if cfg.eval_resolution == "train" else (cfg.train_split,)
        splits = tuple(dict.fromkeys(splits))  # KITTI may train and validate on one split
        t0 = time.monotonic()
        prepare_cache(roots, cfg.image_size, splits, out=Path(cfg.run_dir) / "cache", space=space)
        log.info("cache of %s at %dx%d ready in %.0f s", "+".join(splits), *cfg.image_size, time.monotonic() - t0)
    runtime.barrier()


def _limit(samples: list, n: int) -> list:
    return samples[:n] if n else samples
