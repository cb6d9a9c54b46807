"""Label spaces: which classes a data set's label files hold, and how to read, write and map them.

A `LabelSpace` is data: the ordered classes (class index 0..N-1 is the training target), the file
values (or mask colours) that stand for each, the colour each is drawn in, and the file values that
are ignored. Index 255 is the ignore index of every space, so a space holds at most 255 classes.
Built-in spaces are one entry each in `BUILTIN_SPACES`; `read_space_file` reads segkit's own
YAML/JSON format, Kaggle's `class_dict.csv` and Mapillary's `config_v*.json`; `resolve_space` says
which space a run uses and where it came from. A `ClassMap` maps one space onto another by class name.

Cityscapes is one space; its official labelId -> trainId table below mirrors
`cityscapesscripts.helpers.labels` (a test proves it), so segkit needs no cityscapesscripts at run time.
Nothing outside this module knows how many classes a space has.
"""

from __future__ import annotations

import colorsys
import csv
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from segkit.errors import ConfigError, DataError, did_you_mean

IGNORE_INDEX = 255  # class index of every pixel that is not evaluated, in every space
MAX_CLASSES = IGNORE_INDEX  # class indices 0..254; 255 is the ignore index
MAX_FILE_VALUE = 65535  # label files are 8- or 16-bit PNGs
Color = tuple[int, int, int]


class Label(NamedTuple):
    """One row of the official table (field names as in cityscapesscripts)."""

    name: str
    id: int  # labelId: the value stored in *_gtFine_labelIds.png
    trainId: int  # 0..18 for evaluated classes, 255 (or -1) for the rest
    category: str
    categoryId: int
    hasInstances: bool
    ignoreInEval: bool
    color: tuple[int, int, int]


# fmt: off
LABELS: tuple[Label, ...] = (
    Label("unlabeled",             0, 255, "void",         0, False, True,  (0, 0, 0)),
    Label("ego vehicle",           1, 255, "void",         0, False, True,  (0, 0, 0)),
    Label("rectification border",  2, 255, "void",         0, False, True,  (0, 0, 0)),
    Label("out of roi",            3, 255, "void",         0, False, True,  (0, 0, 0)),
    Label("static",                4, 255, "void",         0, False, True,  (0, 0, 0)),
    Label("dynamic",               5, 255, "void",         0, False, True,  (111, 74, 0)),
    Label("ground",                6, 255, "void",         0, False, True,  (81, 0, 81)),
    Label("road",                  7,   0, "flat",         1, False, False, (128, 64, 128)),
    Label("sidewalk",              8,   1, "flat",         1, False, False, (244, 35, 232)),
    Label("parking",               9, 255, "flat",         1, False, True,  (250, 170, 160)),
    Label("rail track",           10, 255, "flat",         1, False, True,  (230, 150, 140)),
    Label("building",             11,   2, "construction", 2, False, False, (70, 70, 70)),
    Label("wall",                 12,   3, "construction", 2, False, False, (102, 102, 156)),
    Label("fence",                13,   4, "construction", 2, False, False, (190, 153, 153)),
    Label("guard rail",           14, 255, "construction", 2, False, True,  (180, 165, 180)),
    Label("bridge",               15, 255, "construction", 2, False, True,  (150, 100, 100)),
    Label("tunnel",               16, 255, "construction", 2, False, True,  (150, 120, 90)),
    Label("pole",                 17,   5, "object",       3, False, False, (153, 153, 153)),
    Label("polegroup",            18, 255, "object",       3, False, True,  (153, 153, 153)),
    Label("traffic light",        19,   6, "object",       3, False, False, (250, 170, 30)),
    Label("traffic sign",         20,   7, "object",       3, False, False, (220, 220, 0)),
    Label("vegetation",           21,   8, "nature",       4, False, False, (107, 142, 35)),
    Label("terrain",              22,   9, "nature",       4, False, False, (152, 251, 152)),
    Label("sky",                  23,  10, "sky",          5, False, False, (70, 130, 180)),
    Label("person",               24,  11, "human",        6, True,  False, (220, 20, 60)),
    Label("rider",                25,  12, "human",        6, True,  False, (255, 0, 0)),
    Label("car",                  26,  13, "vehicle",      7, True,  False, (0, 0, 142)),
    Label("truck",                27,  14, "vehicle",      7, True,  False, (0, 0, 70)),
    Label("bus",                  28,  15, "vehicle",      7, True,  False, (0, 60, 100)),
    Label("caravan",              29, 255, "vehicle",      7, True,  True,  (0, 0, 90)),
    Label("trailer",              30, 255, "vehicle",      7, True,  True,  (0, 0, 110)),
    Label("train",                31,  16, "vehicle",      7, True,  False, (0, 80, 100)),
    Label("motorcycle",           32,  17, "vehicle",      7, True,  False, (0, 0, 230)),
    Label("bicycle",              33,  18, "vehicle",      7, True,  False, (119, 11, 32)),
    Label("license plate",        -1,  -1, "vehicle",      7, False, True,  (0, 0, 142)),
)
# fmt: on


@dataclass(frozen=True)
class ClassInfo:
    """One class of a label space."""

    name: str
    values: tuple[int, ...]  # the values that stand for it in label files (one or more)
    color: Color  # the colour it is drawn in; in a colour-coded space also its colour in the mask files


@dataclass(frozen=True)
class LabelSpace:
    """An ordered set of classes and how label files write them; equal when their content is equal.

    Class index 0..N-1 (the position in `classes`) is the training target; `IGNORE_INDEX` (255) marks
    pixels that are not evaluated. `to_index` reads a label file's values, `colors_to_index` a colour
    mask, `to_values` / `to_color` write them back.
    """

    name: str
    classes: tuple[ClassInfo, ...]
    ignore: tuple[int, ...] = ()  # file values never evaluated; the first is written for ignored pixels
    ignore_colors: tuple[Color, ...] = ()  # mask colours never evaluated; the first draws ignored pixels
    color_coded: bool = False  # label files are RGB masks in the classes' colours
    source: str = field(default="built-in", compare=False)  # where it came from: "built-in" or a path

    def __post_init__(self) -> None:
        _check_space(self)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.classes)

    @cached_property
    def palette(self) -> np.ndarray:
        """(N, 3) uint8: the colour each class is drawn in."""
        return np.array([c.color for c in self.classes], dtype=np.uint8).reshape(-1, 3)

    @property
    def ignore_color(self) -> Color:
        """The colour ignored pixels are drawn in."""
        return self.ignore_colors[0] if self.ignore_colors else (0, 0, 0)

    @property
    def tag(self) -> str:
        """How a metrics protocol names it: 'cityscapes-19', 'camvid-11'."""
        return f"{self.name}-{self.num_classes}"

    def describe(self) -> str:
        """'camvid (11 classes)'."""
        return f"{self.name} ({self.num_classes} classes)"

    def index_of(self, name: str) -> int:
        """The class index of `name`; an unknown name raises a ConfigError with the closest names."""
        if name not in self.names:
            raise ConfigError(f"the {self.name} space has no class {name!r}{did_you_mean(name, self.names)}")
        return self.names.index(name)

    # -- file values <-> class index -------------------------------------------------------------

    @cached_property
    def _value_lut(self) -> np.ndarray:
        lut = np.full(MAX_FILE_VALUE + 1, -1, dtype=np.int16)  # -1: a value outside the space
        for value in self.ignore:
            lut[value] = IGNORE_INDEX
        if not self.ignore:  # 255 is what `to_values` writes for an ignored pixel: it must read back as one
            lut[IGNORE_INDEX] = IGNORE_INDEX
        for index, c in enumerate(self.classes):
            lut[list(c.values)] = index
        return lut

    def to_index(self, label: np.ndarray, where: str = "") -> np.ndarray:
        """File values -> class index (uint8; 255 = ignored). Values outside the space raise a DataError.

        Args:
            label: (H, W) integer array as read from a label file (8- or 16-bit).
            where: the file it came from, for the message.

        Returns:
            (H, W) uint8 class indices 0..N-1 and 255.
        """
        label = np.asarray(label)
        if label.dtype.kind not in "ui":
            raise DataError(f"{where or 'a label array'} holds {label.dtype} values; label files hold integers")
        if label.size and (int(label.min()) < 0 or int(label.max()) > MAX_FILE_VALUE):
            raise DataError(
                f"{where or 'a label array'} holds values {int(label.min())}..{int(label.max())}: label files "
                f"hold 0..{MAX_FILE_VALUE} (8- or 16-bit PNGs)"
            )
        out = self._value_lut[label]
        bad = out < 0
        if bad.any():
            values, counts = np.unique(label[bad], return_counts=True)
            raise DataError(self._outside_message(where, values.tolist(), counts.tolist()))
        return out.astype(np.uint8)

    def _outside_message(self, where: str, values: list, counts: list) -> str:
        shown = ", ".join(f"{v} ({n:,} px)" for v, n in list(zip(values, counts))[:10])
        more = f" and {len(values) - 10} more" if len(values) > 10 else ""
        known = _ranges(sorted(v for c in self.classes for v in c.values))
        ignored = _ranges(sorted(self.ignore)) or "none"
        return (
            f"{where or 'a label array'} holds values outside the {self.name} space: {shown}{more}. "
            f"The space's values: {known}; ignored: {ignored} (space from {self.source}). Fix: pass "
            "--classes FILE with a space whose classes name these values, or list them under `ignore:` "
            "in that file (README: Your own classes)."
        )

    def check_index(self, index: np.ndarray, where: str = "") -> np.ndarray:
        """Refuse class indices outside 0..N-1 and 255 (a trainIds file of another space). Returns `index`."""
        index = np.asarray(index)
        counts = np.bincount(index.ravel().astype(np.int64), minlength=256)
        bad = [v for v in np.flatnonzero(counts).tolist() if v >= self.num_classes and v != IGNORE_INDEX]
        if bad:
            shown = ", ".join(f"{v} ({counts[v]:,} px)" for v in bad[:10])
            raise DataError(
                f"{where or 'a class-index array'} holds values {shown}: the {self.describe()} space's "
                f"class indices are 0..{self.num_classes - 1} and {IGNORE_INDEX} (ignore). It may hold file "
                "values instead (read it as labelIds), or belong to another space (--classes)."
            )
        return index

    @cached_property
    def _write_lut(self) -> np.ndarray:
        big = max((v for c in self.classes for v in c.values), default=0) > 255 or any(v > 255 for v in self.ignore)
        lut = np.zeros(256, dtype=np.uint16 if big else np.uint8)
        lut[:] = self.ignore[0] if self.ignore else IGNORE_INDEX
        lut[: self.num_classes] = [c.values[0] for c in self.classes]
        return lut

    def to_values(self, index: np.ndarray) -> np.ndarray:
        """Class index -> what the data set's own label files hold (ignored: the first ignore value).

        Shape kept; uint8, or uint16 when a value needs 16 bits.
        """
        return self._write_lut[self.check_index(index).astype(np.uint8, copy=False)]

    @cached_property
    def _color_lut(self) -> np.ndarray:
        lut = np.zeros((256, 3), dtype=np.uint8)
        lut[:] = self.ignore_color
        lut[: self.num_classes] = self.palette
        return lut

    def to_color(self, index: np.ndarray) -> np.ndarray:
        """Class index -> the classes' colours (ignored: `ignore_color`). (H, W) -> (H, W, 3) uint8."""
        return self._color_lut[np.asarray(index).astype(np.uint8, copy=False)]

    @cached_property
    def _color_table(self) -> tuple[np.ndarray, np.ndarray]:
        """A perfect hash of the known colours: slot `packed % len(keys)` holds the packed colour and its class.

        One modulo and two gathers per pixel: ~10x faster than a sorted search on a 2-megapixel mask.
        """
        seen: dict[int, int] = {}
        for index, c in enumerate(self.classes):
            key = _pack(c.color)
            if key in seen:
                raise ConfigError(
                    f"the {self.name} space draws {self.names[seen[key]]!r} and {c.name!r} in the same colour "
                    f"{c.color}, so its colour masks cannot be read. Fix: read its label values instead "
                    "(--format labelIds/trainIds), or give each class its own colour (--classes FILE)."
                )
            seen[key] = index
        for color in (*self.ignore_colors, self.ignore_color):
            seen.setdefault(_pack(color), IGNORE_INDEX)
        size = next(m for m in range(max(1, len(seen)), 1 << 24) if len({k % m for k in seen}) == len(seen))
        keys = np.full(size, -1, dtype=np.int32)  # -1: no colour packs to it
        indices = np.zeros(size, dtype=np.uint8)
        for key, index in seen.items():
            keys[key % size], indices[key % size] = key, index
        return keys, indices

    def colors_to_index(self, rgb: np.ndarray, where: str = "") -> np.ndarray:
        """Exact colours of a lossless colour mask -> class index. Unknown colours raise a DataError.

        Args:
            rgb: (H, W, 3) uint8 RGB.
            where: the file it came from, for the message.

        Returns:
            (H, W) uint8 class indices 0..N-1 and 255.
        """
        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise DataError(f"{where or 'a colour mask'} has shape {rgb.shape}; a colour mask is (H, W, 3) RGB")
        keys, indices = self._color_table
        packed = _pack_array(rgb)
        pos = packed % len(keys)
        known = keys[pos] == packed
        if not known.all():
            colors, counts = np.unique(packed[~known], return_counts=True)
            order = np.argsort(-counts)[:10]
            shown = ", ".join(f"{_unpack(int(colors[i]))} ({int(counts[i]):,} px)" for i in order)
            raise DataError(
                f"{where or 'a colour mask'} holds {int((~known).sum()):,} pixels in {len(colors)} colours that are "
                f"not in the {self.describe()} space: {shown}. A lossless colour mask holds its classes' exact "
                "colours. Fix: pass --classes FILE with these colours, list them under `ignore:`, or, for "
                "JPEG or resized masks, use the colour-pair decoder."
            )
        return indices[pos]

    # -- plain types ------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (str, int, bool, lists): travels in checkpoints and ONNX metadata."""
        return {
            "name": self.name,
            "classes": [{"name": c.name, "values": list(c.values), "color": list(c.color)} for c in self.classes],
            "ignore": list(self.ignore),
            "ignore_colors": [list(c) for c in self.ignore_colors],
            "color_coded": self.color_coded,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LabelSpace:
        """The inverse of `to_dict`; a malformed dict raises a ConfigError."""
        try:
            return cls(
                name=str(data["name"]),
                classes=tuple(
                    ClassInfo(str(c["name"]), tuple(int(v) for v in c["values"]), _color(c["color"], c["name"]))
                    for c in data["classes"]
                ),
                ignore=tuple(int(v) for v in data.get("ignore", ())),
                ignore_colors=tuple(_color(c, "ignore") for c in data.get("ignore_colors", ())),
                color_coded=bool(data.get("color_coded", False)),
                source=str(data.get("source", "built-in")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"not a label space ({exc!r}): expected LabelSpace.to_dict()'s fields") from exc


def _pack(color: Sequence[int]) -> int:
    return (int(color[0]) << 16) | (int(color[1]) << 8) | int(color[2])


def _pack_array(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.int32, copy=False)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def _unpack(key: int) -> Color:
    return (key >> 16) & 255, (key >> 8) & 255, key & 255


def _ranges(values: Sequence[int]) -> str:
    """[0, 1, 2, 5, 7, 8] -> '0..2, 5, 7..8'."""
    spans: list[list[int]] = []
    for v in values:
        if spans and spans[-1][1] == v - 1:
            spans[-1][1] = v
        else:
            spans.append([v, v])
    return ", ".join(f"{a}" if a == b else f"{a}..{b}" for a, b in spans)


def _color(value: Any, what: str) -> Color:
    if not isinstance(value, (list, tuple)) or len(value) != 3 or not all(_is_int(x) and 0 <= x <= 255 for x in value):
        raise ConfigError(f"colour of {what!r} must be [r, g, b] with 0..255 each, got {value!r}")
    return int(value[0]), int(value[1]), int(value[2])


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _duplicates(items: Iterable) -> list:
    seen, dup = set(), []
    for x in items:
        if x in seen and x not in dup:
            dup.append(x)
        seen.add(x)
    return dup


def _check_space(space: LabelSpace) -> None:
    where = f"label space {space.name!r} ({space.source})"
    if not space.classes:
        raise ConfigError(f"{where} has no classes: list at least one under `classes:`")
    if space.num_classes > MAX_CLASSES:
        raise ConfigError(
            f"{where} has {space.num_classes} classes; segkit trains at most {MAX_CLASSES} (class index "
            f"{IGNORE_INDEX} is the ignore index, predictions are 8-bit). Fix: merge classes, or move the rare "
            "ones to `ignore:`."
        )
    if dup := _duplicates(space.names):
        raise ConfigError(f"{where} names these classes more than once: {dup}. Fix: give each class one entry.")
    values = [v for c in space.classes for v in c.values]
    if any(not c.values for c in space.classes):
        raise ConfigError(f"{where}: every class needs at least one file value (`id`)")
    if bad := [v for v in (*values, *space.ignore) if not _is_int(v) or not 0 <= v <= MAX_FILE_VALUE]:
        raise ConfigError(f"{where}: file values must be integers 0..{MAX_FILE_VALUE} (16-bit), got {bad[:5]}")
    if dup := _duplicates(values):
        owners = {v: [c.name for c in space.classes if v in c.values] for v in dup}
        raise ConfigError(f"{where} gives one file value to several classes: {owners}. Fix: one class per id.")
    if both := sorted(set(values) & set(space.ignore)):
        raise ConfigError(f"{where} both trains and ignores the values {both}. Fix: drop them from `ignore:`.")
    if space.color_coded and (dup := _duplicates(c.color for c in space.classes)):
        raise ConfigError(
            f"{where} is colour-coded but gives several classes the colours {dup}. Fix: one colour per class."
        )


def default_color(index: int) -> Color:
    """A distinct colour for a class whose space gives none: hues spaced by the golden ratio."""
    r, g, b = colorsys.hsv_to_rgb((index * 0.618033988749895) % 1.0, 0.65 + 0.35 * (index % 2), 0.95)
    return int(r * 255), int(g * 255), int(b * 255)


# -- reading a space from a file --------------------------------------------------------------------

SPACE_FILE_HELP = (
    "segkit's own format (README 'Your own classes'): `name: my-streets`, `classes:` a list of "
    "{name, id (the value in label files, or a list of values; default: the position), color: [r, g, b]} "
    "and `ignore: [values]`; `color` instead of `id` for colour-coded masks"
)
VOID_NAMES = ("void", "unlabeled", "unlabelled")  # a class_dict.csv row of this name is ignored, not trained


def read_space_file(path: str | Path) -> LabelSpace:
    """Read a label space: segkit's YAML/JSON, Kaggle's `class_dict.csv` or Mapillary's `config_v*.json`.

    Bad files raise a ConfigError saying what is wrong, where, and the fix.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"label space file not found: {path}. Fix: pass an existing .yaml/.json/.csv file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return _read_class_dict(path)
        text = path.read_text(encoding="utf-8")
        if suffix == ".json":
            data = json.loads(text)
        elif suffix in (".yaml", ".yml"):
            import yaml  # only when a YAML file is read

            data = yaml.safe_load(text)
        else:
            raise ConfigError(f"label space file {path}: expected .yaml, .yml, .json or .csv, got {suffix!r}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"label space file {path} is not valid JSON/YAML text: {exc}") from exc
    except Exception as exc:
        if type(exc).__module__.startswith("yaml"):
            raise ConfigError(f"label space file {path} is not valid YAML: {exc}") from exc
        raise
    if _is_mapillary_config(data):
        return _read_mapillary_config(data, path)
    return _read_segkit_format(data, path)


def _is_mapillary_config(data: Any) -> bool:
    labels = data.get("labels") if isinstance(data, dict) else None
    return isinstance(labels, list) and bool(labels) and isinstance(labels[0], dict) and "readable" in labels[0]


def _read_segkit_format(data: Any, path: Path) -> LabelSpace:
    if not isinstance(data, dict) or not isinstance(data.get("classes"), list):
        raise ConfigError(f"label space file {path}: no `classes:` list found. Expected {SPACE_FILE_HELP}.")
    entries = data["classes"]
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or not isinstance(e.get("name"), str) or not e["name"].strip():
            raise ConfigError(f"label space file {path}: class #{i} ({e!r}) has no `name`. Expected {SPACE_FILE_HELP}.")
        if unknown := sorted(set(e) - {"name", "id", "color"}):
            raise ConfigError(f"label space file {path}: class {e['name']!r} has unknown fields {unknown}")
    color_coded = not any("id" in e for e in entries) and all("color" in e for e in entries)
    classes = tuple(
        ClassInfo(
            e["name"].strip(),
            _values(e.get("id", i), f"{path}: class {e['name']!r}"),
            _color(e["color"], e["name"]) if "color" in e else default_color(i),
        )
        for i, e in enumerate(entries)
    )
    if dup := _duplicates(c.color for c, e in zip(classes, entries) if "color" in e):
        raise ConfigError(f"label space file {path} gives several classes the colours {dup}: one colour per class")
    ignore = data.get("ignore", [])
    if not isinstance(ignore, list):
        raise ConfigError(f"label space file {path}: `ignore` must be a list of values or [r, g, b] colours")
    ignore_values = tuple(v for v in ignore if not isinstance(v, (list, tuple)))
    ignore_colors = tuple(_color(v, "ignore") for v in ignore if isinstance(v, (list, tuple)))
    name = str(data.get("name") or path.stem)
    return LabelSpace(
        name, classes, _values(list(ignore_values), f"{path}: ignore"), ignore_colors, color_coded, str(path)
    )


def _values(value: Any, what: str) -> tuple[int, ...]:
    values = value if isinstance(value, list) else [value]
    if not all(_is_int(v) and 0 <= v <= MAX_FILE_VALUE for v in values):
        raise ConfigError(f"{what}: `id` must be an integer 0..{MAX_FILE_VALUE} or a list of them, got {value!r}")
    return tuple(int(v) for v in values)


def _read_class_dict(path: Path) -> LabelSpace:
    with path.open(newline="", encoding="utf-8-sig") as f:
        rows = [[cell.strip() for cell in row] for row in csv.reader(f) if any(cell.strip() for cell in row)]
    if not rows or [h.lower() for h in rows[0][:4]] != ["name", "r", "g", "b"]:
        raise ConfigError(
            f"class_dict file {path}: expected a header `name,r,g,b` and one row per class, found "
            f"{rows[0] if rows else 'an empty file'}"
        )
    classes, ignore_colors = [], []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) < 4 or not all(x.isdigit() for x in row[1:4]):
            raise ConfigError(f"class_dict file {path}, line {line}: expected `name,r,g,b` (0..255), got {row}")
        color = _color([int(x) for x in row[1:4]], row[0])
        if row[0].lower() in VOID_NAMES:
            ignore_colors.append(color)
        else:
            classes.append(ClassInfo(row[0], (len(classes),), color))
    if dup := _duplicates(c.color for c in classes):
        raise ConfigError(f"class_dict file {path} gives several classes the colours {dup}: one colour per class")
    space = LabelSpace("class_dict", tuple(classes), (), tuple(ignore_colors), True, str(path))
    known = builtin_space("camvid-32")
    if space.classes == known.classes and space.ignore_colors == known.ignore_colors:
        return LabelSpace(known.name, known.classes, (), known.ignore_colors, True, str(path))
    return space


def _read_mapillary_config(data: dict, path: Path) -> LabelSpace:
    classes, ignore = [], []
    for value, e in enumerate(data["labels"]):
        if not isinstance(e, dict) or "name" not in e or "color" not in e:
            raise ConfigError(f"Mapillary config {path}: label #{value} lacks `name` or `color`: {e!r}")
        if e.get("evaluate", True):
            classes.append(ClassInfo(str(e["name"]), (value,), _color(e["color"], e["name"])))
        else:
            ignore.append(value)
    version = re.search(r"v(\d+(?:\.\d+)*)", path.stem)
    name = f"mapillary-v{version.group(1)}" if version else "mapillary"
    return LabelSpace(name, tuple(classes), tuple(ignore), (), False, str(path))


# -- which space a run uses -------------------------------------------------------------------------

DESCRIPTION_FILES = ("class_dict.csv", "classes.yaml", "classes.yml", "classes.json")


def load_space(name_or_path: str) -> LabelSpace:
    """A built-in space by name, or a space file by path; anything else raises a ConfigError."""
    if name_or_path in BUILTIN_SPACES:
        return builtin_space(name_or_path)
    if Path(name_or_path).suffix.lower() in (".yaml", ".yml", ".json", ".csv") or Path(name_or_path).exists():
        return read_space_file(name_or_path)
    raise ConfigError(
        f"unknown label space {name_or_path!r}{did_you_mean(name_or_path, BUILTIN_SPACES)}: expected a built-in "
        f"({', '.join(BUILTIN_SPACES)}) or a .yaml/.json/.csv file"
    )


def find_space_file(data_root: str | Path) -> tuple[Path, str] | None:
    """The data set's own description in `data_root`, and a note when there was a choice; None when none.

    Mapillary ships one `config_v*.json` per version: the highest version whose labels folder
    (`<split>/v<version>/labels`) exists wins, else the highest version.
    """
    root = Path(data_root)
    if not root.is_dir():
        return None
    configs = sorted(root.glob("config_v*.json"), key=lambda p: _version(p.stem))
    if configs:
        with_labels = [p for p in configs if any(root.glob(f"*/v{_version_text(p.stem)}/labels"))]
        chosen = (with_labels or configs)[-1]
        note = ""
        if len(configs) > 1:
            why = "the highest version with a labels folder" if with_labels else "the highest version"
            note = f" ({why}; also found {', '.join(p.name for p in configs if p != chosen)})"
        return chosen, note
    for name in DESCRIPTION_FILES:
        if (root / name).is_file():
            return root / name, ""
    return None


def _version_text(stem: str) -> str:
    m = re.search(r"v(\d+(?:\.\d+)*)", stem)
    return m.group(1) if m else ""


def _version(stem: str) -> tuple[int, ...]:
    return tuple(int(x) for x in _version_text(stem).split(".") if x)


def resolve_space(
    classes: str, data_root: str | Path | None, layout_space: str | None = None
) -> tuple[LabelSpace, str]:
    """The run's label space and where it came from; the first match wins.

    Args:
        classes: `--classes`: a built-in name or a space file ("" = not given).
        data_root: the data set's folder, searched for its own description (`config_v*.json`,
            `class_dict.csv`, `classes.yaml|yml|json`).
        layout_space: the space the data set's layout implies (`Layout.space`), if any.

    Returns:
        (space, a one-line "where from" the run prints and records).
    """
    if classes:
        space = load_space(classes)
        kind = "built-in" if classes in BUILTIN_SPACES else "file"
        return space, f"label space {space.describe()} from --classes {classes} ({kind})"
    found = find_space_file(data_root) if data_root else None
    if found:
        space = read_space_file(found[0])
        return space, f"label space {space.describe()} from {found[0]}, found beside the data{found[1]}"
    if layout_space:
        space = load_space(layout_space)
        return space, f"label space {space.describe()}: the data set's layout"
    return builtin_space("cityscapes"), f"label space {builtin_space('cityscapes').describe()}: the default"


def space_of_record(record: Mapping[str, Any] | None) -> LabelSpace:
    """The space a checkpoint or export carries (`LabelSpace.to_dict` under "space"); older ones are Cityscapes."""
    data = (record or {}).get("space")
    return LabelSpace.from_dict(data) if data else builtin_space("cityscapes")


# -- maps between spaces ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassMap:
    """Many-to-one map from the classes of one space onto another's, by class name.

    Source classes not listed map to the ignore index.
    """

    name: str
    source: LabelSpace
    target: LabelSpace
    pairs: tuple[tuple[str, str], ...]  # (source class, target class)
    origin: str = field(default="built-in", compare=False)

    def __post_init__(self) -> None:
        where = f"class map {self.name!r} ({self.origin})"
        for src, dst in self.pairs:
            for name, space in ((src, self.source), (dst, self.target)):
                if name not in space.names:
                    raise ConfigError(
                        f"{where}: {space.name} has no class {name!r}{did_you_mean(name, space.names)}; "
                        f"its classes: {', '.join(space.names)}"
                    )
        if dup := _duplicates(src for src, _ in self.pairs):
            raise ConfigError(f"{where} maps these source classes more than once: {dup}")

    @cached_property
    def lut(self) -> np.ndarray:
        """(256,) uint8: source class index -> target class index; unmapped and 255 -> 255."""
        lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
        for src, dst in self.pairs:
            lut[self.source.index_of(src)] = self.target.index_of(dst)
        return lut

    def apply(self, index: np.ndarray) -> np.ndarray:
        """Source class indices -> target class indices (shape kept, uint8)."""
        return self.lut[np.asarray(index).astype(np.uint8, copy=False)]

    def sources_of(self, target_index: int) -> list[int]:
        """The source class indices that map onto `target_index`."""
        return [i for i in range(self.source.num_classes) if self.lut[i] == target_index]

    def describe(self) -> str:
        return f"{self.name} ({self.source.name} -> {self.target.name}, {self.origin})"


def load_class_map(name_or_path: str) -> ClassMap:
    """A built-in map (`cityscapes->camvid`, ...) or a YAML/JSON file `{from, to, map: {src: dst}}`."""
    if name_or_path in BUILTIN_MAPS:
        return builtin_map(name_or_path)
    path = Path(name_or_path)
    if not path.is_file():
        raise ConfigError(
            f"unknown class map {name_or_path!r}{did_you_mean(name_or_path, BUILTIN_MAPS)}: expected a built-in "
            f"({', '.join(BUILTIN_MAPS)}) or a .yaml/.json file `{{from: SPACE, to: SPACE, map: {{src: dst}}}}`"
        )
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        data = json.loads(text)
    else:
        import yaml  # only when a YAML file is read

        data = yaml.safe_load(text)
    if not isinstance(data, dict) or not {"from", "to", "map"} <= set(data) or not isinstance(data["map"], dict):
        raise ConfigError(f"class map file {path}: expected `from: SPACE`, `to: SPACE` and `map: {{source: target}}`")

    def space(ref: str) -> LabelSpace:
        local = path.parent / str(ref)
        return read_space_file(local) if str(ref) not in BUILTIN_SPACES and local.is_file() else load_space(str(ref))

    pairs = tuple((str(s), str(d)) for s, d in data["map"].items() if d is not None)
    return ClassMap(path.stem, space(data["from"]), space(data["to"]), pairs, str(path))


def find_class_map(a: LabelSpace, b: LabelSpace) -> ClassMap | None:
    """The built-in map between spaces `a` and `b` (either direction, matched by space name), if any.

    The map is rebuilt on the spaces given (a Mapillary space read from the data set's own config,
    say), so its class indices are theirs; a class it names that they lack raises a ConfigError.
    """
    for name in BUILTIN_MAPS:
        m = builtin_map(name)
        for source, target in ((a, b), (b, a)):
            if (m.source.name, m.target.name) == (source.name, target.name):
                return m if (m.source, m.target) == (source, target) else ClassMap(name, source, target, m.pairs)
    return None


@dataclass(frozen=True)
class Bridge:
    """How a model's predictions and a data set's labels meet: the space both are scored in."""

    space: LabelSpace  # the shared space
    pred_map: ClassMap | None = None  # maps the model's classes onto it (None: already in it)
    target_map: ClassMap | None = None  # maps the labels' classes onto it

    @property
    def class_map(self) -> ClassMap | None:
        return self.pred_map or self.target_map


def bridge(model_space: LabelSpace, data_space: LabelSpace, class_map: str = "") -> Bridge:
    """The shared space of a model's and a data set's classes: the same space, or a class map between them.

    Args:
        model_space: the classes the model predicts.
        data_space: the classes the labels hold.
        class_map: `--class-map` (NAME|FILE); "" = the built-in map between the two, if any.

    Returns:
        A `Bridge`; two spaces with no map between them raise a ConfigError naming `--class-map`.
    """
    if model_space == data_space and not class_map:
        return Bridge(data_space)
    m = load_class_map(class_map) if class_map else find_class_map(model_space, data_space)
    if m is None:
        raise ConfigError(
            f"the model predicts the {model_space.describe()} space but the labels are in {data_space.describe()}, "
            f"and segkit has no built-in map between them (built-in: {', '.join(BUILTIN_MAPS)}). Fix: pass "
            "--class-map FILE (`from: SPACE`, `to: SPACE`, `map: {source class: target class}`), or evaluate "
            "on data labelled in the model's space."
        )
    if m.source not in (model_space, data_space):
        raise ConfigError(
            f"class map {m.describe()} maps {m.source.name} onto {m.target.name}; this evaluation needs one "
            f"from {model_space.name} or {data_space.name}"
        )
    pred_map = m if m.source == model_space else None
    target_map = m if m.source == data_space else None
    for side, mapped in ((model_space, pred_map), (data_space, target_map)):
        if mapped is None and side != m.target:
            raise ConfigError(
                f"class map {m.describe()} leaves {side.describe()} outside its spaces: map it onto {m.target.name}"
            )
    return Bridge(m.target, pred_map, target_map)


# -- built-in spaces and maps: one entry each -------------------------------------------------------


def _from_table(name: str, table: str, first_value: int = 0, ignore: tuple[int, ...] = ()) -> LabelSpace:
    """A space from 'name r g b' lines; the file value of line i is `first_value + i`."""
    classes, skipped = [], list(ignore)
    for i, line in enumerate(table.strip().splitlines()):
        cls, r, g, b = line.rsplit(maxsplit=3)
        classes.append(ClassInfo(cls, (first_value + i,), (int(r), int(g), int(b))))
    return LabelSpace(name, tuple(classes), tuple(skipped))


def _cityscapes() -> LabelSpace:
    train = sorted((lb for lb in LABELS if 0 <= lb.trainId < IGNORE_INDEX), key=lambda lb: lb.trainId)
    ignore = tuple(lb.id for lb in LABELS if lb.id >= 0 and not 0 <= lb.trainId < IGNORE_INDEX)
    return LabelSpace("cityscapes", tuple(ClassInfo(lb.name, (lb.id,), lb.color) for lb in train), ignore)


def _bdd100k() -> LabelSpace:
    cs = builtin_space("cityscapes")
    return LabelSpace("bdd100k", tuple(ClassInfo(c.name, (i,), c.color) for i, c in enumerate(cs.classes)), (255,))


def _camvid() -> LabelSpace:
    return LabelSpace("camvid", _from_table("camvid", CAMVID_11).classes, (11,), ((0, 0, 0),))


def _camvid_32() -> LabelSpace:
    base = _from_table("camvid-32", CAMVID_32)
    return LabelSpace(base.name, base.classes, (), ((0, 0, 0),), color_coded=True)


def _mapillary(name: str, table: str) -> LabelSpace:
    rows = table.strip().splitlines()
    void = [i for i, line in enumerate(rows) if line.split()[0] == "void--unlabeled"]
    kept = "\n".join(line for i, line in enumerate(rows) if i not in void)
    base = _from_table(name, kept)
    # file value = position in the data set's config; the unlabeled entry (the last) is not evaluated
    classes = tuple(ClassInfo(c.name, (i if i < void[0] else i + 1,), c.color) for i, c in enumerate(base.classes))
    return LabelSpace(name, classes, tuple(void))


def _ade20k() -> LabelSpace:
    return _from_table("ade20k", ADE20K_150, first_value=1, ignore=(0,))


def voc_palette(n: int = 256) -> np.ndarray:
    """Pascal VOC's palette: colour i spreads the bits of i over r, g, b, high bits first. (n, 3) uint8."""
    out = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, rgb = i, [0, 0, 0]
        for bit in range(8):
            for ch in range(3):
                rgb[ch] |= ((c >> ch) & 1) << (7 - bit)
            c >>= 3
        out[i] = rgb
    return out


def _pascal_voc() -> LabelSpace:
    pal = voc_palette()
    classes = tuple(ClassInfo(n, (i,), tuple(int(x) for x in pal[i])) for i, n in enumerate(VOC_21.split()))
    return LabelSpace("pascal-voc", classes, (255,), (tuple(int(x) for x in pal[255]),))  # type: ignore[arg-type]


BUILTIN_SPACES: dict[str, Callable[[], LabelSpace]] = {
    "cityscapes": _cityscapes,  # labelIds 0..33 -> 19 classes (the official table above)
    "camvid": _camvid,  # SegNet's release: values 0..10, 11 = void
    "camvid-32": _camvid_32,  # the original CamVid / Kaggle's class_dict.csv: colour masks, Void ignored
    "mapillary-v1.2": lambda: _mapillary("mapillary-v1.2", MAPILLARY_V12),  # 66 labels, 65 evaluated
    "mapillary-v2.0": lambda: _mapillary("mapillary-v2.0", MAPILLARY_V20),  # 124 labels, 123 evaluated
    "ade20k": _ade20k,  # SceneParsing: file value v -> class v-1, 0 = not evaluated
    "pascal-voc": _pascal_voc,  # 21 classes incl. background, 255 = border
    "bdd100k": _bdd100k,  # Cityscapes' 19 classes written as trainIds 0..18, 255 ignored
}
_BUILT: dict[str, LabelSpace] = {}


def builtin_space(name: str) -> LabelSpace:
    """A built-in space by name (built once)."""
    if name not in BUILTIN_SPACES:
        raise ConfigError(f"no built-in label space {name!r}{did_you_mean(name, BUILTIN_SPACES)}")
    if name not in _BUILT:
        _BUILT[name] = BUILTIN_SPACES[name]()
    return _BUILT[name]


# Many-to-one by class name: {target class: [source classes]}; source classes not listed are ignored.
_MAP_TABLES: dict[str, tuple[str, str, dict[str, list[str]]]] = {
    # The 11-class merge used to test Cityscapes models on CamVid.
    "cityscapes->camvid": ("cityscapes", "camvid", {
        "Road": ["road"], "Pavement": ["sidewalk"], "Building": ["building", "wall"], "Fence": ["fence"],
        "Pole": ["pole"], "SignSymbol": ["traffic light", "traffic sign"], "Tree": ["vegetation", "terrain"],
        "Sky": ["sky"], "Pedestrian": ["person"], "Car": ["car", "truck", "bus", "train"],
        "Bicyclist": ["rider", "motorcycle", "bicycle"],
    }),
    # Mapillary Vistas v1.2 -> Cityscapes' 19: domain-generalisation work trains on one, tests on the other.
    "mapillary->cityscapes": ("mapillary-v1.2", "cityscapes", {
        "road": ["construction--flat--road", "construction--flat--service-lane", "construction--flat--bike-lane",
                 "construction--flat--crosswalk-plain", "marking--crosswalk-zebra", "marking--general",
                 "object--manhole", "object--pothole"],
        "sidewalk": ["construction--flat--sidewalk", "construction--barrier--curb", "construction--flat--curb-cut",
                     "construction--flat--pedestrian-area"],
        "building": ["construction--structure--building"], "wall": ["construction--barrier--wall"],
        "fence": ["construction--barrier--fence"],
        "pole": ["object--support--pole", "object--support--utility-pole", "object--support--traffic-sign-frame",
                 "object--street-light"],
        "traffic light": ["object--traffic-light"], "traffic sign": ["object--traffic-sign--front"],
        "vegetation": ["nature--vegetation"], "terrain": ["nature--terrain", "nature--sand", "nature--mountain"],
        "sky": ["nature--sky"], "person": ["human--person"],
        "rider": ["human--rider--bicyclist", "human--rider--motorcyclist", "human--rider--other-rider"],
        "car": ["object--vehicle--car"], "truck": ["object--vehicle--truck"], "bus": ["object--vehicle--bus"],
        "train": ["object--vehicle--on-rails"], "motorcycle": ["object--vehicle--motorcycle"],
        "bicycle": ["object--vehicle--bicycle"],
    }),
}  # fmt: skip
BUILTIN_MAPS = tuple(_MAP_TABLES)


def builtin_map(name: str) -> ClassMap:
    """A built-in class map by name."""
    if name not in _MAP_TABLES:
        raise ConfigError(f"no built-in class map {name!r}{did_you_mean(name, _MAP_TABLES)}")
    src, dst, table = _MAP_TABLES[name]
    pairs = tuple((s, d) for d, sources in table.items() for s in sources)
    return ClassMap(name, builtin_space(src), builtin_space(dst), pairs)


# -- the built-in spaces' tables: facts of the data sets ("name r g b", one class a line) -------------

# SegNet's CamVid release: values 0..10 in this order, 11 = void.
CAMVID_11 = """
Sky 128 128 128
Building 128 0 0
Pole 192 192 128
Road 128 64 128
Pavement 0 0 192
Tree 128 128 0
SignSymbol 192 128 128
Fence 64 64 128
Car 64 0 128
Pedestrian 64 64 0
Bicyclist 0 128 192
"""
# The original CamVid's 32 colour-coded labels (Kaggle's class_dict.csv) less Void (0, 0, 0), which is ignored.
CAMVID_32 = """
Animal 64 128 64
Archway 192 0 128
Bicyclist 0 128 192
Bridge 0 128 64
Building 128 0 0
Car 64 0 128
CartLuggagePram 64 0 192
Child 192 128 64
Column_Pole 192 192 128
Fence 64 64 128
LaneMkgsDriv 128 0 192
LaneMkgsNonDriv 192 0 64
Misc_Text 128 128 64
MotorcycleScooter 192 0 192
OtherMoving 128 64 64
ParkingBlock 64 192 128
Pedestrian 64 64 0
Road 128 64 128
RoadShoulder 128 128 192
Sidewalk 0 0 192
SignSymbol 192 128 128
Sky 128 128 128
SUVPickupTruck 64 128 192
TrafficCone 0 0 64
TrafficLight 0 64 64
Train 192 64 128
Tree 128 128 0
Truck_Bus 192 128 192
Tunnel 64 0 64
VegetationMisc 192 192 0
Wall 64 192 0
"""
VOC_21 = (
    "background aeroplane bicycle bird boat bottle bus car cat chair cow "
    "diningtable dog horse motorbike person pottedplant sheep sofa train tvmonitor"
)
# Mapillary Vistas v1.2 (config_v1.2.json): file value = position; void--unlabeled is not evaluated.
MAPILLARY_V12 = """
animal--bird 165 42 42
animal--ground-animal 0 192 0
construction--barrier--curb 196 196 196
construction--barrier--fence 190 153 153
construction--barrier--guard-rail 180 165 180
construction--barrier--other-barrier 90 120 150
construction--barrier--wall 102 102 156
construction--flat--bike-lane 128 64 255
construction--flat--crosswalk-plain 140 140 200
construction--flat--curb-cut 170 170 170
construction--flat--parking 250 170 160
construction--flat--pedestrian-area 96 96 96
construction--flat--rail-track 230 150 140
construction--flat--road 128 64 128
construction--flat--service-lane 110 110 110
construction--flat--sidewalk 244 35 232
construction--structure--bridge 150 100 100
construction--structure--building 70 70 70
construction--structure--tunnel 150 120 90
human--person 220 20 60
human--rider--bicyclist 255 0 0
human--rider--motorcyclist 255 0 100
human--rider--other-rider 255 0 200
marking--crosswalk-zebra 200 128 128
marking--general 255 255 255
nature--mountain 64 170 64
nature--sand 230 160 50
nature--sky 70 130 180
nature--snow 190 255 255
nature--terrain 152 251 152
nature--vegetation 107 142 35
nature--water 0 170 30
object--banner 255 255 128
object--bench 250 0 30
object--bike-rack 100 140 180
object--billboard 220 220 220
object--catch-basin 220 128 128
object--cctv-camera 222 40 40
object--fire-hydrant 100 170 30
object--junction-box 40 40 40
object--mailbox 33 33 33
object--manhole 100 128 160
object--phone-booth 142 0 0
object--pothole 70 100 150
object--street-light 210 170 100
object--support--pole 153 153 153
object--support--traffic-sign-frame 128 128 128
object--support--utility-pole 0 0 80
object--traffic-light 250 170 30
object--traffic-sign--back 192 192 192
object--traffic-sign--front 220 220 0
object--trash-can 140 140 20
object--vehicle--bicycle 119 11 32
object--vehicle--boat 150 0 255
object--vehicle--bus 0 60 100
object--vehicle--car 0 0 142
object--vehicle--caravan 0 0 90
object--vehicle--motorcycle 0 0 230
object--vehicle--on-rails 0 80 100
object--vehicle--other-vehicle 128 64 64
object--vehicle--trailer 0 0 110
object--vehicle--truck 0 0 70
object--vehicle--wheeled-slow 0 0 192
void--car-mount 32 32 32
void--ego-vehicle 120 10 10
void--unlabeled 0 0 0
"""
# Mapillary Vistas v2.0 (config_v2.0.json): file value = position; void--unlabeled is not evaluated.
MAPILLARY_V20 = """
animal--bird 165 42 42
animal--ground-animal 0 192 0
construction--barrier--ambiguous 250 170 31
construction--barrier--concrete-block 250 170 32
construction--barrier--curb 196 196 196
construction--barrier--fence 190 153 153
construction--barrier--guard-rail 180 165 180
construction--barrier--other-barrier 90 120 150
construction--barrier--road-median 250 170 33
construction--barrier--road-side 250 170 34
construction--barrier--separator 128 128 128
construction--barrier--temporary 250 170 35
construction--barrier--wall 102 102 156
construction--flat--bike-lane 128 64 255
construction--flat--crosswalk-plain 140 140 200
construction--flat--curb-cut 170 170 170
construction--flat--driveway 250 170 36
construction--flat--parking 250 170 160
construction--flat--parking-aisle 250 170 37
construction--flat--pedestrian-area 96 96 96
construction--flat--rail-track 230 150 140
construction--flat--road 128 64 128
construction--flat--road-shoulder 110 110 110
construction--flat--service-lane 110 110 110
construction--flat--sidewalk 244 35 232
construction--flat--traffic-island 128 196 128
construction--structure--bridge 150 100 100
construction--structure--building 70 70 70
construction--structure--garage 150 150 150
construction--structure--tunnel 150 120 90
human--person--individual 220 20 60
human--person--person-group 220 20 60
human--rider--bicyclist 255 0 0
human--rider--motorcyclist 255 0 100
human--rider--other-rider 255 0 200
marking--continuous--dashed 255 255 255
marking--continuous--solid 255 255 255
marking--continuous--zigzag 250 170 29
marking--discrete--ambiguous 250 170 28
marking--discrete--arrow--left 250 170 26
marking--discrete--arrow--other 250 170 25
marking--discrete--arrow--right 250 170 24
marking--discrete--arrow--split-left-or-straight 250 170 22
marking--discrete--arrow--split-right-or-straight 250 170 21
marking--discrete--arrow--straight 250 170 20
marking--discrete--crosswalk-zebra 255 255 255
marking--discrete--give-way-row 250 170 19
marking--discrete--give-way-single 250 170 18
marking--discrete--hatched--chevron 250 170 12
marking--discrete--hatched--diagonal 250 170 11
marking--discrete--other-marking 255 255 255
marking--discrete--stop-line 255 255 255
marking--discrete--symbol--bicycle 250 170 16
marking--discrete--symbol--other 250 170 15
marking--discrete--text 250 170 15
marking-only--continuous--dashed 255 255 255
marking-only--discrete--crosswalk-zebra 255 255 255
marking-only--discrete--other-marking 255 255 255
marking-only--discrete--text 255 255 255
nature--mountain 64 170 64
nature--sand 230 160 50
nature--sky 70 130 180
nature--snow 190 255 255
nature--terrain 152 251 152
nature--vegetation 107 142 35
nature--water 0 170 30
object--banner 255 255 128
object--bench 250 0 30
object--bike-rack 100 140 180
object--catch-basin 220 128 128
object--cctv-camera 222 40 40
object--fire-hydrant 100 170 30
object--junction-box 40 40 40
object--mailbox 33 33 33
object--manhole 100 128 160
object--parking-meter 20 20 255
object--phone-booth 142 0 0
object--pothole 70 100 150
object--sign--advertisement 250 171 30
object--sign--ambiguous 250 172 30
object--sign--back 250 173 30
object--sign--information 250 174 30
object--sign--other 250 175 30
object--sign--store 250 176 30
object--street-light 210 170 100
object--support--pole 153 153 153
object--support--pole-group 153 153 153
object--support--traffic-sign-frame 128 128 128
object--support--utility-pole 0 0 80
object--traffic-cone 210 60 60
object--traffic-light--cyclists 250 170 30
object--traffic-light--general-horizontal 250 170 30
object--traffic-light--general-single 250 170 30
object--traffic-light--general-upright 250 170 30
object--traffic-light--other 250 170 30
object--traffic-light--pedestrians 250 170 30
object--traffic-sign--ambiguous 192 192 192
object--traffic-sign--back 192 192 192
object--traffic-sign--direction-back 192 192 192
object--traffic-sign--direction-front 220 220 0
object--traffic-sign--front 220 220 0
object--traffic-sign--information-parking 0 0 196
object--traffic-sign--temporary-back 192 192 192
object--traffic-sign--temporary-front 220 220 0
object--trash-can 140 140 20
object--vehicle--bicycle 119 11 32
object--vehicle--boat 150 0 255
object--vehicle--bus 0 60 100
object--vehicle--car 0 0 142
object--vehicle--caravan 0 0 90
object--vehicle--motorcycle 0 0 230
object--vehicle--on-rails 0 80 100
object--vehicle--other-vehicle 128 64 64
object--vehicle--trailer 0 0 110
object--vehicle--truck 0 0 70
object--vehicle--vehicle-group 0 0 142
object--vehicle--wheeled-slow 0 0 192
object--water-valve 170 170 170
void--car-mount 32 32 32
void--dynamic 111 74 0
void--ego-vehicle 120 10 10
void--ground 81 0 81
void--static 111 111 0
void--unlabeled 0 0 0
"""
# ADE20K SceneParsing's 150 classes (objectInfo150, short names) in the colours its benchmarks draw them in;
# file value v = class v - 1.
ADE20K_150 = """
wall 120 120 120
building 180 120 120
sky 6 230 230
floor 80 50 50
tree 4 200 3
ceiling 120 120 80
road 140 140 140
bed 204 5 255
windowpane 230 230 230
grass 4 250 7
cabinet 224 5 255
sidewalk 235 255 7
person 150 5 61
earth 120 120 70
door 8 255 51
table 255 6 82
mountain 143 255 140
plant 204 255 4
curtain 255 51 7
chair 204 70 3
car 0 102 200
water 61 230 250
painting 255 6 51
sofa 11 102 255
shelf 255 7 71
house 255 9 224
sea 9 7 230
mirror 220 220 220
rug 255 9 92
field 112 9 255
armchair 8 255 214
seat 7 255 224
fence 255 184 6
desk 10 255 71
rock 255 41 10
wardrobe 7 255 255
lamp 224 255 8
bathtub 102 8 255
railing 255 61 6
cushion 255 194 7
base 255 122 8
box 0 255 20
column 255 8 41
signboard 255 5 153
chest of drawers 6 51 255
counter 235 12 255
sand 160 150 20
sink 0 163 255
skyscraper 140 140 140
fireplace 250 10 15
refrigerator 20 255 0
grandstand 31 255 0
path 255 31 0
stairs 255 224 0
runway 153 255 0
case 0 0 255
pool table 255 71 0
pillow 0 235 255
screen door 0 173 255
stairway 31 0 255
river 11 200 200
bridge 255 82 0
bookcase 0 255 245
blind 0 61 255
coffee table 0 255 112
toilet 0 255 133
flower 255 0 0
book 255 163 0
hill 255 102 0
bench 194 255 0
countertop 0 143 255
stove 51 255 0
palm 0 82 255
kitchen island 0 255 41
computer 0 255 173
swivel chair 10 0 255
boat 173 255 0
bar 0 255 153
arcade machine 255 92 0
hovel 255 0 255
bus 255 0 245
towel 255 0 102
light 255 173 0
truck 255 0 20
tower 255 184 184
chandelier 0 31 255
awning 0 255 61
streetlight 0 71 255
booth 255 0 204
television receiver 0 255 194
airplane 0 255 82
dirt track 0 10 255
apparel 0 112 255
pole 51 0 255
land 0 194 255
bannister 0 122 255
escalator 0 255 163
ottoman 255 153 0
bottle 0 255 10
buffet 255 112 0
poster 143 255 0
stage 82 0 255
van 163 255 0
ship 255 235 0
fountain 8 184 170
conveyer belt 133 0 255
canopy 0 255 92
washer 184 0 255
plaything 255 0 31
swimming pool 0 184 255
stool 0 214 255
barrel 255 0 112
basket 92 255 0
waterfall 0 224 255
tent 112 224 255
bag 70 184 160
minibike 163 0 255
cradle 153 0 255
oven 71 255 0
ball 255 0 163
food 255 204 0
step 255 0 143
tank 0 255 235
trade name 133 255 0
microwave 255 0 235
pot 245 0 255
animal 255 0 122
bicycle 255 245 0
lake 10 190 212
dishwasher 214 255 0
screen 0 204 255
blanket 20 0 255
sculpture 255 255 0
hood 0 153 255
sconce 0 41 255
vase 0 255 204
traffic light 41 0 255
tray 41 255 0
ashcan 173 0 255
fan 0 245 255
pier 71 0 255
crt screen 122 0 255
plate 0 255 184
monitor 0 92 255
bulletin board 184 255 0
shower 0 133 255
radiator 255 214 0
glass 25 194 194
clock 102 255 0
flag 92 0 255
"""


# -- Cityscapes under its historical names (the cityscapes space; labelIds files) -------------------

CITYSCAPES: LabelSpace = builtin_space("cityscapes")
NUM_CLASSES = CITYSCAPES.num_classes  # evaluated Cityscapes classes (trainIds)
MAX_LABEL_ID = 33  # labelId files hold 0..33; any larger value means a wrong file
TRAIN_LABELS: tuple[Label, ...] = tuple(
    sorted((lb for lb in LABELS if 0 <= lb.trainId < IGNORE_INDEX), key=lambda lb: lb.trainId)
)
CLASS_NAMES: tuple[str, ...] = CITYSCAPES.names
PALETTE: np.ndarray = CITYSCAPES.palette  # (19, 3)

# Thin or small classes a low-resolution model loses first; training can centre crops on them (focus_crop).
THIN_NAMES = frozenset(
    ("pole", "traffic light", "traffic sign", "person", "rider", "motorcycle", "bicycle")
    + ("signsymbol", "pedestrian", "bicyclist", "column_pole", "trafficlight", "child", "motorcyclescooter")
    + ("object--support--pole", "object--traffic-light", "object--traffic-sign--front", "human--person")
    + ("human--rider--bicyclist", "human--rider--motorcyclist", "object--vehicle--bicycle")
    + ("object--vehicle--motorcycle", "traffic light", "streetlight")
)


def thin_classes(space: LabelSpace) -> tuple[int, ...]:
    """Class indices of `space` whose names are thin or small things (poles, signs, people, bikes)."""
    return tuple(i for i, n in enumerate(space.names) if n.lower() in THIN_NAMES)


THIN_CLASSES: tuple[int, ...] = thin_classes(CITYSCAPES)


def _lut(pairs: list[tuple[int, int]], fill: int) -> np.ndarray:
    lut = np.full(256, fill, dtype=np.uint8)
    for src, dst in pairs:
        lut[src] = dst
    return lut


# labelId -> trainId; every value a labelId file never takes also maps to IGNORE_INDEX.
LABEL_TO_TRAIN: np.ndarray = _lut(
    [(lb.id, lb.trainId if 0 <= lb.trainId < IGNORE_INDEX else IGNORE_INDEX) for lb in LABELS if lb.id >= 0],
    IGNORE_INDEX,
)
# trainId -> labelId (the submission format); ignored pixels become 0 ("unlabeled").
TRAIN_TO_LABEL: np.ndarray = _lut([(lb.trainId, lb.id) for lb in TRAIN_LABELS], 0)
# labelId -> colour of the official gtFine_color.png files.
LABEL_COLORS: np.ndarray = np.zeros((256, 3), dtype=np.uint8)
for _lb in LABELS:
    if _lb.id >= 0:
        LABEL_COLORS[_lb.id] = _lb.color
# trainId -> colour; ignored pixels are black.
TRAIN_COLORS: np.ndarray = np.zeros((256, 3), dtype=np.uint8)
TRAIN_COLORS[:NUM_CLASSES] = PALETTE


def label_to_train(label: np.ndarray) -> np.ndarray:
    """Map a labelId array to trainIds (255 = ignore). Shape is kept; dtype becomes uint8."""
    return LABEL_TO_TRAIN[label.astype(np.uint8, copy=False)]


def train_to_label(mask: np.ndarray) -> np.ndarray:
    """Map a trainId array (0..18, 255) to labelIds; ignored pixels become 0 (unlabeled)."""
    return TRAIN_TO_LABEL[mask.astype(np.uint8, copy=False)]


def train_to_color(mask: np.ndarray) -> np.ndarray:
    """Colour a trainId array with the official palette. Shape: (H, W) -> (H, W, 3) uint8."""
    return TRAIN_COLORS[mask.astype(np.uint8, copy=False)]


def label_to_color(label: np.ndarray) -> np.ndarray:
    """Colour a labelId array as the official *_gtFine_color.png. Shape: (H, W) -> (H, W, 3)."""
    return LABEL_COLORS[label.astype(np.uint8, copy=False)]
