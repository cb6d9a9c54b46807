"""Find the data on disk and list (image, label) pairs, in any layout of `segkit.data.layouts`.

Resolution order: an explicit `data_root`, then `$CITYSCAPES_DATASET`, then Kaggle inputs
(`/kaggle/input/<slug>/...` and `/kaggle/input/datasets/<owner>/<slug>/...`; images and labels
may come from two different Kaggle datasets), then `./data/cityscapes`, else the synthetic set.

Below each candidate a bounded search looks for the folders each layout starts with (Cityscapes'
leftImg8bit/ with gtFine/ or gtCoarse*/, KITTI's <split>/image_2/ with <split>/semantic/, ACDC's
and Dark Zurich's rgb_anon/ with gt/, CamVid's trainannot/, Mapillary's training/labels/, ADE20K's
annotations/training/, VOC's SegmentationClass/). A layout shipped as one archive (`Layout.one_root`)
is found where its label folders are, and needs its images in the same folder: one that has the
labels and not the images is refused with the tree expected and what is there. With no layout
named, exactly one layout must be found there (or one its `prefer_over` names beside it); two are
refused with the flag that picks one. Glob layouts are read below the given root.
"""

from __future__ import annotations

import glob
import logging
import os
import warnings
from collections import deque
from dataclasses import asdict, dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, NamedTuple

from segkit.config import SynthConfig
from segkit.data.layouts import (
    AUTO,
    CITYSCAPES,
    DEFAULT_COLOR_TOLERANCE,
    Layout,
    anchor,
    file_of,
    fill_split,
    group_of,
    label_format_of,
    layout_split_dirs,
    list_file,
    listed_stems,
    prefix_depth,
    searches_every_layout,
    split_names,
    splits_below,
    stem_of,
    with_format,
)
from segkit.errors import DataError
from segkit.kaggle_env import kaggle_input_root

logger = logging.getLogger("segkit")

DEFAULT_SYNTHETIC_DIR = Path(SynthConfig.out)  # where the stand-in is drawn when no data is found
EXPECTED_LAYOUT = CITYSCAPES.expected
# Bounds on the directory search: a Kaggle mount can hold millions of files, so only
# directories are followed, never deeper than this, and never more than _MAX_DIRS of them.
_SEARCH_DEPTH = 5
_MAX_DIRS = 5000
_SHOW = 5  # how many offending files an error message names


@dataclass(frozen=True)
class DataRoots:
    """Where the data lives and how it is laid out; the two roots may differ (two Kaggle datasets)."""

    image_root: Path  # the directory the layout's image pattern starts from (Cityscapes: holds leftImg8bit/)
    label_root: Path  # the directory the layout's label patterns start from (Cityscapes: holds gtFine/)
    synthetic: bool = False  # True when this is the generated stand-in, not Cityscapes
    layout: Layout = CITYSCAPES  # where images and label files sit below the roots

    def describe(self) -> str:
        """One line for logs and notebooks."""
        kind = "SYNTHETIC data (not Cityscapes)" if self.synthetic else self.layout.title
        images = self.image_root / self.layout.images if self.has_images() else "none (labels only)"
        labels = " or ".join(str(self.label_root / p) for p in self.layout.labels)
        return f"{kind}: images {images}, labels {labels}"

    def has_images(self) -> bool:
        """Whether any split has an image folder."""
        return bool(splits_below(self.image_root, self.layout, self.layout.images))

    def record(self) -> dict[str, Any]:
        """What a run keeps (config.json, checkpoints) to find the same data again (`from_record`)."""
        return {
            "image_root": str(self.image_root.absolute()),
            "label_root": str(self.label_root.absolute()),
            "synthetic": self.synthetic,
            "layout": asdict(self.layout),
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> DataRoots:
        """The roots `record` wrote (a record without a layout is Cityscapes)."""
        fields = record.get("layout") or asdict(CITYSCAPES)
        layout = Layout(**{k: _tuples(v) for k, v in fields.items()})
        return cls(Path(record["image_root"]), Path(record["label_root"]), bool(record.get("synthetic")), layout)

    def flags(self) -> str:
        """Command-line flags that find this data again."""
        layout = self.layout
        flags = f"--data-root {self.image_root}"
        if layout.name == "glob":
            flags += f" --image-glob '{layout.images}' --label-glob '{layout.labels[0]}'"
        elif layout.name != CITYSCAPES.name:
            flags += f" --layout {layout.name}"
        if layout.color_tolerance != DEFAULT_COLOR_TOLERANCE:
            flags += f" --color-tolerance {layout.color_tolerance:g}"
        return flags + (f" --label-format {layout.formats[0]}" if len(layout.formats) == 1 else "")


def _tuples(value: Any) -> Any:
    """JSON's lists as the tuples a Layout holds (nested: its `splits`)."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


@dataclass(frozen=True)
class Sample:
    """One image and its label file."""

    image: Path | None  # None when only labels are available (scoring predictions)
    label: Path
    city: str  # the frame's group: its city (Cityscapes), condition/sequence (ACDC), "" (KITTI)
    stem: str  # the frame's name without the layout's ending, unique in its split ("<city>_<seq>_<frame>", "000000_10")
    label_format: str  # how the label file holds its classes: labelIds, labelTrainIds, pairColor, values, color
    split: str = ""  # the split it was listed from, as asked for (train, even where the folder is training)
    roots: DataRoots | None = None  # the data set it belongs to


class _File(NamedTuple):
    path: Path
    label_format: str
    group: str


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
    data_root: str | Path | None = None, need_images: bool = True, layouts: tuple[Layout, ...] = AUTO
) -> DataRoots | None:
    """Find a layout's image and label folders (a bounded search a few levels below each candidate).

    Args:
        data_root: An explicit root; if nothing usable is found there a DataError is raised.
        need_images: If False, label folders alone are enough (scoring saved predictions).
        layouts: The layouts to look for (`layouts.layouts_for`); AUTO = every built-in one.

    Returns:
        The roots, or None when nothing was found in auto mode (`data_root` None).
        `$CITYSCAPES_DATASET`, when set, is explicit too: an unusable one raises.
    """
    explicit_env = data_root is None and bool(os.environ.get("CITYSCAPES_DATASET"))
    candidates = candidate_roots(data_root)
    for i, root in enumerate(candidates):
        found = _roots_under(root, need_images, layouts)
        if found is not None:
            # A set segkit generated stays labelled synthetic however it was reached.
            if (found.image_root / "synthetic.json").is_file():
                found = DataRoots(found.image_root, found.label_root, True, found.layout)
            logger.info("data: %s", found.describe())
            return found
        if data_root is not None or (explicit_env and i == 0):
            source = "data_root" if data_root is not None else "$CITYSCAPES_DATASET"
            raise DataError(_not_found_message([root], need_images, source, layouts))
    if not searches_every_layout(layouts):  # a layout was named: never fall back to other data
        raise DataError(_not_found_message(candidates, need_images, "search", layouts))
    return None


def resolve_data_roots(
    data_root: str | Path | None = None,
    synthetic_dir: Path = DEFAULT_SYNTHETIC_DIR,
    synthetic_size: tuple[int, int] = SynthConfig.image_size,
    num_train: int = SynthConfig.num_train,
    num_val: int = SynthConfig.num_val,
    seed: int = SynthConfig.seed,
    layouts: tuple[Layout, ...] = AUTO,
) -> DataRoots:
    """Find the data; in auto mode fall back to a generated synthetic set, loudly.

    Args:
        data_root: An explicit root (never falls back to synthetic), or None for auto.
        synthetic_dir: Where the synthetic set is written (reused when its parameters match).
        synthetic_size: (H, W) of the synthetic images.
        num_train: Synthetic train images.
        num_val: Synthetic val images.
        seed: Seed of the synthetic generator.
        layouts: The layouts to look for; a named one never falls back to synthetic.

    Returns:
        The roots; `synthetic` is True for the fallback.
    """
    found = find_data_roots(data_root, layouts=layouts)
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
    """Splits with label files (and with images too, when there are images), sorted."""
    layout = roots.layout
    splits = set().union(*(splits_below(roots.label_root, layout, p) for p in layout.labels))
    images = splits_below(roots.image_root, layout, layout.images)
    return sorted(splits & images if images else splits)


def list_samples(roots: DataRoots, split: str, need_images: bool = True) -> list[Sample]:
    """Pair every image of a split with its label file; nothing is skipped silently.

    Args:
        roots: From `find_data_roots` / `resolve_data_roots`.
        split: "train", "val", "training", ... (a folder name the layout's `{split}` matches, or its list
            file's name; the layout's `splits` map segkit's names to the data set's: train -> training).
        need_images: If False, list labels only (`Sample.image` is None).

    Returns:
        Samples sorted by (city, stem), each with its label format. Where `{format}` offers both,
        `labelTrainIds` files are preferred over `labelIds` files.
    """
    layout, folder = roots.layout, roots.layout.folder_of(split)
    pattern = _label_pattern(roots, folder)
    labels = _collect(roots.label_root, pattern, folder, layout, labels=True)
    if not need_images:
        if not labels:
            raise DataError(_no_files_message(roots.label_root, pattern, folder, layout))
        return _samples({stem: None for stem in labels}, labels, split, roots)
    if not layout_split_dirs(roots.image_root, layout, layout.images, folder):
        raise DataError(_missing_split_message(roots, roots.image_root, layout.images, folder))
    images = _collect(roots.image_root, layout.images, folder, layout, labels=False)
    if not images:
        raise DataError(_no_files_message(roots.image_root, layout.images, folder, layout))
    _check_pairing(images, labels, roots, pattern, folder)
    return _samples(images, labels, split, roots)


def _samples(images: dict[str, _File | None], labels: dict[str, _File], split: str, roots: DataRoots) -> list[Sample]:
    """Samples sorted by (group, stem); the group comes from the image when there is one."""
    out = []
    for stem, image in images.items():
        label = labels[stem]
        group = image.group if image is not None else label.group
        out.append(Sample(image and image.path, label.path, group, stem, label.label_format, split, roots))
    return sorted(out, key=lambda s: (s.city, s.stem))


# --- search -------------------------------------------------------------------------------


def _roots_under(root: Path, need_images: bool, layouts: tuple[Layout, ...]) -> DataRoots | None:
    """The one layout found below `root` (a DataError when several are), or None."""
    if layouts[0].name == "glob":
        return _glob_roots(root, need_images, layouts[0])
    if any(fnmatchcase(root.name, name) for name, depth in _anchors(layouts) if depth == 0):
        root = root.parent  # pointed at leftImg8bit/ (or gtFine/, rgb_anon/ ...) itself: use its parent
    if not root.is_dir():
        return None
    # One-root layouts' folders (labels/, annotations/, ...) may also hold other data: the search goes on below them.
    through = {name for lay in layouts if lay.one_root for p in lay.labels for name, _ in _pattern_anchors(lay, p)}
    dirs = _find_named_dirs(root, {name for name, _ in _anchors(layouts)}, through - _stop_names(layouts))
    found, incomplete = [], []
    for lay in layouts:
        try:
            roots = (
                _pair_roots(lay, root, dirs, len(layouts) == 1)
                if lay.root_names
                else _layout_roots(lay, dirs, need_images)
            )
        except _IncompleteCopy as err:  # refused only when no other layout is found
            incomplete.append(err)
            continue
        found += [roots] if roots is not None else []
    found = _preferred(found)
    if len(found) > 1:
        raise DataError(_ambiguous_message(root, found))
    if not found and incomplete:
        raise incomplete[0]
    return found[0] if found else None


class _IncompleteCopy(DataError):
    """A folder holds a one-root layout's labels and not the rest (`_incomplete_message`)."""


def _preferred(found: list[DataRoots]) -> list[DataRoots]:
    """`found` less the layouts another one found in the same folder is preferred over (`Layout.prefer_over`)."""
    kept = [
        r
        for r in found
        if not any(r.layout.name in o.layout.prefer_over and o.image_root == r.image_root for o in found)
    ]
    for r in found:
        if r not in kept:
            logger.info(
                "%s has %s too; using the other layout (--layout %s for it)",
                r.image_root,
                r.layout.title,
                r.layout.name,
            )
    return kept


def _anchors(layouts: tuple[Layout, ...]) -> set[tuple[str, int]]:
    """(folder name pattern, depth below the root) the search looks for: every layout's image and label
    patterns' (only the labels' for a layout in one folder: its images are looked for beside them)."""
    named = {(name, 0) for lay in layouts for name in lay.root_names}  # image pairs: cityscapes_data/
    searched = ((lay, p) for lay in layouts if not lay.root_names for p in _searched_patterns(lay))
    return named | {a for lay, p in searched for a in _pattern_anchors(lay, p)}


def _stop_names(layouts: tuple[Layout, ...]) -> set[str]:
    """The folder names of the layouts not in one folder: the search does not go below them."""
    return {name for name, _ in _anchors(tuple(lay for lay in layouts if not lay.one_root))}


def _searched_patterns(layout: Layout) -> tuple[str, ...]:
    return layout.labels if layout.one_root else (layout.images, *layout.labels)


def _pattern_anchors(layout: Layout, pattern: str) -> list[tuple[str, int]]:
    """(folder name, depth) that start `pattern`: its first folder that is not the split's, or where every
    folder is the split's (CamVid's {split}annot/), that folder of each of the layout's own splits."""
    name, depth = anchor(pattern)
    if "{split}" in name and layout.splits:
        return [(name.replace("{split}", folder), depth) for _, folder in layout.splits]
    return [(name, depth)]


def _pair_roots(layout: Layout, root: Path, dirs: dict[str, list[Path]], named: bool) -> DataRoots | None:
    """The folder whose split folders hold image pairs (`layout.root_names` found below `root`, else `root`).

    Kaggle's copy nests (cityscapes_data/cityscapes_data/train/...); the search follows such wrappers.
    A folder counts when the first file of each of its split folders is a pair by its content; when
    the layout was named (`named`), a folder of files that are not pairs is an error saying why.
    """
    from segkit.data.pairs import (
        check_pair_file,  # numpy and Pillow: only when pairs are looked for
    )

    for folder in [d for name in layout.root_names for d in dirs.get(name, [])] + [root]:
        firsts = [
            f
            for split in sorted(split_names(folder, layout.images))  # one file per split folder, any one:
            if (f := next(folder.glob(fill_split(layout.images, split)), None))
        ]  # a big folder is not listed
        problems = [(f, check_pair_file(f)) for f in firsts]  # judged at the default tolerance it was tuned at
        if firsts and not any(problem for _, problem in problems):
            return DataRoots(folder, folder, layout=layout)
        bad = next(((f, problem) for f, problem in problems if problem), None)
        if named and bad is not None:
            raise DataError(
                f"{bad[0]} is not an image pair: {bad[1]}. Expected each file of {folder}/<split>/ to hold a "
                f"photo on its left half and its Cityscapes colour mask on its right half.\n{layout.tree()}\n"
                "Fix: point --data-root at the pair files as shipped, or drop --layout image-pairs for other data."
            )
    return None


def _layout_roots(layout: Layout, dirs: dict[str, list[Path]], need_images: bool) -> DataRoots | None:
    """The roots of `layout` among the folders found, or None."""
    if layout.one_root:
        return _one_root(layout, dirs, need_images)
    images = _pattern_roots(layout, layout.images, dirs)
    labels = next((r for r in (_pattern_roots(layout, p, dirs) for p in layout.labels) if r), [])
    if not labels or (need_images and not images):
        return None
    if not images:
        return DataRoots(labels[0], labels[0], layout=layout)
    # Prefer labels next to the images (one dataset); else the first ones (two datasets).
    same = [r for r in images if r in labels]
    if same:
        return DataRoots(same[0], same[0], layout=layout)
    if len(images) > 1 or len(labels) > 1:
        logger.info("several data directories found; using %s and %s", images[0], labels[0])
    return DataRoots(images[0], labels[0], layout=layout)


def _pattern_roots(layout: Layout, pattern: str, dirs: dict[str, list[Path]]) -> list[Path]:
    """Roots from which `pattern` starts, among the folders found (with a marker inside, if any)."""
    markers = layout.markers
    found = {
        d.parents[depth]
        for name, depth in _pattern_anchors(layout, pattern)
        for d in dirs.get(name, [])
        if not markers or any((d / m).is_dir() for m in markers)
    }
    return sorted(found)


def _one_root(layout: Layout, dirs: dict[str, list[Path]], need_images: bool) -> DataRoots | None:
    """The folder with `layout`'s label files in one of its own splits and, when needed, their images beside them.

    Raises:
        DataError: a folder has the layout's labels but no split with images too (an incomplete copy).
    """
    candidates = sorted({r for p in layout.labels for r in _pattern_roots(layout, p, dirs)})
    looks_like = [r for r in candidates if layout.split_lists or _label_splits(r, layout)]
    complete = [r for r in looks_like if _label_splits(r, layout) & (_image_splits(r, layout, need_images))]
    if len(complete) > 1:
        logger.info("several %s folders found; using %s", layout.title, complete[0])
    if complete:
        return DataRoots(complete[0], complete[0], layout=layout)
    if looks_like:
        raise _IncompleteCopy(_incomplete_message(layout, looks_like[0]))
    return None


def _label_splits(root: Path, layout: Layout) -> set[str]:
    return set().union(*(splits_below(root, layout, p) for p in layout.labels))


def _image_splits(root: Path, layout: Layout, need_images: bool) -> set[str]:
    """The splits with images below `root`; every label split when images are not needed."""
    return splits_below(root, layout, layout.images) if need_images else _label_splits(root, layout)


def _incomplete_message(layout: Layout, root: Path) -> str:
    """A folder that has a layout's labels and not the rest: the tree expected and what is there."""
    labels, images = sorted(_label_splits(root, layout)), sorted(splits_below(root, layout, layout.images))
    if layout.split_lists:
        lists = layout.split_lists.replace("{split}", "<split>")
        missing = f"no split list {lists}" if not labels else f"no image folder {layout.images.rsplit('/', 1)[0]}/"
    else:
        missing = f"labels for splits {labels}, images for {images or 'none'}: no split has both"
    entries = sorted(f"{p.name}/" if p.is_dir() else p.name for p in root.iterdir())
    shown = ", ".join(entries[:12]) + (f", ... ({len(entries)} in all)" if len(entries) > 12 else "")
    source = f" (as extracted from {layout.shipped})" if layout.shipped else ""
    return (
        f"{root} looks like {layout.title} but is incomplete: {missing}.\n{layout.tree()}\n"
        f"found in {root}: {shown or 'nothing'}\n"
        f"Fix: add the missing files{source}, or point --data-root at a complete copy."
    )


def _glob_roots(root: Path, need_images: bool, layout: Layout) -> DataRoots | None:
    """`root` itself when the glob patterns have split folders below it, else None."""
    labels = any(split_names(root, p) for p in layout.labels)
    if not labels or (need_images and not split_names(root, layout.images)):
        return None
    return DataRoots(root, root, layout=layout)


def _find_named_dirs(
    root: Path, names: set[str], through: frozenset[str] | set[str] = frozenset()
) -> dict[str, list[Path]]:
    """Breadth-first search for directories whose names match `names` (fnmatch patterns), bounded
    in depth and count.

    A found directory is not searched further, unless it only wraps a directory of the same
    name (`leftImg8bit/leftImg8bit/train`, a common result of unzipping on Kaggle) or only names in
    `through` matched it (generic names such as labels/, which other data may sit in).
    """
    found: dict[str, list[Path]] = {name: [] for name in names}
    queue, visited = deque([(root, 0)]), 0
    while queue and visited < _MAX_DIRS:
        path, depth = queue.popleft()
        visited += 1
        matched = [name for name in names if fnmatchcase(path.name, name)]
        if matched and not (path / path.name).is_dir():
            for name in matched:
                found[name].append(path)
            if not set(matched) <= through:
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


def _not_found_message(searched: list[Path], need_images: bool, source: str, layouts: tuple[Layout, ...]) -> str:
    where = "\n".join(f"  {p}{'' if p.is_dir() else ' (does not exist)'}" for p in searched)
    if searches_every_layout(layouts):
        return _auto_not_found(where, need_images, source)
    if layouts[0].name == "glob":
        return _glob_not_found(searched[0], layouts[0], source)
    layout = layouts[0]
    folders = [layout.images, layout.labels[0]] if need_images else [layout.labels[0]]
    wanted = (
        " or ".join(f"{name}/" for name in layout.root_names) + " (or split folders of pair files)"
        if layout.root_names
        else " and ".join(anchor(p)[0] + "/" for p in folders)
    )
    return (
        f"no {layout.title} data under the {source} given: expected {wanted} within {_SEARCH_DEPTH} levels, searched:\n"
        f"{where}\n{layout.tree()}\nFix: point {source} at the directory those folders are in"
        + (f" (as extracted from {layout.shipped})." if layout.shipped else ".")
    )


def _auto_not_found(where: str, need_images: bool, source: str) -> str:
    wanted = "leftImg8bit/ and gtFine/" if need_images else "gtFine/"
    others = "\n".join(f"  {lay.title} (--layout {lay.name}):\n{_indent(lay.tree())}" for lay in AUTO[1:])
    return (
        f"no usable data under the {source} given: expected {wanted} (Cityscapes) or another layout "
        f"segkit knows within {_SEARCH_DEPTH} levels, searched:\n{where}\n{EXPECTED_LAYOUT}\n"
        f"Other layouts found without flags:\n{others}\n"
        f"Fix: point {source} at the directory that contains leftImg8bit/ and gtFine/ "
        "(download both zips from https://www.cityscapes-dataset.com/downloads/), or at one of the "
        "layouts above; describe any other with --image-glob and --label-glob."
    )


def _glob_not_found(root: Path, layout: Layout, source: str) -> str:
    """Which pattern has no split folder below the root (glob layouts are not searched for)."""
    found = [
        f"  {name} {p!r}: splits {sorted(split_names(root, p)) or 'none'} (folders "
        f"{_split_path(root, layout, p, '<split>')})"
        for name, p in (("image_glob", layout.images), ("label_glob", layout.labels[0]))
    ]
    return (
        f"no data for the glob patterns below the {source} given ({root}"
        f"{'' if root.is_dir() else ', which does not exist'}):\n"
        + "\n".join(found)
        + f"\nFix: write both patterns relative to {source}, with {{split}} where the split's folder is."
    )


def _ambiguous_message(root: Path, found: list[DataRoots]) -> str:
    listed = "\n".join(f"  --layout {r.layout.name}: {r.describe()}" for r in found)
    return (
        f"several data layouts found below {root}:\n{listed}\n"
        "Fix: name the one to use with --layout (layout= in notebooks), or point --data-root at its folder."
    )


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


# --- pairing ------------------------------------------------------------------------------


def _label_pattern(roots: DataRoots, split: str) -> str:
    """The first label pattern with a folder for `split` (gtFine, else gtCoarse), or a DataError."""
    for i, pattern in enumerate(roots.layout.labels):
        if layout_split_dirs(roots.label_root, roots.layout, pattern, split):
            if i:
                logger.info("split %s has no %s folder: using %s", split, roots.layout.labels[0].split("/")[0], pattern)
            return pattern
    raise DataError(_missing_split_message(roots, roots.label_root, roots.layout.labels[0], split))


def _missing_split_message(roots: DataRoots, base: Path, pattern: str, split: str) -> str:
    """Split not found: the folder expected, the splits that exist and the fix."""
    existing = sorted(splits_below(base, roots.layout, pattern))
    return (
        f"split {split!r} not found: expected {_split_place(base, roots.layout, pattern, split)}; "
        f"found splits {existing or 'none'} in {base}. Fix: use one of {existing or list_splits(roots)} "
        f"(--split; for training --train-split / --val-split) or add the missing split.\n{roots.layout.tree()}"
    )


def _split_place(base: Path, layout: Layout, pattern: str, split: str) -> str:
    """What a split needs: the directory /data/gtFine/test, or a list file and the directory of its files."""
    if layout.split_lists:
        return f"the list file {list_file(base, layout, split)} and the directory {base / pattern.rsplit('/', 1)[0]}"
    return f"the directory {_split_path(base, layout, pattern, split)}"


def _split_path(base: Path, layout: Layout, pattern: str, split: str) -> str:
    """Where a split's folders are, e.g. /data/gtFine/test or /data/rgb_anon/<condition>/test."""
    shown = layout.show(fill_split(pattern, split)).split("/")
    return str(base.joinpath(*shown[: prefix_depth(pattern)]))


def _collect(root: Path, pattern: str, split: str, layout: Layout, labels: bool) -> dict[str, _File]:
    """{stem: file} of a split; a stem found twice is an error (it names predictions and pairs)."""
    if layout.split_lists:
        return _collect_listed(root, pattern, split, layout, labels)
    files: dict[str, _File] = {}
    patterns = with_format(pattern, layout.formats, layout.label_format) if labels else [("", pattern)]
    for fmt, filled in patterns:
        seen: dict[str, Path] = {}
        for path in sorted(root.glob(fill_split(filled, split))):
            if not path.is_file():
                continue
            stem = stem_of(path, filled)
            if stem in seen:
                raise DataError(_twice_message(stem, seen[stem], path, split))
            seen[stem] = path
            group = group_of(path.relative_to(root), filled)
            files[stem] = _File(
                path, fmt or (labels and label_format_of(path)) or "", group
            )  # preferred formats come last
    return files


def _collect_listed(root: Path, pattern: str, split: str, layout: Layout, labels: bool) -> dict[str, _File]:
    """{stem: file} of the frames a split's list file names: each must have its file, once."""
    listing = list_file(root, layout, split)
    stems = listed_stems(listing)
    twice = _first_repeat(stems)
    if twice is not None:
        raise DataError(_twice_message(twice, listing, listing, split))
    files = {stem: root / file_of(pattern, stem) for stem in stems}
    missing = [stem for stem, path in files.items() if not path.is_file()]
    if missing or not stems:
        raise DataError(_unlisted_message(root, layout, pattern, listing, missing, len(stems), labels))
    return {
        stem: _File(path, (layout.label_format or label_format_of(path)) if labels else "", "")
        for stem, path in files.items()
    }


def _first_repeat(stems: list[str]) -> str | None:
    """The first stem that a list names a second time, or None (one pass: lists run to 25,000 frames)."""
    seen: set[str] = set()
    for stem in stems:
        if stem in seen:
            return stem
        seen.add(stem)
    return None


def _unlisted_message(
    root: Path, layout: Layout, pattern: str, listing: Path, missing: list[str], listed: int, labels: bool
) -> str:
    """A split list that names frames without their file (or none): how many, the first few, the file expected."""
    if not listed:
        return f"the split list {listing} names no frames: expected one stem per line.\n{layout.tree()}"
    kind = "label" if labels else "image"
    shown = ", ".join(missing[:_SHOW]) + (", ..." if len(missing) > _SHOW else "")
    source = f" (as extracted from {layout.shipped})" if layout.shipped else ""
    return (
        f"{len(missing)} of {listed} frames listed in {listing} have no {kind} file: expected "
        f"{root / file_of(pattern, '<stem>')}, missing for {shown}.\n{layout.tree()}\n"
        f"Fix: add the missing files{source}, or remove their lines from {listing.name}."
    )


def _twice_message(stem: str, first: Path, second: Path, split: str) -> str:
    return (
        f"frame {stem!r} is in split {split!r} twice: {first} and {second}. A frame's name (the stem, what "
        "the pattern's * matches) pairs an image with its label file and names its prediction, so it "
        "must be unique in a split. Fix: rename one, or narrow the pattern."
    )


def _check_pairing(
    images: dict[str, _File], labels: dict[str, _File], roots: DataRoots, pattern: str, split: str
) -> None:
    """Raise a DataError naming the images without labels, or the labels without images."""
    unlabelled = sorted(set(images) - set(labels))
    if unlabelled:
        shown = "\n".join(f"  {images[k].path}" for k in unlabelled[:_SHOW])
        raise DataError(
            f"{len(unlabelled)} of {len(images)} images have no label file: expected "
            f"{_expected_names(roots.layout, pattern)} in {_where(roots.label_root, roots.layout, pattern, split)}, "
            f"e.g. for\n{shown}\n{_label_fix(roots, pattern, split, unlabelled[0])}"
        )
    orphans = sorted(set(labels) - set(images))
    if orphans:
        shown = "\n".join(f"  {labels[k].path}" for k in orphans[:_SHOW])
        image_pattern = roots.layout.images
        raise DataError(
            f"{len(orphans)} label files have no image: expected {_expected_names(roots.layout, image_pattern)} in "
            f"{_where(roots.image_root, roots.layout, image_pattern, split)} for\n{shown}\n"
            "Fix: add the matching images of this split, or remove the extra label files."
        )


def _expected_names(layout: Layout, pattern: str) -> str:
    """The file names a pattern expects, e.g. <stem>_gtFine_labelTrainIds.png or <stem>_gtFine_labelIds.png."""
    names = [f"<stem>{p.rsplit('/', 1)[-1][1:]}" for _, p in reversed(with_format(pattern, layout.formats, ""))]
    return " or ".join(names)


def _where(root: Path, layout: Layout, pattern: str, split: str) -> str:
    """The folder a split's files of `pattern` go in, e.g. /data/gtFine/train/<city>/."""
    return f"{root}/{layout.show(fill_split(pattern, split)).rsplit('/', 1)[0]}/"


def _label_fix(roots: DataRoots, pattern: str, split: str, stem: str) -> str:
    """The fix for a missing label file, computed from what sits in its place."""
    found = sorted(
        p
        for d in layout_split_dirs(roots.label_root, roots.layout, pattern, split)
        for p in d.rglob(f"{glob.escape(stem)}*")
        if p.is_file()
    )
    names = ", ".join(p.name for p in found[:_SHOW])
    if any("color" in p.name.lower() for p in found):
        return (
            f"Found {names} instead: colour masks are visualisations, not labels. "
            f"Fix: use the label id files ({_expected_names(roots.layout, pattern)})."
        )
    if any(p.name.endswith("_polygons.json") for p in found):
        return (
            f"Found {names} only. "
            "Fix: create the label images with cityscapesscripts: "
            f"CITYSCAPES_DATASET={roots.label_root} csCreateTrainIdLabelImgs"
        )
    instead = f"Found {names} instead, which the pattern {pattern} does not match. " if found else ""
    source = f" ({roots.layout.shipped})" if roots.layout.shipped else ""
    return f"{instead}Fix: add the label files of this split{source}, or remove the unlabelled images."


def _no_files_message(root: Path, pattern: str, split: str, layout: Layout) -> str:
    """What was searched, what is there instead, and the expected layout."""
    dirs = layout_split_dirs(root, layout, pattern, split)
    present = sorted(p.name for d in dirs for p in d.rglob("*") if p.is_file())[:_SHOW]
    instead = f"found instead: {', '.join(present)}" if present else "the directory holds no files"
    tail = "/".join(layout.show(pattern).split("/")[prefix_depth(pattern) :])
    file_part = fill_split(pattern, split).rsplit("/", 1)[-1]
    if "/" in tail and any(any(d.glob(file_part)) for d in dirs):  # the right files, in the wrong folders
        fix = f"move the files into {tail.rsplit('/', 1)[0]}/ subfolders of {dirs[0]}."
    elif layout.name == "glob":
        fix = "make --image-glob / --label-glob match these files (folders, name ending, extension)."
    else:
        fix = (
            "point data_root at the root of the extracted data set, or describe it with --image-glob and --label-glob."
        )
    return (
        f"no files matching {tail} in {_split_path(root, layout, pattern, split)} ({instead}).\n"
        f"{layout.tree()}\nFix: {fix}"
    )
