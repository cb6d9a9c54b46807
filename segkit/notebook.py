"""What the notebooks share: parameters -> config, the smoke switch, loading a run, sample figures.

Notebooks orchestrate and this module computes, so that every notebook cell stays short. The
parameters contract:

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
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from segkit.config import (
    EvalConfig,
    ExploreConfig,
    TrainConfig,
    VisualizeConfig,
    apply_preset,
    field_help,
    field_types,
    from_dict,
)
from segkit.errors import CheckpointError, ConfigError

if TYPE_CHECKING:  # pandas and matplotlib are imported where they are used (slow imports)
    import pandas as pd
    from matplotlib.figure import Figure

# The notebooks and the config class their parameters cell is generated from.
NOTEBOOK_CONFIGS: dict[str, type] = {
    "01_explore_data": ExploreConfig, "02_train": TrainConfig, "03_evaluate": EvalConfig, "04_visualize": VisualizeConfig,
}
SMOKE_ENV = "SEGKIT_SMOKE"
SMOKE_DATA = "data/synthetic-smoke"  # 6 train / 3 val images of 64x128, generated on first use
SMOKE_RUN = "runs/smoke/train"
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
            raise ConfigError(f"{path}: expected one cell tagged 'parameters', found {len(cells)}; "
                              "tag the cell of literals (View > Cell Toolbar > Tags in Jupyter)")
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
        name for name, value in namespace.items()
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
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def config_from_namespace(cls: type, namespace: dict[str, Any], before: frozenset[str]) -> Any:
    """Build the config from the notebook's globals: parameters cell plus papermill's injected cell.

    Precedence, highest first: the values the user set, the smoke overrides when
    `SEGKIT_SMOKE=1`, the preset (TrainConfig), the defaults. Set means injected by papermill
    (`-p epochs 20` wins over a preset, like `--epochs 20` on the command line) or, in the
    parameters cell, different from the dataclass default: an edited value equal to the default
    cannot be told from an untouched one, so a preset fills it.

    Args:
        cls: TrainConfig, EvalConfig, VisualizeConfig or ExploreConfig.
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
    cfg = from_dict(cls, {k: v for k, v in namespace.items() if k in names})
    explicit = {f.name for f in fields(cls) if getattr(cfg, f.name) != f.default} | injected_names(namespace, names)
    if smoke():
        overrides = {k: v for k, v in smoke_overrides(cls).items() if k not in explicit}
        if getattr(cfg, "resume", False):
            overrides.pop("overwrite", None)  # resume and overwrite exclude each other
        cfg = dataclasses.replace(cfg, **overrides)
        explicit |= set(overrides)
    if cls is TrainConfig:
        cfg = apply_preset(cfg, explicit)
    return cfg


def config_table(cfg: Any) -> pd.DataFrame:
    """The config as a table: value, default and help of each field (changed values marked *)."""
    import pandas as pd

    helps = field_help(type(cfg))
    rows = [
        {"field": f.name + (" *" if getattr(cfg, f.name) != f.default else ""),
         "value": _show(getattr(cfg, f.name)), "default": _show(f.default), "help": helps.get(f.name, "")}
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
        return {"data_root": data_root, "run_dir": SMOKE_RUN, "model": "unet", "base_channels": 8, "depth": 3,
                "image_size": (64, 128), "epochs": 1, "batch_size": 2, "num_workers": 0, "time_budget": 0.0,
                "eval_every": 1, "num_vis": 2, "log_every": 1, "overwrite": True, "dashboard": False}
    if cls is EvalConfig:
        return {"run_dir": SMOKE_RUN, "data_root": data_root, "max_images": 3}
    if cls is VisualizeConfig:
        return {"run_dir": SMOKE_RUN, "data_root": data_root, "num_samples": 2}
    if cls is ExploreConfig:
        return {"data_root": data_root, "num_samples": 2}
    raise ConfigError(f"no smoke overrides for {cls.__name__}; expected one of the notebook configs")


def ensure_smoke_data(root: str = SMOKE_DATA) -> str:
    """Generate (or reuse) the smoke data set and return its root."""
    from segkit.data.synthetic import generate_synthetic

    generate_synthetic(Path(root), num_train=6, num_val=3, image_size=(64, 128), seed=0, overwrite=True)
    return root


# ----------------------------------------------------------------------------- environment


def use_project_root() -> Path:
    """Run from the repository root when started in `notebooks/` (JupyterLab, nbval do that).

    Relative paths (`runs/train`, `data/cityscapes`) then mean the same in a notebook as on the
    command line. Elsewhere (Kaggle's /kaggle/working) the working directory is left alone.

    Returns:
        The working directory.
    """
    here = Path.cwd()
    if here.name == "notebooks" and (here.parent / "segkit" / "__init__.py").is_file():
        os.chdir(here.parent)
    return Path.cwd()


# ----------------------------------------------------------------------------- data (notebook 01)


def describe_data(roots: Any) -> str:
    """`DataRoots.describe()`, with a banner nobody can miss when the data are synthetic."""
    if not roots.synthetic:
        return roots.describe()
    bar = "!" * 78
    return (f"{bar}\n!! SYNTHETIC DATA, NOT CITYSCAPES: numbers below say nothing about Cityscapes.\n"
            f"!! For real data pass data_root=/path/to/cityscapes or set CITYSCAPES_DATASET.\n{bar}\n{roots.describe()}")


def split_city_counts(samples: dict[str, Sequence[Any]]) -> pd.DataFrame:
    """Images per city and split (a DataFrame: rows cities, columns splits, plus totals)."""
    import pandas as pd

    table = pd.DataFrame({split: Counter(s.city for s in items) for split, items in samples.items()})
    table = table.fillna(0).astype(int).sort_index()
    table.loc["total"] = table.sum()
    return table


def check_table(checks: dict[str, dict]) -> pd.DataFrame:
    """The `check_samples` reports of several splits as one table."""
    import pandas as pd

    rows = {
        split: {"pairs": c["pairs"], "sizes (HxW)": ", ".join(f"{h}x{w} ({n})" for (h, w), n in c["sizes"].items()),
                "label formats": ", ".join(c["label_formats"]), "trainIds present": len([v for v in c["label_values"] if v != 255]),
                "ignored %": round(100 * c["ignored_fraction"], 2)}
        for split, c in checks.items()
    }
    return pd.DataFrame(rows).T


def plot_samples(samples: Sequence[Any], n: int, title: str = "") -> Figure:
    """n image | colour-label overlay pairs, with a legend of the classes present.

    Args:
        samples: `Sample`s (from `list_samples`).
        n: how many to show (the first n).
        title: figure title.

    Returns:
        The matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    from segkit.data import read_image, read_label
    from segkit.viz import legend_handles, overlay

    chosen = list(samples)[:n]
    fig, axes = plt.subplots(len(chosen), 2, figsize=(10, 2.6 * len(chosen) + 0.6), squeeze=False)
    present: set[int] = set()
    for (ax_image, ax_overlay), sample in zip(axes, chosen):
        image, label = read_image(sample.image), read_label(sample.label, sample.label_format)
        present |= {int(v) for v in np.unique(label) if v != 255}
        ax_image.imshow(image)
        ax_image.set_title(sample.stem, fontsize=8)
        ax_overlay.imshow(overlay(image, label))
        ax_overlay.set_title("labels (trainIds, 255 = ignore left as is)", fontsize=8)
    for ax in axes.ravel():
        ax.set_axis_off()
    fig.legend(handles=legend_handles(sorted(present)), loc="lower center", ncol=8, fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.07, 1, 0.97))
    return fig


def class_frequency_table(counts: np.ndarray, weights: np.ndarray) -> pd.DataFrame:
    """Per-class pixels, fraction of labelled pixels and loss weight (a DataFrame)."""
    import pandas as pd

    from segkit.labels import CLASS_NAMES

    counts = np.asarray(counts, dtype=np.int64)
    return pd.DataFrame({"class": CLASS_NAMES, "pixels": counts, "fraction": counts / max(1, counts.sum()),
                         "weight": np.asarray(weights, dtype=np.float64)})


def plot_class_frequencies(table: pd.DataFrame, method: str) -> Figure:
    """Bar charts: pixel fraction per class (log scale) and the loss weights it implies."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, (ax_freq, ax_weight) = plt.subplots(1, 2, figsize=(11, 4.8), sharey=True)
    shown = table[table["pixels"] > 0]  # log scale: absent classes have no bar
    sns.barplot(data=shown, x="fraction", y="class", ax=ax_freq, color="tab:blue")
    ax_freq.set_xscale("log")
    ax_freq.set_title("fraction of labelled pixels (log scale)", fontsize=9)
    sns.barplot(data=shown, x="weight", y="class", ax=ax_weight, color="tab:orange")
    ax_weight.set_title(f"class weights: {method} (mean 1 over present classes)", fontsize=9)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- runs (notebooks 03, 04)


@dataclass
class LoadedRun:
    """A training run read back: config.json, history.csv, metrics.json and the best model."""

    run_dir: Path
    config: dict  # config.json: {"config", "data", "environment", ...}
    history: pd.DataFrame  # history.csv
    metrics: dict | None  # metrics.json (None if training never evaluated)
    model: Any  # torch.nn.Module in eval mode
    ckpt: dict  # the checkpoint dict (image_size, normalization, epoch, ...)
    roots: Any  # DataRoots the evaluation reads
    device: Any  # torch.device


def load_run(run_dir: str | Path, data_root: str = "", checkpoint: str = "", device: str = "auto") -> LoadedRun:
    """Read a run directory written by `segkit train` / notebook 02.

    Args:
        run_dir: the run directory.
        data_root: data to evaluate on; "" = the data the run was trained on.
        checkpoint: a checkpoint file; "" = `<run_dir>/best_model.pth`.
        device: auto, cpu, cuda.

    Returns:
        The run, model loaded.
    """
    import json

    import pandas as pd

    from segkit import runtime
    from segkit.evaluation import checkpoint_path, data_roots_for, load_model

    run_dir = Path(run_dir)
    path = checkpoint_path(str(run_dir), checkpoint)
    if not path.is_file():
        raise CheckpointError(
            f"no checkpoint at {path}: expected a finished training run in {run_dir}. Train first "
            f"(notebook 02, or `segkit train --run-dir {run_dir}`) or set run_dir to an existing run."
        )
    dev = runtime.resolve_device(device)
    model, ckpt = load_model(path, dev)
    config = json.loads((run_dir / "config.json").read_text()) if (run_dir / "config.json").is_file() else {}
    history = pd.read_csv(run_dir / "history.csv") if (run_dir / "history.csv").is_file() else pd.DataFrame()
    metrics = json.loads((run_dir / "metrics.json").read_text()) if (run_dir / "metrics.json").is_file() else None
    return LoadedRun(run_dir, config, history, metrics, model, ckpt, data_roots_for(data_root, ckpt), dev)


def per_class_table(summary: dict) -> pd.DataFrame:
    """Per-class IoU and Dice in % and ground-truth pixels (NaN: class absent, left out of the mean)."""
    import pandas as pd

    table = pd.DataFrame(summary["per_class"]).T.rename(columns={"iou": "IoU %", "dice": "Dice %", "gt_pixels": "gt pixels"})
    for col in ("IoU %", "Dice %"):
        table[col] = (100 * table[col].astype(float)).round(1)
    table["gt pixels"] = table["gt pixels"].astype(np.int64)
    table.loc["mean"] = [round(100 * summary["miou"], 1), round(100 * summary["mean_dice"], 1), table["gt pixels"].sum()]
    return table


def compare_inference(run: LoadedRun, split: str, modes: Sequence[str] = ("whole", "slide", "flip"),
                      eval_resolution: str = "label", max_images: int = 0, batch_size: int = 1,
                      done: dict[str, dict] | None = None) -> pd.DataFrame:
    """Score the same checkpoint with several inference modes: mIoU and wall time of each.

    Args:
        run: the loaded run.
        split: split to evaluate.
        modes: inference modes to compare.
        eval_resolution: "label" (official) or "train".
        max_images: first N images only (0 = all).
        batch_size: images per forward pass.
        done: summaries already computed with the same settings, by mode (not run again).

    Returns:
        A DataFrame indexed by mode: mIoU %, pixel accuracy %, seconds, seconds per image, images.
    """
    import pandas as pd

    from segkit.evaluation import evaluate_checkpoint

    rows = {}
    for mode in modes:
        s = (done or {}).get(mode) or evaluate_checkpoint(run.model, run.ckpt, run.roots, split, mode, eval_resolution,
                                                          batch_size, max_images, run.device)
        images = s["protocol"]["images"]
        rows[mode] = {"mIoU %": round(100 * s["miou"], 2), "pixel acc %": round(100 * s["pixel_accuracy"], 2),
                      "seconds": round(s["seconds"], 2), "s / image": round(s["seconds"] / max(1, images), 3),
                      "images": images}
    return pd.DataFrame(rows).T


def triptychs(run: LoadedRun, samples: Sequence[Any], inference: str = "whole", scores: dict | None = None,
              max_width: int = 1024) -> list[dict]:
    """Input, ground truth and prediction of each sample, for `viz.plot_triptychs`.

    Args:
        run: the loaded run (model and checkpoint).
        samples: `Sample`s to predict.
        inference: whole, slide, flip or ms.
        scores: optional {stem: image mIoU} shown in the titles.
        max_width: larger images are shrunk for display (prediction at full size first).

    Returns:
        [{"image", "target", "pred", "name"[, "miou"]}] with (H, W, 3) and (H, W) arrays.
    """
    from segkit.data import read_image, read_label
    from segkit.evaluation import predict_image

    out = []
    for sample in samples:
        image = read_image(sample.image)
        item = {"image": image, "target": read_label(sample.label, sample.label_format),
                "pred": predict_image(run.model, run.ckpt, image, inference), "name": sample.stem}
        if scores is not None and sample.stem in scores:
            item["miou"] = scores[sample.stem]
        out.append(_shrink(item, max_width))
    return out


def _shrink(item: dict, max_width: int) -> dict:
    import cv2

    h, w = item["target"].shape
    if w <= max_width:
        return item
    size = (max_width, round(h * max_width / w))
    item["image"] = cv2.resize(item["image"], size, interpolation=cv2.INTER_AREA)
    for key in ("target", "pred"):
        item[key] = cv2.resize(item[key], size, interpolation=cv2.INTER_NEAREST_EXACT)
    return item


def per_image_scores(run: LoadedRun, split: str, inference: str = "whole", max_images: int = 0) -> dict[str, float]:
    """{image stem: its own mIoU} over a split (official resolution), for picking failure cases."""
    from segkit.evaluation import evaluate_checkpoint

    s = evaluate_checkpoint(run.model, run.ckpt, run.roots, split, inference, "label", 1, max_images, run.device,
                            per_image=True)
    return {row["name"]: row["miou"] for row in s["per_image"]}


def worst_samples(samples: Sequence[Any], scores: dict[str, float], n: int) -> list[Any]:
    """The n samples with the lowest image mIoU (images without a score are skipped)."""
    scored = [s for s in samples if s.stem in scores and scores[s.stem] == scores[s.stem]]  # NaN != NaN
    return sorted(scored, key=lambda s: scores[s.stem])[:n]


def plot_overlays(items: Sequence[dict], title: str = "") -> Figure:
    """Prediction overlaid on the input, next to the error map (red: wrong, black: ignored).

    Args:
        items: from `triptychs`.
        title: figure title.

    Returns:
        The matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    from segkit.viz import overlay

    fig, axes = plt.subplots(len(items), 2, figsize=(10, 2.6 * len(items) + 0.4), squeeze=False)
    for (ax_pred, ax_err), item in zip(axes, items):
        wrong = (item["pred"] != item["target"]) & (item["target"] != 255)
        errors = (0.35 * item["image"]).astype(np.uint8)  # dimmed input under the errors
        errors[wrong] = (230, 30, 30)
        errors[item["target"] == 255] = 0
        ax_pred.imshow(overlay(item["image"], item["pred"]))
        ax_pred.set_title(f"{item['name']}: prediction overlay", fontsize=8)
        ax_err.imshow(errors)
        ax_err.set_title(f"errors: {100 * wrong.mean():.1f}% of pixels wrong", fontsize=8)
    for ax in axes.ravel():
        ax.set_axis_off()
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def saved_figures(folder: str | Path) -> pd.DataFrame:
    """The PNGs in a figures folder with their sizes (a DataFrame)."""
    import pandas as pd

    files = sorted(Path(folder).glob("*.png"))
    return pd.DataFrame({"file": [str(p) for p in files], "KB": [round(p.stat().st_size / 1024, 1) for p in files]})
