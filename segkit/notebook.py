"""What every notebook shares: parameters -> config, the smoke switch and the working directory.

Notebooks orchestrate and segkit computes, so that every notebook cell stays short: the data
tables of notebook 01 are in `segkit.data.report`, a finished run read back for notebooks 03 and
04 in `segkit.analysis`, figures in `segkit.viz`. The parameters contract:

    import segkit.notebook
    _before = segkit.notebook.snapshot(globals())        # end of the imports cell
    # parameters cell: `epochs: int = 20  # passes over the train split`, ...
    cfg = segkit.notebook.config_from_namespace(TrainConfig, globals(), _before)

A name that papermill injects (`-p NAME VALUE`) but the config does not know fails the run with
the valid names (papermill itself only warns and runs with the defaults).
"""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segkit.config import CompareConfig, EvalConfig, ExploreConfig, TrainConfig, VisualizeConfig
from segkit.errors import ConfigError
from segkit.launch import resolve_train_config
from segkit.progress import setup_logging
from segkit.recipes import preset_values
from segkit.reflect import coerce, field_help, field_types, from_dict

if TYPE_CHECKING:  # pandas is imported where it is used (a slow import)
    import pandas as pd

# The notebooks and the config class their parameters cell is generated from.
NOTEBOOK_CONFIGS: dict[str, type] = {
    "01_explore_data": ExploreConfig,
    "02_train": TrainConfig,
    "03_evaluate": EvalConfig,
    "04_visualize": VisualizeConfig,
    "05_compare_runs": CompareConfig,
}
SMOKE_ENV = "SEGKIT_SMOKE"
SMOKE_DATA = "data/synthetic-smoke"  # 6 train / 3 val images of 64x128, generated on first use
SMOKE_RUNS = "runs/smoke"
SMOKE_RUN = f"{SMOKE_RUNS}/train"
# What papermill can inject (`-p`, `-y`, `-f`): names bound to anything else were not injected.
_INJECTABLE = (str, int, float, bool, type(None), list, tuple, dict)


# ----------------------------------------------------------------------------- parameters


def snapshot(namespace: dict[str, Any]) -> frozenset[str]:
    """The names defined before the parameters cell (call it at the end of the imports cell)."""
    return frozenset(namespace)


def parameters_source(cls: type) -> str:
    """The text of a notebook's parameters cell: `name: type = default  # help`, one field a line."""
    helps, types = parameter_help(cls), field_types(cls)
    lines = [f"{f.name}: {_annotation(types[f.name])} = {f.default!r}  # {helps[f.name]}" for f in fields(cls)]
    return "\n".join(lines)


def sync_parameter_cells(notebook_dir: str | Path = "notebooks") -> list[str]:
    """Rewrite each notebook's `parameters` cell from its config class (run after editing config.py).

    Returns:
        The notebooks whose cell changed (`make notebook-params` prints them).
    """
    import nbformat

    changed = []
    for name, cls in NOTEBOOK_CONFIGS.items():
        path = Path(notebook_dir) / f"{name}.ipynb"
        nb = nbformat.read(path, as_version=4)
        cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
        if len(cells) != 1:
            raise ConfigError(
                f"{path}: expected one cell tagged 'parameters', found {len(cells)}; "
                "tag the cell of literals (View > Cell Toolbar > Tags in Jupyter)"
            )
        source = parameters_source(cls)
        if cells[0].source != source:
            cells[0].source = source
            nbformat.write(nb, path)
            changed.append(str(path))
    return changed


def parameter_help(cls: type) -> dict[str, str]:
    """`field_help` as the parameters cell writes it: `"" = auto` becomes `"": auto`.

    papermill's inspector (`papermill --help-notebook`) skips every line holding more than one
    `=`, so the help text of a parameter line must not contain one.
    """
    return {name: text.replace(" = ", ": ").replace("=", ":") for name, text in field_help(cls).items()}


def _annotation(typ: Any) -> str:
    if typing.get_origin(typ) is tuple:
        return f"tuple[{', '.join(a.__name__ for a in typing.get_args(typ))}]"
    return typ.__name__


def unknown_parameters(cls: type, namespace: dict[str, Any], before: frozenset[str]) -> list[str]:
    """Public names bound since `before` to injectable values that are not fields of `cls`.

    In a Jupyter kernel the names are further limited to those the latest parameters cell and
    papermill's injected cell assign (from IPython's input history), so that re-running the
    config cell after later cells, or after fixing a typo, does not flag their variables.
    """
    valid = {f.name for f in fields(cls)}
    new = {
        name
        for name, value in namespace.items()
        if name not in before and name not in valid and not name.startswith("_") and isinstance(value, _INJECTABLE)
    }
    cells = _parameter_cells(namespace.get("In"), valid)
    if cells is not None:
        new &= _assigned_names(cells[0]) | _assigned_names(cells[1])
    return sorted(new)


def injected_names(namespace: dict[str, Any], valid: set[str]) -> set[str]:
    """The names papermill injected (`-p NAME VALUE`), read from IPython's input history."""
    cells = _parameter_cells(namespace.get("In"), valid)
    return _assigned_names(cells[1]) if cells is not None else set()


def _parameter_cells(history: Any, valid: set[str]) -> tuple[str, str] | None:
    """(latest parameters cell, papermill's injected cell right after it or "") in IPython's `In`."""
    if not isinstance(history, list):
        return None
    for i in range(len(history) - 1, -1, -1):
        # The injected cell may hold many fields too; the parameters cell is the one before it.
        if len(_assigned_names(history[i]) & valid) * 2 >= len(valid) and not _is_injected(history[i]):
            following = history[i + 1] if i + 1 < len(history) else ""
            return history[i], following if _is_injected(following) else ""
    return None


def _is_injected(source: str) -> bool:
    # papermill writes its cell as "# Parameters" followed by `name = value` lines.
    return source.lstrip().startswith("# Parameters")


def _assigned_names(source: str) -> set[str]:
    """Names a cell assigns at top level (`x = 1`, `x: int = 1`); none if it is not plain Python."""
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:  # IPython magics and shell escapes
        return set()
    names = set()
    for node in tree.body:
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def config_from_namespace(cls: type, namespace: dict[str, Any], before: frozenset[str]) -> Any:
    """Build the config from the notebook's globals: parameters cell plus papermill's injected cell.

    Precedence, highest first: the values the user set, the smoke overrides when
    `SEGKIT_SMOKE=1`, the preset (TrainConfig), the defaults. Set means injected by papermill
    (`-p epochs 20` wins over a preset, like `--epochs 20` on the command line) or, in the
    parameters cell, different from the dataclass default: an edited value equal to the default
    cannot be told from an untouched one, so a preset fills it. A TrainConfig is then resolved
    as `segkit train` resolves it (`segkit.launch.resolve_train_config`): with `resume`, the run's
    own settings fill what was left at its default; on Kaggle a time budget fits the session.

    Args:
        cls: TrainConfig, EvalConfig, VisualizeConfig, ExploreConfig or CompareConfig.
        namespace: `globals()` of the notebook.
        before: `snapshot(globals())` taken in the imports cell.

    Returns:
        The validated config. Unknown names raise ConfigError listing the valid ones; ill-typed
        values raise the config's own message.
    """
    unknown = unknown_parameters(cls, namespace, before)
    if unknown:
        try:
            from_dict(cls, {name: namespace[name] for name in unknown})
        except ConfigError as e:
            raise ConfigError(
                f"{e}. papermill -p NAME VALUE accepts only these names. (Working interactively? A name "
                "assigned by a later cell also counts: restart the kernel and run from the top.)"
            ) from None
    names = {f.name for f in fields(cls)}
    values = {k: v for k, v in namespace.items() if k in names}
    types = field_types(cls)
    explicit = {
        f.name for f in fields(cls) if f.name in values and coerce(f.name, values[f.name], types[f.name]) != f.default
    }
    explicit |= injected_names(namespace, names)
    cfg = from_dict(cls, preset_values(values, explicit) if cls is TrainConfig else values)
    if smoke():
        overrides = {k: v for k, v in smoke_overrides(cls).items() if k not in explicit}
        if getattr(cfg, "resume", False):
            overrides.pop("overwrite", None)  # resume and overwrite exclude each other
        cfg = dataclasses.replace(cfg, **overrides)
        explicit |= set(overrides)
    if cls is TrainConfig:  # what will train: preset, a resumed run's own settings, the Kaggle budget
        cfg = resolve_train_config(cfg, explicit)
    return cfg


def config_table(cfg: Any) -> pd.DataFrame:
    """The config as a table: value, default and help of each field (changed values marked *)."""
    import pandas as pd

    helps = field_help(type(cfg))
    rows = [
        {
            "field": f.name + (" *" if getattr(cfg, f.name) != f.default else ""),
            "value": _show(getattr(cfg, f.name)),
            "default": _show(f.default),
            "help": helps.get(f.name, ""),
        }
        for f in fields(cfg)
    ]
    return pd.DataFrame(rows).set_index("field")


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return "x".join(map(str, value))
    return repr(value) if value == "" else str(value)


# ----------------------------------------------------------------------------- smoke switch


def smoke() -> bool:
    """True when `SEGKIT_SMOKE=1`: every notebook shrinks to seconds (tests, CI)."""
    return os.environ.get(SMOKE_ENV, "0").strip().lower() in ("1", "true", "yes")


def smoke_overrides(cls: type) -> dict[str, Any]:
    """The fields the smoke switch changes for a config class (tiny data, model and schedule).

    Calling it generates the smoke data set in `data/synthetic-smoke` (once; ~1 s).
    """
    data_root = ensure_smoke_data()
    if cls is TrainConfig:
        return {
            "data_root": data_root,
            "run_dir": SMOKE_RUN,
            "model": "unet",
            "base_channels": 8,
            "depth": 3,
            "image_size": (64, 128),
            "epochs": 1,
            "batch_size": 2,
            "num_workers": 0,
            "time_budget": 0.0,
            "eval_every": 1,
            "num_vis": 2,
            "log_every": 1,
            "overwrite": True,
            "dashboard": False,
        }
    if cls is EvalConfig:
        return {"run_dir": SMOKE_RUN, "data_root": data_root, "max_images": 3}
    if cls is VisualizeConfig:
        return {"run_dir": SMOKE_RUN, "data_root": data_root, "num_samples": 2}
    if cls is ExploreConfig:
        return {"data_root": data_root, "num_samples": 2}
    if cls is CompareConfig:
        return {"runs_dir": SMOKE_RUNS}
    raise ConfigError(f"no smoke overrides for {cls.__name__}; expected one of the notebook configs")


def ensure_smoke_data(root: str = SMOKE_DATA) -> str:
    """Generate (or reuse) the smoke data set and return its root."""
    from segkit.data.synthetic import generate_synthetic

    generate_synthetic(Path(root), num_train=6, num_val=3, image_size=(64, 128), seed=0, overwrite=True)
    return root


# ----------------------------------------------------------------------------- environment


def use_project_root() -> Path:
    """Run from the repository root when started in `notebooks/` (JupyterLab, nbval do that), and
    show segkit's log in the notebook: INFO as plain output, warnings on stderr (red).

    Relative paths (`runs/train`, `data/cityscapes`) then mean the same in a notebook as on the
    command line. Elsewhere (Kaggle's /kaggle/working) the working directory is left alone.

    Returns:
        The working directory.
    """
    setup_logging()
    here = Path.cwd()
    if here.name == "notebooks" and (here.parent / "segkit" / "__init__.py").is_file():
        os.chdir(here.parent)
    return Path.cwd()
