"""`segkit prepare`: decode, map and resize the data set once into memory-mappable arrays.

Decoding a 2048x1024 PNG pair costs ~100 ms of CPU; reading a pre-resized row of a memory-mapped
array costs microseconds, so a Kaggle kernel's 4 CPU cores can keep two GPUs busy.

A cache directory (`<data root>/segkit_cache/<H>x<W>/`; when the data root is read-only,
`/kaggle/working/segkit_cache/<root>-<hash>/<H>x<W>/` on Kaggle or `runs/cache/...` elsewhere):
    <split>_images.npy  uint8 (N, Hmax, Wmax, 3) RGB: each image resized keeping its aspect ratio
                        to cover <H>x<W> (`transforms.cover_size`), as training's first step does
    <split>_masks.npy   uint8 (N, Hmax, Wmax) trainIds (255 = ignore), nearest-exact
    manifest.json       sources (paths, bytes, mtimes, original and resized sizes), label
                        mapping, image_size, versions
    build.lock          held while a process builds the folder: several nodes sharing one file
                        system take turns, and the later ones find the splits up to date

Rows are padded at the bottom and right when a split's images differ in shape (e.g. KITTI);
each row's own size is in the manifest and only that part is served.

A stale cache (a source file changed, vanished or is new) is never used: `find_cache` logs which
file changed and training reads the PNG files instead (correct, only slower) until
`segkit prepare` is rerun, which rebuilds only the splits whose sources changed. A cache folder
given explicitly (`find_cache(..., cache_dir=...)`) that does not match raises instead.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from torch.utils.data import Dataset

import segkit
from segkit import progress, runtime
from segkit.checks import check_image_size
from segkit.config import PrepareConfig
from segkit.data.cityscapes import seed_transform
from segkit.data.discover import DataRoots, Sample
from segkit.data.layouts import layouts_of
from segkit.data.transforms import ResizeToCover, cover_size
from segkit.errors import DataError
from segkit.files import AtomicFile, write_json
from segkit.kaggle_env import on_kaggle, working_dir
from segkit.labels import CITYSCAPES, LABEL_TO_TRAIN, LabelSpace
from segkit.reflect import add_config_flags, config_from_args
from segkit.runtime import log

FORMAT = "segkit-cache"
VERSION = 2  # bump when the array layout or the resize changes: older caches are then rebuilt
CACHE_DIR_NAME = "segkit_cache"
MANIFEST = "manifest.json"
BUILD_LOCK = "build.lock"  # held while a process builds the folder (`_building`)
RESIZE = {
    "image": "aspect kept, covering image_size; INTER_AREA when shrinking, else INTER_LINEAR",
    "mask": "INTER_NEAREST_EXACT",
}


# ----------------------------------------------------------------------------- locations


def cache_dir_candidates(image_root: Path, image_size: Sequence[int]) -> list[Path]:
    """Where a cache for this data root and size may live, in the order they are searched.

    Args:
        image_root: The directory that contains leftImg8bit/.
        image_size: (H, W) of the cached arrays.

    Returns:
        [<image_root>/segkit_cache/<H>x<W>, <fallback>/<root name>-<hash>/<H>x<W>].
    """
    size = f"{int(image_size[0])}x{int(image_size[1])}"
    root = Path(image_root).resolve()
    key = f"{root.name or 'root'}-{hashlib.sha1(str(root).encode()).hexdigest()[:8]}"
    return [root / CACHE_DIR_NAME / size, _fallback_base() / key / size]


def _fallback_base() -> Path:
    # Kaggle mounts /kaggle/input read-only; /kaggle/working survives as the kernel's output.
    return working_dir() / CACHE_DIR_NAME if on_kaggle() else Path("runs") / "cache"


def default_cache_dir(image_root: Path, image_size: Sequence[int]) -> Path:
    """The first candidate location that can be written (the data root itself if possible)."""
    candidates = cache_dir_candidates(image_root, image_size)
    return next((c for c in candidates if _writable(c)), candidates[-1])


def _writable(path: Path) -> bool:
    """Whether `path` exists writable, or its nearest existing ancestor is writable."""
    for folder in (path, *path.parents):
        if folder.exists():
            return folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)
    return False


# ----------------------------------------------------------------------------- building


def prepare_cache(
    roots: DataRoots,
    image_size: Sequence[int],
    splits: Sequence[str] = ("train", "val"),
    out: Path | None = None,
    workers: int = -1,
    space: LabelSpace | None = None,
) -> Path:
    """Build (or bring up to date) the cache of `splits` at `image_size`.

    Splits whose sources are unchanged since the last build are kept as they are.

    Args:
        roots: The data set (from `find_data_roots` / `resolve_data_roots`).
        image_size: (H, W) of the training input.
        splits: Splits to cache.
        out: Cache folder; None = `default_cache_dir(...)`.
        workers: Decoding threads (OpenCV releases the GIL); -1 = one per CPU, at most 8.
        space: The label space the masks are stored in, as class indices (None = cityscapes).

    Returns:
        The cache folder.
    """
    size = check_image_size(image_size)
    out = Path(out) if out is not None else default_cache_dir(roots.image_root, size)
    out.mkdir(parents=True, exist_ok=True)
    with _building(out):
        return _prepare(roots, size, splits, out, workers, space)


@contextmanager
def _building(out: Path) -> Iterator[None]:
    """Hold the cache folder's build lock: builders of one folder (several nodes on a shared file system,
    or two `segkit prepare`) take turns, and each later one finds the splits it needs up to date."""
    with open(out / BUILD_LOCK, "a") as f:
        try:
            import fcntl
        except ImportError:  # Windows: no other node there
            yield
            return
        if not _try_lock(f, fcntl):
            log.info("cache %s: another process is building it; waiting for it to finish", out)
            fcntl.lockf(f, fcntl.LOCK_EX)
        yield  # closing the file drops the lock


def _try_lock(f: IO, fcntl: Any) -> bool:
    try:
        fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno in (errno.EACCES, errno.EAGAIN):
            return False
        raise
    return True


def _prepare(
    roots: DataRoots,
    size: tuple[int, int],
    splits: Sequence[str],
    out: Path,
    workers: int,
    space: LabelSpace | None,
) -> Path:
    from segkit.data.discover import list_samples

    manifest = _usable_manifest(out, size, space) or _new_manifest(size, space)
    for split in splits:
        samples = list_samples(roots, split)
        entry = manifest["splits"].get(split)
        if entry is not None and _stale_reason(out, entry, samples) is None:
            log.info("cache %s: %s is up to date (%d images)", out, split, len(samples))
            continue
        manifest["splits"][split] = _write_split(out, split, samples, size, workers, space)
        _write_manifest(out, manifest)  # after each split: an interrupted build keeps what it finished
    return out


def _new_manifest(size: tuple[int, int], space: LabelSpace | None = None) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "segkit_version": segkit.__version__,
        "image_size": list(size),
        "resize": RESIZE,
        "label_mapping": _label_mapping(space),
        "splits": {},
    }


def _label_mapping(space: LabelSpace | None = None) -> dict[str, Any]:
    """How label files became class indices; a cache built with another table or space is stale."""
    if space is None or space == CITYSCAPES:
        return {"labelIds": "segkit.labels.LABEL_TO_TRAIN", "lut": LABEL_TO_TRAIN.tolist(), "labelTrainIds": "as is"}
    return {"space": {k: v for k, v in space.to_dict().items() if k != "source"}}


def _write_split(
    out: Path, split: str, samples: Sequence[Sample], size: tuple[int, int], workers: int, space: LabelSpace | None
) -> dict:
    """Decode, map and resize every pair of a split into two .npy files (written, then renamed)."""
    sizes = [cover_size(_png_shape(s), size) for s in samples]
    h, w = (max((hw[k] for hw in sizes), default=size[k]) for k in (0, 1))
    names = {"images": f"{split}_images.npy", "masks": f"{split}_masks.npy"}
    with ExitStack() as stack:  # both renamed into place when filled; both deleted on any error
        tmp = {k: stack.enter_context(AtomicFile(out / v)) for k, v in names.items()}
        images = np.lib.format.open_memmap(tmp["images"], mode="w+", dtype=np.uint8, shape=(len(samples), h, w, 3))
        masks = np.lib.format.open_memmap(tmp["masks"], mode="w+", dtype=np.uint8, shape=(len(samples), h, w))
        start = time.perf_counter()

        def fill(i: int) -> dict:
            image, mask, shape = _load_resized(samples[i], size, space)
            rh, rw = mask.shape  # the rest of the row stays 0 and is never served
            images[i, :rh, :rw], masks[i, :rh, :rw] = image, mask
            return _source_record(samples[i], shape, (rh, rw))

        n_threads = workers if workers > 0 else min(8, os.cpu_count() or 1)
        with ThreadPoolExecutor(max_workers=n_threads) as pool:
            bar = progress.bar(
                pool.map(fill, range(len(samples))), total=len(samples), desc=f"cache {split}", unit="img"
            )
            sources = list(bar)
        log.info("cache %s: %s %d images (%.1f s)", out, split, len(samples), time.perf_counter() - start)
        images.flush()
        masks.flush()
    return {"count": len(samples), **names, "shape": [h, w], "sources": sources}


def _png_shape(sample: Sample) -> tuple[int, int]:
    """(H, W) of a sample's photo from its file's header (no decoding): as seen, a pair's half."""
    from segkit.data.cityscapes import sample_size

    return sample_size(sample)


def _load_resized(
    sample: Sample, size: tuple[int, int], space: LabelSpace | None = None
) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """(image (h, w, 3), class indices (h, w), original (H, W)) resized as the training transform's first step."""
    from segkit.data.cityscapes import read_sample

    image, label = read_sample(sample, space)  # the reader training uses: same sizes checked, pairs decoded once
    out = ResizeToCover(*size)(image=image, mask=label)  # the training pipeline's own first step: identical pixels
    return out["image"], out["mask"], image.shape[:2]


def _source_record(sample: Sample, shape: tuple[int, int], resized: tuple[int, int]) -> dict[str, Any]:
    image, label = sample.image.resolve(), sample.label.resolve()
    si, sl = image.stat(), label.stat()
    return {
        "stem": sample.stem,
        "city": sample.city,
        "label_format": sample.label_format,
        **_decoding(sample),
        "image": str(image),
        "image_bytes": si.st_size,
        "image_mtime_ns": si.st_mtime_ns,
        "label": str(label),
        "label_bytes": sl.st_size,
        "label_mtime_ns": sl.st_mtime_ns,
        "height": int(shape[0]),
        "width": int(shape[1]),
        "resized": [int(resized[0]), int(resized[1])],
    }


def _decoding(sample: Sample) -> dict[str, Any]:
    """How a colour mask (an image pair's, or a colour-coded space's: lossy ones are decoded by context)
    became class indices (a cache decoded otherwise is stale); {} for id files."""
    from segkit.data.layouts import COLOR_FORMAT
    from segkit.data.pairs import DECODER, is_pair_sample, tolerance_of

    colored = is_pair_sample(sample) or sample.label_format == COLOR_FORMAT
    return {"decoder": DECODER, "color_tolerance": tolerance_of(sample)} if colored else {}


def _write_manifest(out: Path, manifest: dict) -> None:
    write_json(out / MANIFEST, manifest)  # last, and atomically: a cache without it is not complete


# ----------------------------------------------------------------------------- finding


def read_manifest(cache_dir: Path) -> dict[str, Any]:
    """The manifest of a cache folder; DataError if it is missing or unreadable."""
    path = Path(cache_dir) / MANIFEST
    if not path.is_file():
        raise DataError(
            f"{cache_dir} is not a segkit cache (no {MANIFEST}). Build one with: "
            "segkit prepare --data-root DIR --image-size H W"
        )
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"cannot read {path} ({e}); rebuild the cache with segkit prepare") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataError(f"{path} is not a segkit cache manifest (format != {FORMAT!r}); rebuild with segkit prepare")
    return manifest


def _usable_manifest(out: Path, size: tuple[int, int], space: LabelSpace | None = None) -> dict | None:
    """An existing manifest that a rebuild may extend (same size, layout and label table)."""
    if not (out / MANIFEST).is_file():
        return None
    manifest = read_manifest(out)
    same = (
        manifest.get("version") == VERSION
        and manifest.get("image_size") == list(size)
        and manifest.get("label_mapping") == _label_mapping(space)
    )
    return manifest if same else None


def find_cache(
    samples: Sequence[Sample],
    image_size: Sequence[int],
    split: str | None = None,
    cache_dir: str | Path | None = None,
    space: LabelSpace | None = None,
) -> Path | None:
    """The cache folder that holds these exact samples, unchanged, at `image_size`.

    Args:
        samples: From `list_samples` (possibly a subset, e.g. `--max-train-images`).
        image_size: (H, W) the arrays must have.
        split: Split name; None = the split the samples were listed from.
        cache_dir: Check only this folder and raise DataError if it does not match.
        space: The label space the masks must be in (None = cityscapes).

    Returns:
        The folder, or None (auto mode) when there is no cache or it is stale (logged with the
        file that changed and the `segkit prepare` command that rebuilds it).
    """
    if not samples:
        return None
    roots = samples[0].roots
    if roots is None:
        raise DataError(
            "these samples do not say which data set they come from (Sample.roots): list them with "
            "list_samples to look for their cache"
        )
    split = split or samples[0].split
    explicit = cache_dir is not None
    folders = [Path(cache_dir)] if explicit else cache_dir_candidates(roots.image_root, image_size)
    for folder in folders:
        if not explicit and not (folder / MANIFEST).is_file():
            continue
        reason = _why_not(folder, split, samples, image_size, space)
        if reason is None:
            if runtime.is_local_main():  # every torchrun process looks; one per node (its own copy) says so
                log.info("%s data: cache %s (%d images at %dx%d)", split, folder, len(samples), *image_size)
            return folder
        message = (
            f"cache {folder} not used for {split}: {reason}. Rebuild it with: segkit prepare {roots.flags()} "
            f"--image-size {image_size[0]} {image_size[1]} --splits {split}"
        )
        if explicit:
            raise DataError(message)
        if runtime.is_local_main():
            log.warning("%s; meanwhile the PNG files are read (slower)", message)
    return None


def _why_not(
    folder: Path, split: str, samples: Sequence[Sample], image_size: Sequence[int], space: LabelSpace | None = None
) -> str | None:
    """Why the cache in `folder` cannot serve these samples, or None when it can."""
    manifest = read_manifest(folder)
    mismatch = _manifest_mismatch(manifest, split, image_size, space)
    return mismatch or _stale_reason(folder, manifest["splits"][split], samples)


def _manifest_mismatch(
    manifest: dict, split: str, image_size: Sequence[int], space: LabelSpace | None = None
) -> str | None:
    if manifest.get("version") != VERSION:
        return f"it was built by an older segkit (cache version {manifest.get('version')}, expected {VERSION})"
    if manifest.get("image_size") != [int(v) for v in image_size]:
        return f"it holds {manifest.get('image_size')} arrays, training needs {list(image_size)}"
    if manifest.get("label_mapping") != _label_mapping(space):
        return "it was built in another label space, or the labelId -> trainId table changed since"
    if split not in manifest.get("splits", {}):
        return f"it has no {split!r} split (it has {', '.join(manifest.get('splits', {})) or 'none'})"
    return None


def _stale_reason(folder: Path, entry: dict, samples: Sequence[Sample]) -> str | None:
    """Why `entry` does not hold exactly these samples' current files, or None."""
    records = {r["stem"]: r for r in entry["sources"]}
    for sample in samples:
        record = records.get(sample.stem)
        if record is None:
            return f"{sample.image.name} is new since the cache was built"
        for kind in ("image", "label"):
            path = getattr(sample, kind)
            try:
                st = path.stat()
            except OSError:
                return f"{path} is missing"
            if str(path.resolve()) != record[kind] or (st.st_size, st.st_mtime_ns) != (
                record[f"{kind}_bytes"],
                record[f"{kind}_mtime_ns"],
            ):
                return f"{path} changed since the cache was built (size, time or location)"
        if {k: record.get(k) for k in _decoding(sample)} != _decoding(sample):
            return (
                f"its colour masks were decoded with {record.get('color_tolerance')} as color_tolerance "
                f"({record.get('decoder')}), now {_decoding(sample)['color_tolerance']}"
            )
    hw = tuple(entry["shape"])  # version 2 manifests always have it; older ones were refused above
    for key, shape in (("images", (entry["count"], *hw, 3)), ("masks", (entry["count"], *hw))):
        if not (folder / entry[key]).is_file() or np.load(folder / entry[key], mmap_mode="r").shape != tuple(shape):
            return f"{entry[key]} is missing or has the wrong shape (expected {tuple(shape)})"
    return None


# ----------------------------------------------------------------------------- dataset


class CachedDataset(Dataset):
    """Pre-resized image/mask pairs from a `segkit prepare` cache, served like CityscapesDataset.

    Items are `{"image": float32 (3, h, w) normalised, "mask": int64 (h, w) trainIds, "name": stem}`;
    `item` is an index or (index, seed) from EpochSampler. The train transform's first step (a
    resize covering image_size, aspect kept) is a no-op on these arrays, so for the same (index, seed) the item equals
    CityscapesDataset's, pixel for pixel.

    Args:
        cache_dir: A folder written by `prepare_cache` (see `find_cache`).
        split: Split name.
        transform: Albumentations pipeline ending in ToTensorV2; default `eval_transform(None)`.
        samples: Serve only these samples, in this order (default: the whole split).
    """

    def __init__(
        self,
        cache_dir: str | Path,
        split: str,
        transform: Callable[..., dict] | None = None,
        samples: Sequence[Sample] | None = None,
    ) -> None:
        self.cache_dir, self.split = Path(cache_dir), split
        manifest = read_manifest(self.cache_dir)
        entry = manifest["splits"].get(split)
        if entry is None:
            raise DataError(
                f"cache {cache_dir} has no {split!r} split (it has {', '.join(manifest['splits']) or 'none'}); "
                f"add it with segkit prepare --splits {split}"
            )
        rows = {r["stem"]: i for i, r in enumerate(entry["sources"])}
        self.samples = list(samples) if samples is not None else [_sample(r) for r in entry["sources"]]
        missing = [s.stem for s in self.samples if s.stem not in rows]
        if missing:
            raise DataError(
                f"cache {cache_dir} lacks {len(missing)} of the samples (e.g. {missing[0]}); rerun segkit prepare"
            )
        self.rows = [rows[s.stem] for s in self.samples]
        self.sizes = [tuple(entry["sources"][r]["resized"]) for r in self.rows]  # each row's own (h, w)
        self.paths = (self.cache_dir / entry["images"], self.cache_dir / entry["masks"])
        if transform is None:
            from segkit.data.transforms import eval_transform

            transform = eval_transform(None)
        self.transform = transform
        self._arrays: tuple[np.ndarray, np.ndarray] | None = None
        self._seeded_for: int | None = None

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, item: int | tuple[int, int]) -> dict[str, Any]:
        i, seed = item if isinstance(item, tuple) else (item, None)
        if self._arrays is None:  # opened lazily: each DataLoader worker maps the files itself
            self._arrays = tuple(np.load(p, mmap_mode="r") for p in self.paths)
        row, (h, w) = self.rows[i], self.sizes[i]
        image, mask = (
            np.array(self._arrays[0][row, :h, :w]),
            np.array(self._arrays[1][row, :h, :w]),
        )  # (h, w, 3), (h, w)
        self._seeded_for = seed_transform(self.transform, seed, self._seeded_for)
        out = self.transform(image=image, mask=mask)
        return {"image": out["image"], "mask": torch.as_tensor(out["mask"]).long(), "name": self.samples[i].stem}

    def __getstate__(self) -> dict:
        # A pickled memmap would be copied whole into each worker; workers re-open the files.
        return {**self.__dict__, "_arrays": None}


def _sample(record: dict) -> Sample:
    return Sample(Path(record["image"]), Path(record["label"]), record["city"], record["stem"], record["label_format"])


# ----------------------------------------------------------------------------- CLI


def register_cli(sub: Any) -> None:
    """`segkit prepare`: every PrepareConfig field is a flag (the data fields as `segkit train` takes them)."""
    p = sub.add_parser(
        "prepare",
        help="build the preprocessing cache (decoded, label-mapped, resized arrays)",
        description=__doc__.split("\n\n")[0],
    )
    add_config_flags(p, PrepareConfig)
    p.set_defaults(func=cmd_prepare)


def cmd_prepare(args: argparse.Namespace) -> int:
    """Build the cache and say where it is and how training finds it."""
    from segkit.data.discover import resolve_data_roots

    cfg, _ = config_from_args(PrepareConfig, args)
    from segkit.data.spaces import space_of

    roots = resolve_data_roots(cfg.data_root or None, layouts=layouts_of(cfg))
    space, where = space_of(cfg.classes, roots)
    print(where)
    out = prepare_cache(roots, cfg.image_size, cfg.splits, Path(cfg.out) if cfg.out else None, cfg.workers, space)
    manifest = read_manifest(out)
    counts = ", ".join(f"{s} {manifest['splits'][s]['count']}" for s in cfg.splits)
    megabytes = sum(f.stat().st_size for f in out.glob("*.npy")) / 2**20
    h, w = cfg.image_size
    print(
        f"cache ({counts} images at {h}x{w}, {megabytes:.0f} MB) in {out}; "
        f"segkit train --image-size {h} {w} uses it automatically"
    )
    return 0
