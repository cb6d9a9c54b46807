"""Label spaces: which classes a data set's label files hold, and how to read, write and map them.

A `LabelSpace` is data: the ordered classes (class index 0..N-1 is the training target), the file
values (or mask colours) that stand for each, the colour each is drawn in, and the file values that
are ignored. Index 255 is the ignore index of every space, so a space holds at most 255 classes.
Nothing outside this package knows how many classes a space has.

One job a module, each importing only the ones above it in this list:

- `space`: the `LabelSpace` type, its checks and lookups (file values / colours <-> class index).
- `cityscapes`: Cityscapes' official labelId -> trainId table, which mirrors
  `cityscapesscripts.helpers.labels` (a test proves it), and the cityscapes space under its
  historical names (`LABEL_TO_TRAIN`, `CLASS_NAMES`, `PALETTE`, `label_to_train`, ...).
- `builtin`: the built-in spaces, one entry each in `BUILTIN_SPACES`, and their tables.
- `files`: `read_space_file` (segkit's YAML/JSON, Kaggle's `class_dict.csv`, Mapillary's
  `config_v*.json`); `resolve_space` says which space a run uses and where it came from.
- `maps`: `ClassMap` maps one space onto another by class name; `bridge` is where a model's and a
  data set's classes meet.

Every public name is imported from here: `from segkit.labels import LabelSpace, CLASS_NAMES`.
"""

from segkit.labels.builtin import (
    ADE20K_150,
    BUILTIN_SPACES,
    CAMVID_11,
    CAMVID_32,
    MAPILLARY_V12,
    MAPILLARY_V20,
    VOC_21,
    builtin_space,
    voc_palette,
)
from segkit.labels.cityscapes import (
    CITYSCAPES,
    CLASS_NAMES,
    LABEL_COLORS,
    LABEL_TO_TRAIN,
    LABELS,
    MAX_LABEL_ID,
    NUM_CLASSES,
    PALETTE,
    THIN_CLASSES,
    TRAIN_COLORS,
    TRAIN_LABELS,
    TRAIN_TO_LABEL,
    Label,
    label_to_color,
    label_to_train,
    train_to_color,
    train_to_label,
)
from segkit.labels.files import (
    DESCRIPTION_FILES,
    SPACE_FILE_HELP,
    VOID_NAMES,
    find_space_file,
    load_space,
    read_space_file,
    resolve_space,
    space_of_record,
)
from segkit.labels.maps import BUILTIN_MAPS, Bridge, ClassMap, bridge, builtin_map, find_class_map, load_class_map
from segkit.labels.space import (
    IGNORE_INDEX,
    MAX_CLASSES,
    MAX_FILE_VALUE,
    THIN_NAMES,
    ClassInfo,
    Color,
    LabelSpace,
    default_color,
    thin_classes,
)

__all__ = [
    "ADE20K_150",
    "BUILTIN_MAPS",
    "BUILTIN_SPACES",
    "CAMVID_11",
    "CAMVID_32",
    "CITYSCAPES",
    "CLASS_NAMES",
    "DESCRIPTION_FILES",
    "IGNORE_INDEX",
    "LABELS",
    "LABEL_COLORS",
    "LABEL_TO_TRAIN",
    "MAPILLARY_V12",
    "MAPILLARY_V20",
    "MAX_CLASSES",
    "MAX_FILE_VALUE",
    "MAX_LABEL_ID",
    "NUM_CLASSES",
    "PALETTE",
    "SPACE_FILE_HELP",
    "THIN_CLASSES",
    "THIN_NAMES",
    "TRAIN_COLORS",
    "TRAIN_LABELS",
    "TRAIN_TO_LABEL",
    "VOC_21",
    "VOID_NAMES",
    "Bridge",
    "ClassInfo",
    "ClassMap",
    "Color",
    "Label",
    "LabelSpace",
    "bridge",
    "builtin_map",
    "builtin_space",
    "default_color",
    "find_class_map",
    "find_space_file",
    "label_to_color",
    "label_to_train",
    "load_class_map",
    "load_space",
    "read_space_file",
    "resolve_space",
    "space_of_record",
    "thin_classes",
    "train_to_color",
    "train_to_label",
    "voc_palette",
]
