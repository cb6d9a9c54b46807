"""The checks a config field's value gets: choices, signs, splits, image sizes, glob patterns.

Each raises a ConfigError that says what was expected, what was found and, where it can be
computed, the fix ("image size 250x512 is not a multiple of 32; try 256x512"). Standard library
only (config validation must not import torch).
"""

from __future__ import annotations

from typing import Any

from segkit.errors import ConfigError, did_you_mean
from segkit.reflect import flag_name, is_int_like


def check_glob(name: str, pattern: str) -> None:
    """One glob pattern of the glob layout (the rules: segkit.data.layouts' docstring)."""
    example = "labels/{split}/**/*_mask.png" if name == "label_glob" else "images/{split}/**/*.jpg"
    folders, _, file_part = pattern.rpartition("/")
    checks = [
        (pattern.startswith(("/", "~")), "is absolute: write it relative to data_root"),
        (pattern.count("{split}") != 1, "needs {split} exactly once, where the split's folder is"),
        ("{split}" in file_part, "has {split} in its file name: put it in a folder"),
        (folders.split("/").count("**") > 1, "may use ** once at most"),
        (
            file_part == "*" or not file_part.startswith("*") or any(c in file_part[1:] for c in "*?["),
            "has a file-name part that is not * and a fixed ending (the * is the frame's stem)",
        ),
        ("{format}" in pattern and name != "label_glob", "names {format}, which only label globs may"),
    ]
    problem = next((message for bad, message in checks if bad), "")
    if problem:
        raise ConfigError(f"{name} {pattern!r} {problem}; e.g. {example!r}")


def check_split(name: str, value: str) -> None:
    """A split names one folder."""
    if not value or "/" in value:
        raise ConfigError(f"{name} must name one folder of the data set (e.g. train, val, training); got {value!r}")


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    """`value` is one of `choices` (with a did-you-mean when it is not)."""
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {value!r}" + did_you_mean(value, choices))


def check_required(cfg: Any, name: str, example: str) -> None:
    """A field that must be given."""
    if not getattr(cfg, name):
        raise ConfigError(f"{flag_name(name)} is required: {example}")


def check_positive(cfg: Any, *names: str) -> None:
    """Fields that must be > 0."""
    for name in names:
        if not getattr(cfg, name) > 0:
            raise ConfigError(f"{name} must be > 0, got {getattr(cfg, name)!r}")


def check_non_negative(cfg: Any, *names: str) -> None:
    """Fields that must be >= 0."""
    for name in names:
        if getattr(cfg, name) < 0:
            raise ConfigError(f"{name} must be >= 0, got {getattr(cfg, name)!r}")


def check_image_size(size: Any, multiple: int = 1, minimum: int = 16, model: str = "the network") -> tuple[int, int]:
    """The one check of an image size: (height, width) integers >= `minimum`, multiples of `multiple`.

    Args:
        size: (H, W) as given.
        multiple: the model's total downsampling (its `size_divisor`).
        minimum: smallest side accepted.
        model: how to name the model in the message.

    Returns:
        (H, W) as ints.

    Raises:
        ConfigError: with the nearest valid size, e.g. "image size 250x512 is not a multiple of 32; try 256x512".
    """
    parts = list(size) if isinstance(size, (tuple, list)) else []
    if len(parts) != 2 or not all(is_int_like(v) and not isinstance(v, bool) and int(v) >= minimum for v in parts):
        raise ConfigError(f"image_size must be (height, width), both integers >= {minimum}, e.g. 256x512; got {size!r}")
    h, w = int(parts[0]), int(parts[1])
    if h % multiple or w % multiple:
        # Round half up to the nearest multiple, but never below one multiple.
        fix_h, fix_w = (max(multiple, (v + multiple // 2) // multiple * multiple) for v in (h, w))
        found, fix = (f"{h}", f"{fix_h}") if h == w else (f"{h}x{w}", f"{fix_h}x{fix_w}")
        raise ConfigError(
            f"image size {found} is not a multiple of {multiple}; try {fix} ({model} downsamples by {multiple}, "
            f"so H and W must both be multiples of {multiple}; resize or pad the input)"
        )
    return h, w
