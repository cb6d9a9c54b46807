"""Reading a label space from a file (segkit's YAML/JSON, Kaggle's `class_dict.csv`, Mapillary's
`config_v*.json`) and deciding which space a run uses: `load_space`, `find_space_file`,
`resolve_space`, `space_of_record`.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from segkit.errors import ConfigError, did_you_mean
from segkit.labels.builtin import BUILTIN_SPACES, builtin_space
from segkit.labels.space import MAX_FILE_VALUE, ClassInfo, LabelSpace, _color, _duplicates, _is_int, default_color

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
