"""The data layouts segkit reads, described as data: where images and label files sit.

A layout is a glob pattern (pathlib syntax: `*`, `?`, `[..]`, `**` = any depth) for the image
files below the image root and one for the label files below the label root, with two fields:

    {split}    a folder, or part of a folder's name, that names the split (train, val, training)
    {format}   in label patterns: labelIds or labelTrainIds, as the file's name says

The file-name part of a pattern is `*` and a fixed ending (`*_leftImg8bit.png`, `*.png`): what
`*` matches is the frame's *stem*. An image and a label file pair when their stems are equal in
the same split, so a stem is unique within a split; predictions are named after it
(`segkit predict` writes `<stem>_<format>.png`). Folders matched by a bare `*` or `**` are the
frame's group (a Cityscapes city, an ACDC condition/sequence), shown in tables.

An image pair (`image-pairs`, Kaggle's "Cityscapes Image Pairs") is one file that is both: the
photo on its left half, the Cityscapes colour mask on its right half (`segkit.data.pairs`). Its
image and label patterns are the same and its label format is `pairColor`.
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

from segkit.config import DataConfig
from segkit.errors import DataError

LABEL_FORMATS = ("labelTrainIds", "labelIds")  # what {format} stands for, preferred first (no lookup table)
PAIR_FORMAT = "pairColor"  # label format of an image pair: the colour mask in the file's right half
DEFAULT_COLOR_TOLERANCE = (
    DataConfig.color_tolerance
)  # how far a pair's mask pixel may be from a palette colour (segkit.data.pairs)
SKIPPED_DIRS = ("segkit_cache",)  # folders never taken for a split: segkit's own cache sits in the image root
_WILD = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class Layout:
    """Where one kind of data set keeps its files (patterns as in the module docstring)."""

    name: str  # what --layout calls it
    title: str  # how messages and tables name it
    images: str  # image files below the image root
    labels: tuple[str, ...]  # label files below the label root; per split, the first with a folder for it
    formats: tuple[str, ...] = LABEL_FORMATS  # what {format} stands for, preferred first
    label_format: str = ""  # format of label files whose pattern has no {format}; "" = from the file's name
    markers: tuple[str, ...] = ()  # auto-detection: one of these folders must sit inside the folder found
    folders: tuple[str, ...] = ()  # names of the bare-`*` folders, for messages: ("city",) -> <city>/
    shipped: str = ""  # what users download, named in messages
    expected: str = ""  # the expected tree for messages; "" = drawn from the patterns
    root_names: tuple[str, ...] = ()  # patterns starting at the split: names of the folder they start from
    color_tolerance: float = DEFAULT_COLOR_TOLERANCE  # image pairs: decoding tolerance of the colour mask

    def tree(self) -> str:
        """The expected files, one line per pattern, for error messages."""
        if self.expected:
            return self.expected
        lines = [f"  <root>/{self.show(self.images)}"] + [f"  <root>/{self.show(p)}" for p in self.labels]
        source = f" (as in {self.shipped})" if self.shipped else ""
        return f"expected layout{source}:\n" + "\n".join(lines)

    def show(self, pattern: str) -> str:
        """`pattern` with its bare-`*` folders named, e.g. leftImg8bit/{split}/<city>/*_leftImg8bit.png."""
        names = iter(self.folders)
        parts = pattern.split("/")
        return "/".join([f"<{next(names, 'folder')}>" if p == "*" else p for p in parts[:-1]] + parts[-1:])


CITYSCAPES = Layout(
    "cityscapes",
    "Cityscapes",
    "leftImg8bit/{split}/*/*_leftImg8bit.png",
    ("gtFine/{split}/*/*_gtFine_{format}.png", "gtCoarse*/{split}/*/*_gtCoarse_{format}.png"),
    folders=("city",),
    shipped="leftImg8bit_trainvaltest.zip + gtFine_trainvaltest.zip",
    expected=(
        "expected layout (as in the official leftImg8bit_trainvaltest.zip + gtFine_trainvaltest.zip):\n"
        "  <root>/leftImg8bit/{train,val}/<city>/<city>_<seq>_<frame>_leftImg8bit.png\n"
        "  <root>/gtFine/{train,val}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png"
        " (or _gtFine_labelTrainIds.png)\n"
        "  (leftImg8bit/ and gtFine/ may sit under two different roots, e.g. two Kaggle datasets;\n"
        "  a split without gtFine/ uses gtCoarse*/<split>/<city>/*_gtCoarse_labelIds.png)"
    ),
)
GTCOARSE = Layout(
    "gtcoarse",
    "Cityscapes images, coarse labels",
    CITYSCAPES.images,
    ("gtCoarse*/{split}/*/*_gtCoarse_{format}.png",),
    folders=("city",),
    shipped="leftImg8bit + gtCoarse.zip, or Nighttime Driving's gtCoarse_daytime_trainvaltest/",
)
KITTI = Layout(
    "kitti",
    "KITTI semantics",
    "{split}/image_2/*.png",
    ("{split}/semantic/*.png",),
    label_format="labelIds",
    shipped="KITTI data_semantics.zip: training/ (with labels) and testing/ (images only)",
)
ACDC = Layout(
    "acdc",
    "ACDC",
    "rgb_anon/*/{split}/*/*_rgb_anon.png",
    ("gt/*/{split}/*/*_gt_{format}.png",),
    markers=("fog", "night", "rain", "snow"),
    folders=("condition", "sequence"),
    shipped="ACDC rgb_anon_trainvaltest.zip + gt_trainval.zip",
)
DARK_ZURICH = Layout(
    "dark-zurich",
    "Dark Zurich",
    "rgb_anon/{split}/*/*/*_rgb_anon.png",
    ("gt/{split}/*/*/*_gt_{format}.png",),
    markers=("train", "val", "test"),
    folders=("condition", "sequence"),
    shipped="Dark_Zurich_val_anon.zip (rgb_anon/val/night/<sequence>/, gt/val/night/<sequence>/)",
)
IMAGE_PAIRS = Layout(
    "image-pairs",
    "Cityscapes Image Pairs (photo | colour mask in one file)",
    "{split}/*.jpg",
    ("{split}/*.jpg",),
    label_format=PAIR_FORMAT,
    root_names=("cityscapes_data",),
    shipped="Kaggle's Cityscapes Image Pairs (pix2pix's cityscapes set)",
    expected=(
        "expected layout (as in Kaggle's Cityscapes Image Pairs, pix2pix's cityscapes set):\n"
        "  <root>/cityscapes_data/{train,val}/<n>.jpg  (also nested: cityscapes_data/cityscapes_data/...),\n"
        "  or <root>/{train,val}/<n>.jpg in a folder of any name "
        "(found by the files' content, or --layout image-pairs);\n"
        "  each file the photo on its left half and the Cityscapes colour mask on its right half\n"
        "  (PNG pairs or other folders: --image-glob and --label-glob, the same pattern, --label-format pairColor)"
    ),
)
BUILT_IN = {layout.name: layout for layout in (CITYSCAPES, GTCOARSE, KITTI, ACDC, DARK_ZURICH, IMAGE_PAIRS)}
# Tried when no layout is named; gtcoarse only by name (cityscapes already uses gtCoarse where gtFine is missing).
AUTO = (CITYSCAPES, KITTI, ACDC, DARK_ZURICH, IMAGE_PAIRS)
# Image name endings `segkit predict` drops to name a prediction after the frame's stem.
IMAGE_ENDINGS = tuple(dict.fromkeys(e for lay in AUTO if (e := PurePosixPath(lay.images).stem[1:])))
# Label file endings of the built-in layouts, to read a bare label path's stem and format (scoring).
LABEL_ENDINGS = tuple(
    dict.fromkeys(
        p.rsplit("/", 1)[-1][1:].replace("{format}", f)
        for lay in BUILT_IN.values()
        for p in lay.labels
        if "{format}" in p
        for f in LABEL_FORMATS
    )
)


def glob_layout(image_glob: str, label_glob: str) -> Layout:
    """The layout of `--image-glob` / `--label-glob` (checked by `config.check_data_fields`)."""
    return Layout("glob", "glob patterns", image_glob, (label_glob,), folders=())


def layouts_for(
    layout: str = "auto",
    image_glob: str = "",
    label_glob: str = "",
    label_format: str = "auto",
    color_tolerance: float = DEFAULT_COLOR_TOLERANCE,
) -> tuple[Layout, ...]:
    """The layouts discovery tries for these config fields: one when named or globbed, else AUTO.

    Args:
        layout: auto or a name of BUILT_IN (or glob, with the two patterns).
        image_glob: image files below the data root ("" = none).
        label_glob: label files below the data root ("" = none).
        label_format: auto (from the file names) or the format every label file holds (image pairs
            always hold pairColor).
        color_tolerance: image pairs: how far a mask pixel may be from a palette colour.
    """
    if image_glob or layout == "glob":
        chosen: tuple[Layout, ...] = (glob_layout(image_glob, label_glob),)
    else:
        chosen = AUTO if layout == "auto" else (BUILT_IN[layout],)
    chosen = tuple(
        lay
        if lay.label_format == PAIR_FORMAT or label_format == "auto"
        else replace(lay, formats=(label_format,), label_format=label_format)
        for lay in chosen
    )
    if float(color_tolerance) == DEFAULT_COLOR_TOLERANCE:
        return chosen
    return tuple(replace(lay, color_tolerance=float(color_tolerance)) for lay in chosen)


def searches_every_layout(layouts: tuple[Layout, ...]) -> bool:
    """True when no layout was named: discovery tries every built-in one (a --label-format may
    still apply to all of them), and may fall back to the synthetic set."""
    return tuple(lay.name for lay in layouts) == tuple(lay.name for lay in AUTO)


def layouts_of(cfg: Any) -> tuple[Layout, ...]:
    """`layouts_for` of a config's layout, image_glob, label_glob, label_format and color_tolerance fields."""
    return layouts_for(cfg.layout, cfg.image_glob, cfg.label_glob, cfg.label_format, cfg.color_tolerance)


def label_format_of(path: str | Path) -> str:
    """The label format a file's name announces: labelTrainIds (…trainIds…) or labelIds (…labelIds…).

    Raises:
        DataError: the name says neither, with the flag that says it instead.
    """
    name = Path(path).name.lower()
    if "trainid" in name:
        return "labelTrainIds"
    if "labelid" in name:
        return "labelIds"
    raise DataError(
        f"cannot tell from its name whether {path} holds labelIds or trainIds: expected a name such as "
        "<stem>_gtFine_labelIds.png or <stem>_labelTrainIds.png. Fix: pass --label-format labelIds "
        "(Cityscapes ids 0..33) or --label-format labelTrainIds (0..18, 255 = ignore)."
    )


# ----------------------------------------------------------------------------- reading patterns


def ending(pattern: str) -> str:
    """The fixed end of the file-name part (`*_leftImg8bit.png` -> `_leftImg8bit.png`)."""
    return pattern.rsplit("/", 1)[-1][1:]


def stem_of(path: Path, pattern: str) -> str:
    """What the file-name part's `*` matched: the frame's stem."""
    return path.name[: len(path.name) - len(ending(pattern))]


def with_format(pattern: str, formats: tuple[str, ...], label_format: str) -> list[tuple[str, str]]:
    """[(label_format, pattern)] with {format} filled, least preferred first ("" = from the name)."""
    if "{format}" not in pattern:
        return [(label_format, pattern)]
    return [(fmt, pattern.replace("{format}", fmt)) for fmt in reversed(formats)]


def anchor(pattern: str) -> tuple[str, int]:
    """The first folder name of a pattern that is not the split (may hold wildcards) and its depth."""
    parts = pattern.split("/")[:-1]
    depth = next((i for i, p in enumerate(parts) if "{split}" not in p), 0)
    return (parts[depth] if parts else ""), depth


def group_of(relative: Path, pattern: str) -> str:
    """The folders a bare `*` or `**` matched in `relative` (a file's path below its root), joined by /."""
    dirs, pats = list(relative.parts[:-1]), pattern.split("/")[:-1]
    if "**" in pats:  # `**` takes what the parts before and after it leave
        k, after = pats.index("**"), len(pats) - pats.index("**") - 1
        middle = "/".join(dirs[k : len(dirs) - after])
        pairs = [*zip(pats[:k], dirs[:k]), ("**", middle), *zip(pats[k + 1 :], dirs[len(dirs) - after :])]
    else:
        pairs = list(zip(pats, dirs))
    return "/".join(d for p, d in pairs if p in ("*", "**") and d)


def _parts(pattern: str) -> tuple[list[str], str, list[str]]:
    """(folders before the split, the split's part, folders after it)."""
    parts = pattern.split("/")
    k = next(i for i, p in enumerate(parts) if "{split}" in p)
    return parts[:k], parts[k], parts[k + 1 : -1]


def _split_prefix(pattern: str, split: str) -> str:
    """The folders of a pattern up to the split and the literal folders right after it."""
    before, part, after = _parts(pattern)
    literal = []
    for folder in after:
        if _WILD.search(folder):
            break
        literal.append(folder)
    return "/".join([*before, part.replace("{split}", split), *literal])


def prefix_depth(pattern: str) -> int:
    """How many folders `split_dirs` covers: the split's files sit below in the rest of the pattern."""
    return len(_split_prefix(pattern, "x").split("/"))


def split_dirs(root: Path, pattern: str, split: str) -> list[Path]:
    """The folders that hold `split`'s files of `pattern` below `root` (none: the split is missing)."""
    return sorted(p for p in root.glob(_split_prefix(pattern, glob.escape(split))) if p.is_dir())


def split_names(root: Path, pattern: str) -> set[str]:
    """Every split `pattern` has a folder for below `root`."""
    before, part, _ = _parts(pattern)
    regex = re.compile(re.escape(part).replace(re.escape("{split}"), "(.+)"))
    names = set()
    for folder in root.glob(_split_prefix(pattern, "*")):
        name = folder.relative_to(root).parts[len(before)]
        match = regex.fullmatch(name)
        if folder.is_dir() and match and not name.startswith(".") and name not in SKIPPED_DIRS:
            names.add(match[1])
    return names


def fill_split(pattern: str, split: str) -> str:
    """The pattern of one split's files."""
    return pattern.replace("{split}", glob.escape(split))
