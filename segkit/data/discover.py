"""Find the Cityscapes data on disk and list (image, label) pairs.

Resolution order: an explicit `data_root`, then `$CITYSCAPES_DATASET`, then Kaggle inputs
(`/kaggle/input/<slug>/...` and `/kaggle/input/datasets/<owner>/<slug>/...`; images and labels
may come from two different Kaggle datasets), then `./data/cityscapes`, else the synthetic set.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from segkit.errors import DataError
from segkit.kaggle_env import kaggle_input_root

logger = logging.getLogger("segkit")

DEFAULT_SYNTHETIC_DIR = Path("data/synthetic")
IMAGE_DIR = "leftImg8bit"
LABEL_DIR = "gtFine"
IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIXES = {  # preferred first: trainIds need no lookup table and are what training uses
    "labelTrainIds": "_gtFine_labelTrainIds.png",
    "labelIds": "_gtFine_labelIds.png",
}
EXPECTED_LAYOUT = (
    "expected layout (as in the official leftImg8bit_trainvaltest.zip + gtFine_trainvaltest.zip):\n"
    "  <root>/leftImg8bit/{train,val}/<city>/<city>_<seq>_<frame>_leftImg8bit.png\n"
    "  <root>/gtFine/{train,val}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png"
    " (or _gtFine_labelTrainIds.png)\n"
    "  (leftImg8bit/ and gtFine/ may sit under two different roots, e.g. two Kaggle datasets)"
)
# Bounds on the directory search: a Kaggle mount can hold millions of files, so only
# directories are followed, never deeper than this, and never more than _MAX_DIRS of them.
_SEARCH_DEPTH = 5
_MAX_DIRS = 5000
_SHOW = 5  # how many offending files an error message names


@dataclass(frozen=True)
class DataRoots:
    """Where the data lives; the two roots may differ (two Kaggle datasets)."""

    image_root: Path  # the directory that contains leftImg8bit/
    label_root: Path  # the directory that contains gtFine/
    synthetic: bool = False  # True when this is the generated stand-in, not Cityscapes

    def describe(self) -> str:
        """One line for logs and notebooks."""
        kind = "SYNTHETIC data (not Cityscapes)" if self.synthetic else "Cityscapes"
        images = self.image_root / IMAGE_DIR
        shown = images if images.is_dir() else "none (labels only)"
        return f"{kind}: images {shown}, labels {self.label_root / LABEL_DIR}"


@dataclass(frozen=True)
class Sample:
    """One image and its label file."""

    image: Path | None  # None when only gtFine is available (scoring predictions)
    label: Path
    city: str
    stem: str  # "<city>_<seq>_<frame>"
    label_format: str  # "labelIds" | "labelTrainIds"


def label_format_of(path: str | Path) -> str:
    """The label format a file's name announces (the key of LABEL_SUFFIXES its name ends with).

    Args:
        path: A `*_gtFine_labelIds.png` or `*_gtFine_labelTrainIds.png` file.

    Returns:
        "labelIds" or "labelTrainIds", as in `Sample.label_format` (for `read_label`).
    """
    name = Path(path).name
    for label_format, suffix in LABEL_SUFFIXES.items():
        if name.endswith(suffix):
            return label_format
    raise DataError(
        f"{path} is not named like a Cityscapes label file: expected <city>_<seq>_<frame>"
        f"{' or '.join(LABEL_SUFFIXES.values())}. Fix: pass the label files from gtFine/."
    )


def candidate_roots(data_root: str | Path | None) -> list[Path]:
    """The places searched, in order.

    Args:
        data_root: An explicit root; when given it is the only candidate (no fallback).

    Returns:
        `[data_root]`, or `[$CITYSCAPES_DATASET (if set), Kaggle input, ./data/cityscapes]`.
    """
    if data_root is not None:
        return [Path(data_root).expanduser()]
    roots = []
    if os.environ.get("CITYSCAPES_DATASET"):
        roots.append(Path(os.environ["CITYSCAPES_DATASET"]).expanduser())
    return roots + [kaggle_input_root(), Path("data/cityscapes")]


def find_data_roots(
    data_root: str | Path | None = None, need_images: bool = True
) -> DataRoots | None:
    """Find leftImg8bit/ and gtFine/ (a bounded search a few levels below each candidate).

    Args:
        data_root: An explicit root; if nothing usable is found there a DataError is raised.
        need_images: If False, gtFine/ alone is enough (scoring saved predictions).

    Returns:
        The roots, or None when nothing was found in auto mode (`data_root` None).
        `$CITYSCAPES_DATASET`, when set, is explicit too: an unusable one raises.
    """
    explicit_env = data_root is None and bool(os.environ.get("CITYSCAPES_DATASET"))
    for i, root in enumerate(candidate_roots(data_root)):
        found = _roots_under(root, need_images)
        if found is not None:
            # A set segkit generated stays labelled synthetic however it was reached.
            if (found.image_root / "synthetic.json").is_file():
                found = DataRoots(found.image_root, found.label_root, synthetic=True)
            logger.info("data: %s", found.describe())
            return found
        if data_root is not None or (explicit_env and i == 0):
            source = "data_root" if data_root is not None else "$CITYSCAPES_DATASET"
            raise DataError(_not_found_message([root], need_images, source))
    return None


def resolve_data_roots(
    data_root: str | Path | None = None,
    synthetic_dir: Path = DEFAULT_SYNTHETIC_DIR,
    synthetic_size: tuple[int, int] = (256, 512),
    num_train: int = 60,
    num_val: int = 20,
    seed: int = 0,
) -> DataRoots:
    """Find the data; in auto mode fall back to a generated synthetic set, loudly.

    Args:
        data_root: An explicit root (never falls back to synthetic), or None for auto.
        synthetic_dir: Where the synthetic set is written (reused when its parameters match).
        synthetic_size: (H, W) of the synthetic images.
        num_train: Synthetic train images.
        num_val: Synthetic val images.
        seed: Seed of the synthetic generator.

    Returns:
        The roots; `synthetic` is True for the fallback.
    """
    found = find_data_roots(data_root)
    if found is not None:
        return found
    from segkit.data.synthetic import generate_synthetic  # lazy: only the fallback needs it

    # It reuses a complete set made with the same parameters and regenerates one that segkit
    # wrote with other parameters (the set is derived data); it never touches foreign files.
    synthetic_dir = generate_synthetic(
        Path(synthetic_dir),
        num_train,
        num_val,
        image_size=synthetic_size,
        seed=seed,
        overwrite=True,
    )
    message = (
        f"NO CITYSCAPES DATA FOUND: using the SYNTHETIC data set in {synthetic_dir}. "
        "Results are on synthetic data, not Cityscapes, and say nothing about Cityscapes. "
        f"Searched: {', '.join(str(p) for p in candidate_roots(None))}. "
        "Fix: pass data_root=/path/to/cityscapes (--data-root), set CITYSCAPES_DATASET, "
        "or attach the Cityscapes datasets to the Kaggle kernel.\n"
        f"{EXPECTED_LAYOUT}"
    )
    logger.warning(message)
    warnings.warn(message, UserWarning, stacklevel=2)
    return DataRoots(synthetic_dir, synthetic_dir, synthetic=True)


def list_splits(roots: DataRoots) -> list[str]:
    """Splits present under gtFine/ (and under leftImg8bit/ too, when images exist), sorted."""
    splits = set(_subdirs(roots.label_root / LABEL_DIR))
    images = roots.image_root / IMAGE_DIR
    if images.is_dir():
        splits &= set(_subdirs(images))
    return sorted(splits)


def list_samples(roots: DataRoots, split: str, need_images: bool = True) -> list[Sample]:
    """Pair every image of a split with its label file; nothing is skipped silently.

    Args:
        roots: From `find_data_roots` / `resolve_data_roots`.
        split: "train", "val", ...
        need_images: If False, list labels only (`Sample.image` is None).

    Returns:
        Samples sorted by (city, stem). `*_gtFine_labelTrainIds.png` is preferred over
        `*_gtFine_labelIds.png` when both exist.
    """
    label_dir = _split_dir(roots, split, LABEL_DIR, roots.label_root)
    labels = _collect_labels(label_dir)
    if not need_images:
        if not labels:
            raise DataError(_no_files_message(label_dir, "*_gtFine_labelIds.png"))
        return [Sample(None, *_label_fields(labels, key)) for key in sorted(labels)]
    image_dir = _split_dir(roots, split, IMAGE_DIR, roots.image_root)
    images = _collect_images(image_dir)
    if not images:
        raise DataError(_no_files_message(image_dir, f"*{IMAGE_SUFFIX}"))
    _check_pairing(images, labels, image_dir, label_dir)
    return [Sample(images[key], *_label_fields(labels, key)) for key in sorted(images)]


# --- search -------------------------------------------------------------------------------


def _roots_under(root: Path, need_images: bool) -> DataRoots | None:
    """DataRoots for the first usable leftImg8bit/ + gtFine/ found below `root`, or None."""
    if root.name in (IMAGE_DIR, LABEL_DIR):  # pointed at leftImg8bit/ itself: use its parent
        root = root.parent
    if not root.is_dir():
        return None
    found = _find_named_dirs(root, {IMAGE_DIR, LABEL_DIR})
    image_dirs, label_dirs = found[IMAGE_DIR], found[LABEL_DIR]
    if not label_dirs or (need_images and not image_dirs):
        return None
    if not image_dirs:
        return DataRoots(label_dirs[0].parent, label_dirs[0].parent)
    # Prefer a gtFine/ next to the images (one dataset); else the first one (two datasets).
    for image_dir in image_dirs:
        for label_dir in label_dirs:
            if label_dir.parent == image_dir.parent:
                return DataRoots(image_dir.parent, label_dir.parent)
    if len(image_dirs) > 1 or len(label_dirs) > 1:
        logger.info("several data directories found; using %s and %s", image_dirs[0], label_dirs[0])
    return DataRoots(image_dirs[0].parent, label_dirs[0].parent)


def _find_named_dirs(root: Path, names: set[str]) -> dict[str, list[Path]]:
    """Breadth-first search for directories with the given names, bounded in depth and count.

    A found directory is not searched further, unless it only wraps a directory of the same
    name (`leftImg8bit/leftImg8bit/train`, a common result of unzipping on Kaggle).
    """
    found: dict[str, list[Path]] = {name: [] for name in names}
    queue, visited = deque([(root, 0)]), 0
    while queue and visited < _MAX_DIRS:
        path, depth = queue.popleft()
        visited += 1
        if path.name in names and not (path / path.name).is_dir():
            found[path.name].append(path)
            continue
        if depth < _SEARCH_DEPTH:
            queue.extend((path / name, depth + 1) for name in _subdirs(path))
    if queue:
        logger.warning("data search under %s stopped after %d directories", root, _MAX_DIRS)
    return {name: sorted(paths) for name, paths in found.items()}


def _subdirs(path: Path) -> list[str]:
    """Names of the visible subdirectories of `path`, sorted; [] if it is not readable."""
    try:
        with os.scandir(path) as entries:
            return sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []


def _not_found_message(searched: list[Path], need_images: bool, source: str) -> str:
    wanted = "leftImg8bit/ and gtFine/" if need_images else "gtFine/"
    where = "\n".join(f"  {p}{'' if p.is_dir() else ' (does not exist)'}" for p in searched)
    return (
        f"no usable Cityscapes data under the {source} given: expected {wanted} within "
        f"{_SEARCH_DEPTH} levels, searched:\n{where}\n{EXPECTED_LAYOUT}\n"
        f"Fix: point {source} at the directory that contains leftImg8bit/ and gtFine/ "
        f"(download both zips from https://www.cityscapes-dataset.com/downloads/)."
    )


# --- pairing ------------------------------------------------------------------------------


def _split_dir(roots: DataRoots, split: str, kind: str, base: Path) -> Path:
    """`base/kind/split`, or a DataError listing the splits that do exist."""
    path = base / kind / split
    if not path.is_dir():
        existing = _subdirs(base / kind)
        raise DataError(
            f"split {split!r} not found: expected the directory {path}; found splits "
            f"{existing or 'none'} in {base / kind}. "
            f"Fix: use one of {existing or list_splits(roots)} "
            f"or add the missing split.\n{EXPECTED_LAYOUT}"
        )
    return path


def _collect_images(image_dir: Path) -> dict[tuple[str, str], Path]:
    """{(city, stem): path} of every `<city>/*_leftImg8bit.png` below `image_dir`."""
    images = {}
    for path in image_dir.glob(f"*/*{IMAGE_SUFFIX}"):
        images[(path.parent.name, path.name[: -len(IMAGE_SUFFIX)])] = path
    return images


def _collect_labels(label_dir: Path) -> dict[tuple[str, str], tuple[Path, str]]:
    """{(city, stem): (path, label_format)}; trainId files win over labelId files."""
    labels: dict[tuple[str, str], tuple[Path, str]] = {}
    for fmt, suffix in reversed(LABEL_SUFFIXES.items()):  # later formats overwrite: preferred last
        for path in label_dir.glob(f"*/*{suffix}"):
            labels[(path.parent.name, path.name[: -len(suffix)])] = (path, fmt)
    return labels


def _label_fields(
    labels: dict[tuple[str, str], tuple[Path, str]], key: tuple[str, str]
) -> tuple[Path, str, str, str]:
    """The (label, city, stem, label_format) fields of a Sample."""
    path, fmt = labels[key]
    return path, key[0], key[1], fmt


def _check_pairing(
    images: dict[tuple[str, str], Path],
    labels: dict[tuple[str, str], tuple[Path, str]],
    image_dir: Path,
    label_dir: Path,
) -> None:
    """Raise a DataError naming the images without labels, or the labels without images."""
    unlabelled = sorted(set(images) - set(labels))
    if unlabelled:
        shown = "\n".join(f"  {images[k]}" for k in unlabelled[:_SHOW])
        raise DataError(
            f"{len(unlabelled)} of {len(images)} images have no label file: expected "
            f"<stem>_gtFine_labelIds.png (or _labelTrainIds.png) in {label_dir}/<city>/, e.g. for\n"
            f"{shown}\n{_label_fix(label_dir, unlabelled[0])}"
        )
    orphans = sorted(set(labels) - set(images))
    if orphans:
        shown = "\n".join(f"  {labels[k][0]}" for k in orphans[:_SHOW])
        raise DataError(
            f"{len(orphans)} label files have no image: expected <stem>{IMAGE_SUFFIX} in "
            f"{image_dir}/<city>/ for\n{shown}\nFix: download the matching leftImg8bit split, "
            "or remove the extra label files."
        )


def _label_fix(label_dir: Path, key: tuple[str, str]) -> str:
    """The fix for a missing label file, computed from what sits in its place."""
    city, stem = key
    if (label_dir / city / f"{stem}_gtFine_color.png").exists():
        return (
            "Found *_gtFine_color.png instead: colour masks are visualisations, not labels. "
            "Fix: use "
            "the *_gtFine_labelIds.png files from gtFine_trainvaltest.zip."
        )
    if (label_dir / city / f"{stem}_gtFine_polygons.json").exists():
        return (
            "Found *_gtFine_polygons.json only. "
            "Fix: create the label images with cityscapesscripts: "
            f"CITYSCAPES_DATASET={label_dir.parent.parent} csCreateTrainIdLabelImgs"
        )
    return "Fix: download gtFine_trainvaltest.zip for this split, or remove the unlabelled images."


def _no_files_message(split_dir: Path, pattern: str) -> str:
    """What was searched, what is there instead, and the expected layout."""
    present = sorted(p.name for p in split_dir.rglob("*") if p.is_file())[:_SHOW]
    instead = f"found instead: {', '.join(present)}" if present else "the directory holds no files"
    if any(split_dir.glob(pattern)):  # the right files, but not in per-city folders
        fix = f"move the files into <city>/ subfolders of {split_dir} (city = the name's prefix)."
    else:
        fix = "point data_root at the root of the extracted official zips."
    return (
        f"no files matching <city>/{pattern} in {split_dir} ({instead}).\n{EXPECTED_LAYOUT}\n"
        f"Fix: {fix}"
    )
