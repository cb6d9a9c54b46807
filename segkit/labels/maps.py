"""Maps between label spaces: `ClassMap` (many-to-one by class name), the built-in maps, and `bridge`,
the space a model's predictions and a data set's labels are scored in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from segkit.errors import ConfigError, did_you_mean
from segkit.labels.builtin import BUILTIN_SPACES, builtin_space
from segkit.labels.files import load_space, read_space_file
from segkit.labels.space import IGNORE_INDEX, LabelSpace, _duplicates


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
