"""Config dataclasses read as data: help texts, types, coercion, dicts, and command-line flags.

Every command's flags and every notebook's parameters cell are made here, the same way, from a
config dataclass of `segkit.config`: one flag per field (`batch_size` -> `--batch-size`), its
help text the field's trailing `# comment` (continued on comment lines right below it), its default
the field's. A field whose metadata has `positional=True` is a positional argument
(`segkit runs [DIR]`); one with `choices` (a function returning the valid names, asked when the
parser is built: e.g. the model families registered by then) lists them in its help. Booleans get
`--x/--no-x`, fixed tuples `nargs=N`, `tuple[str, ...]` a list of any length.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import io
import tokenize
import typing
from collections.abc import Callable
from dataclasses import MISSING, fields
from functools import cache
from typing import Any, TypeVar

from segkit.errors import ConfigError, did_you_mean

C = TypeVar("C")
POSITIONAL = {"positional": True}  # field(metadata=POSITIONAL): a positional argument, not a --flag


def choices(names: Callable[[], tuple[str, ...]]) -> dict[str, Any]:
    """field(metadata=choices(f)): the flag's help lists f()'s names (the config's own check refuses others)."""
    return {"choices": names}


# ----------------------------------------------------------------------------- fields as data


@cache
def field_help(cls: type) -> dict[str, str]:
    """The trailing `# comment` of each field in the class source (or a base class's): its help.

    A help too long for one line goes on in comment lines right below the field (no blank line
    between): they are joined to it with a space.
    """
    names = {f.name for f in fields(cls)}
    helps: dict[str, str] = {}
    for klass in cls.__mro__:  # a subclass's own comment wins over its base's
        if not dataclasses.is_dataclass(klass):
            continue
        current = ""  # the field whose help the next comment-only line continues
        for line in inspect.getsource(klass).splitlines():
            stripped = line.strip()
            if current and stripped.startswith("#"):
                helps[current] += " " + stripped.lstrip("#").strip()
                continue
            current = ""
            name = stripped.split(":", 1)[0]
            if name in names and name not in helps and "#" in stripped:
                tokens = tokenize.generate_tokens(io.StringIO(stripped).readline)
                comments = [t.string for t in tokens if t.type == tokenize.COMMENT]
                if comments:
                    helps[name] = comments[-1].lstrip("#").strip()
                    current = name
    return helps


def field_types(cls: type) -> dict[str, Any]:
    """Resolved type of each field (annotations are strings under `from __future__`)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in fields(cls)}


def flag_name(field_name: str) -> str:
    """The command-line flag of a field: `batch_size` -> `--batch-size`."""
    return "--" + field_name.replace("_", "-")


def from_dict(cls: type[C], values: dict[str, Any], where: str = "parameter") -> C:
    """Build a config from a dict, refusing unknown names with the list of valid ones.

    Args:
        cls: a config dataclass.
        values: field name -> value (strings such as "256x512" are coerced to the field's type).
        where: how to call the names in messages ("parameter", "flag").

    Returns:
        The validated config.
    """
    valid = [f.name for f in fields(cls)]
    unknown = [k for k in values if k not in valid]
    if unknown:
        hints = "".join(did_you_mean(k, valid) for k in unknown)
        raise ConfigError(
            f"unknown {where}{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
            f"for {cls.__name__}{hints}; valid names: {', '.join(valid)}"
        )
    return cls(**values)


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-able dict of a config (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}


def explicit_fields(cfg: Any) -> set[str]:
    """The fields of `cfg` that differ from their default (what a user set, when nothing else says)."""
    return {f.name for f in fields(cfg) if getattr(cfg, f.name) != f.default}


def to_argv(cfg: Any, skip: tuple[str, ...] = ()) -> list[str]:
    """Flags that rebuild `cfg` exactly on the command line: every field, defaults included.

    Every field is given so that nothing is left for a preset or a resumed run to fill in: the
    process that parses them trains the same config as the one that wrote them.
    """
    types = field_types(type(cfg))
    argv: list[str] = []
    for f in fields(cfg):
        if f.name in skip:
            continue
        value, flag = getattr(cfg, f.name), flag_name(f.name)
        if f.metadata.get("positional"):
            argv.append(str(value))
        elif types[f.name] is bool:
            argv.append(flag if value else "--no-" + flag[2:])
        elif typing.get_origin(types[f.name]) is tuple:
            argv += [flag, *map(str, value)]
        else:
            argv += [flag, str(value)]
    return argv


# ----------------------------------------------------------------------------- flags


def add_config_flags(parser: argparse.ArgumentParser, cls: type) -> None:
    """One argument per dataclass field, help from the field's comment; unset flags stay absent."""
    helps, types = field_help(cls), field_types(cls)
    for f in fields(cls):
        typ = types[f.name]
        default = "" if f.default is MISSING else f" (default: {_show(f.default)})"
        named = f"; one of: {', '.join(f.metadata['choices']())}" if "choices" in f.metadata else ""
        kwargs: dict[str, Any] = {"default": argparse.SUPPRESS, "help": helps.get(f.name, "") + named + default}
        args = typing.get_args(typ)
        if typ is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(typ) is tuple and args[-1:] == (Ellipsis,):
            kwargs.update(nargs="*", metavar=args[0].__name__.upper())
        elif typing.get_origin(typ) is tuple:
            kwargs.update(nargs=len(args), metavar=tuple(a.__name__.upper() for a in args))
        else:
            kwargs.update(type=typ, metavar=typ.__name__.upper())
        if f.metadata.get("positional"):
            parser.add_argument(f.name, nargs="?", **kwargs)
        else:
            parser.add_argument(flag_name(f.name), dest=f.name, **kwargs)


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return " ".join(map(str, value)) or "none"
    return repr(value) if value == "" else str(value)


def config_from_args(
    cls: type[C], args: argparse.Namespace, fill: Callable[[dict, set], dict] | None = None
) -> tuple[C, set[str]]:
    """The config from the flags given (and the set of names given explicitly).

    `fill(values, explicit)` may complete the values before the config checks them (a preset).
    """
    names = {f.name for f in fields(cls)}
    given = {k: v for k, v in vars(args).items() if k in names}
    values = fill(given, set(given)) if fill else given
    return from_dict(cls, values, where="flag"), set(given)


# ----------------------------------------------------------------------------- coercion


def coerce_fields(cfg: Any) -> None:
    """Convert every field of a (frozen) config to its declared type, in place (`coerce`)."""
    types = field_types(type(cfg))
    for f in fields(cfg):
        object.__setattr__(cfg, f.name, coerce(f.name, getattr(cfg, f.name), types[f.name]))


def coerce(name: str, value: Any, typ: Any) -> Any:
    """Convert `value` to `typ` where the meaning is unambiguous; ConfigError otherwise."""
    if typing.get_origin(typ) is tuple:
        return _coerce_tuple(name, value, typing.get_args(typ))
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ConfigError(f"{name} must be True or False, got {value!r}")
    if typ is int:
        if isinstance(value, bool) or not is_int_like(value):
            raise ConfigError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
        return int(value)
    if typ is float:
        try:
            if isinstance(value, bool):  # float(True) would quietly be 1.0
                raise TypeError
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be a number, got {value!r} ({type(value).__name__})") from None
    if typ is str:
        if value is None:
            return ""
        if not isinstance(value, str):
            raise ConfigError(f"{name} must be a string, got {value!r} ({type(value).__name__})")
        return value
    return value


def is_int_like(value: Any) -> bool:
    """An int, an integral float, or a string that parses as an int (not a bool's business)."""
    if isinstance(value, int):
        return True
    if isinstance(value, float):
        return value.is_integer()
    if isinstance(value, str):
        try:
            int(value)
        except ValueError:
            return False
        return True
    return False


def _coerce_tuple(name: str, value: Any, args: tuple) -> tuple:
    if isinstance(value, str):
        # "256x512" for sizes; names ("train val", "a,b") for tuples of strings.
        text = value if args[0] is str else value.replace("x", " ")
        parts = text.replace(",", " ").split()
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        parts = [value]
    if args[-1:] == (Ellipsis,):
        return tuple(coerce(name, p, args[0]) for p in parts)
    if len(parts) != len(args):
        example = "x".join(["256", "512"][: len(args)])
        raise ConfigError(
            f"{name} needs {len(args)} values, got {value!r}; write e.g. {example!r} or {list(parts)[:1] * len(args)}"
        )
    return tuple(coerce(name, p, t) for p, t in zip(parts, args))
