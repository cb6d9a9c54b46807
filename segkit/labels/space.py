"""The `LabelSpace` type: a data set's classes, the file values or mask colours that stand for them,
the colours they are drawn in, the values that are ignored; its checks and its lookups.

A `LabelSpace` is data: class index 0..N-1 (the position in `classes`) is the training target.
Index 255 is the ignore index of every space, so a space holds at most 255 classes.
"""

from __future__ import annotations

import colorsys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from segkit.errors import ConfigError, DataError, did_you_mean

IGNORE_INDEX = 255  # class index of every pixel that is not evaluated, in every space
MAX_CLASSES = IGNORE_INDEX  # class indices 0..254; 255 is the ignore index
MAX_FILE_VALUE = 65535  # label files are 8- or 16-bit PNGs
Color = tuple[int, int, int]


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
