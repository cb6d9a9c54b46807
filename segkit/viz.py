"""Pictures of data and results: colour masks, overlays, samples, triptychs, error maps, class
frequencies, curves, confusion matrices."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from segkit.files import atomic_write
from segkit.labels import CITYSCAPES, IGNORE_INDEX, LabelSpace

if TYPE_CHECKING:  # matplotlib, pandas and seaborn are imported where they are used (slow imports)
    import pandas as pd
    from matplotlib.figure import Figure

    from segkit.data.discover import Sample


def overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.5, space: LabelSpace = CITYSCAPES) -> np.ndarray:
    """Blend `space`'s colours of a class-index mask over an RGB image; ignored pixels stay as is.

    Shape: image (H, W, 3) uint8, mask (H, W) -> (H, W, 3) uint8.
    """
    if image.shape[:2] != mask.shape:
        import cv2

        image = cv2.resize(image, (mask.shape[1], mask.shape[0]), interpolation=cv2.INTER_AREA)
    colour = space.to_color(mask).astype(np.float32)
    blend = (1 - alpha) * image.astype(np.float32) + alpha * colour
    out = np.where((mask == IGNORE_INDEX)[..., None], image.astype(np.float32), blend)
    return out.round().astype(np.uint8)


def triptych_array(
    image: np.ndarray, target: np.ndarray, pred: np.ndarray, space: LabelSpace = CITYSCAPES
) -> np.ndarray:
    """Input | ground-truth overlay | prediction overlay side by side, for TensorBoard.

    Shape: image (H, W, 3), target and pred (H, W) -> (H, 3W, 3) uint8.
    """
    shown = [_fit(image, target.shape), overlay(image, target, space=space), overlay(image, pred, space=space)]
    return np.concatenate(shown, axis=1)


def _fit(image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if image.shape[:2] == shape:
        return image
    import cv2

    return cv2.resize(image, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)


def legend_handles(classes: Sequence[int] | None = None, space: LabelSpace = CITYSCAPES) -> list:
    """Matplotlib patches naming the space's colours (all its classes or the given class indices)."""
    from matplotlib.patches import Patch

    classes = range(space.num_classes) if classes is None else classes
    return [Patch(color=space.palette[c] / 255.0, label=space.names[c]) for c in classes]


def plot_triptychs(samples: Sequence[dict], title: str = "", legend: bool = True, space: LabelSpace = CITYSCAPES):
    """Grid of input / ground truth / prediction rows with a legend of class colours.

    Args:
        samples: dicts with "image" (H, W, 3) uint8, "target" and "pred" (H, W) class indices,
            optional "name" and "miou".
        title: figure title (say what the numbers are, e.g. the protocol).
        legend: add the class-colour legend.
        space: the label space of the masks (colours and names).

    Returns:
        The matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    n = len(samples)
    fig, axes = plt.subplots(n, 3, figsize=(12, 2.4 * n + 0.6), squeeze=False)
    for row, s in zip(axes, samples):
        for ax, img, label in zip(
            row,
            (_fit(s["image"], s["target"].shape), space.to_color(s["target"]), space.to_color(s["pred"])),
            ("input", "ground truth", "prediction"),
        ):
            ax.imshow(img)
            ax.set_axis_off()
            ax.set_title(label if "name" not in s or label != "input" else f"{s['name']}", fontsize=8)
        if "miou" in s:
            row[2].set_title(f"prediction (image mIoU {100 * s['miou']:.1f})", fontsize=8)
    present = sorted(
        {
            int(c)
            for s in samples
            for c in np.unique(np.concatenate([s["target"].ravel(), s["pred"].ravel()]))
            if c != IGNORE_INDEX
        }
    )
    if legend and present:
        fig.legend(
            handles=legend_handles(present, space),
            loc="lower center",
            ncol=min(8, len(present)),
            fontsize=7,
            frameon=False,
        )
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.05 if legend else 0, 1, 0.97))
    return fig


def plot_samples(samples: Sequence[Sample], n: int, title: str = "", space: LabelSpace = CITYSCAPES) -> Figure:
    """n image | colour-label overlay pairs, with a legend of the classes present.

    Args:
        samples: `Sample`s (from `list_samples`).
        n: how many to show (the first n).
        title: figure title.
        space: the label space to read them in.

    Returns:
        The matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    from segkit.data.cityscapes import read_sample

    chosen = list(samples)[:n]
    fig, axes = plt.subplots(len(chosen), 2, figsize=(10, 2.6 * len(chosen) + 0.6), squeeze=False)
    present: set[int] = set()
    for (ax_image, ax_overlay), sample in zip(axes, chosen):
        image, label = read_sample(sample, space)
        present |= {int(v) for v in np.unique(label) if v != IGNORE_INDEX}
        ax_image.imshow(image)
        ax_image.set_title(sample.stem, fontsize=8)
        ax_overlay.imshow(overlay(image, label, space=space))
        ax_overlay.set_title("labels (class indices, 255 = ignore left as is)", fontsize=8)
    for ax in axes.ravel():
        ax.set_axis_off()
    handles = legend_handles(sorted(present), space)
    fig.legend(handles=handles, loc="lower center", ncol=8, fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.07, 1, 0.97))
    return fig


def plot_overlays(items: Sequence[dict], title: str = "") -> Figure:
    """Prediction overlaid on the input, next to the error map (red: wrong, black: ignored).

    Args:
        items: dicts with "image" (H, W, 3) uint8, "target" and "pred" (H, W) trainIds and "name"
            (what `segkit.analysis.triptychs` returns).
        title: figure title.

    Returns:
        The matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(items), 2, figsize=(10, 2.6 * len(items) + 0.4), squeeze=False)
    for (ax_pred, ax_err), item in zip(axes, items):
        wrong = (item["pred"] != item["target"]) & (item["target"] != IGNORE_INDEX)
        errors = (0.35 * item["image"]).astype(np.uint8)  # dimmed input under the errors
        errors[wrong] = (230, 30, 30)
        errors[item["target"] == IGNORE_INDEX] = 0
        ax_pred.imshow(overlay(item["image"], item["pred"]))
        ax_pred.set_title(f"{item['name']}: prediction overlay", fontsize=8)
        ax_err.imshow(errors)
        ax_err.set_title(f"errors: {100 * wrong.mean():.1f}% of pixels wrong", fontsize=8)
    for ax in axes.ravel():
        ax.set_axis_off()
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def plot_class_frequencies(table: pd.DataFrame, method: str) -> Figure:
    """Bar charts: pixel fraction per class (log scale) and the loss weights it implies.

    Args:
        table: from `segkit.data.report.class_frequency_table` (columns class, pixels, fraction, weight).
        method: the class weight method, named in the title.

    Returns:
        The matplotlib Figure.
    """
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


def plot_confusion(
    matrix: np.ndarray, class_names: Sequence[str] = CITYSCAPES.names, title: str = "", seaborn: bool = True
):
    """Row-normalised confusion matrix heatmap (rows: ground truth, columns: prediction).

    Classes with no ground-truth pixels are dropped from the rows and columns. `seaborn=False`
    draws with plain matplotlib (what the training loop uses: seaborn takes seconds to import).
    """
    import matplotlib.pyplot as plt

    matrix = np.asarray(matrix, dtype=np.float64)
    keep = np.flatnonzero(matrix.sum(1) > 0)
    norm = matrix[np.ix_(keep, keep)] / matrix[keep].sum(1, keepdims=True)
    names = [class_names[i] for i in keep]
    fig, ax = plt.subplots(figsize=(0.45 * len(keep) + 3, 0.45 * len(keep) + 2.5))
    try:
        if not seaborn:
            raise ImportError
        import seaborn as sns

        sns.heatmap(
            norm,
            ax=ax,
            vmin=0,
            vmax=1,
            cmap="viridis",
            xticklabels=names,
            yticklabels=names,
            annot=len(keep) <= 12,
            fmt=".2f",
            annot_kws={"fontsize": 6},
            cbar_kws={"shrink": 0.7},
        )
    except ImportError:  # seaborn is in the notebooks extra; TensorBoard figures work without it
        im = ax.imshow(norm, vmin=0, vmax=1, cmap="viridis")
        ax.set_xticks(range(len(names)), names, rotation=90)
        ax.set_yticks(range(len(names)), names)
        fig.colorbar(im, ax=ax, shrink=0.7)
    ax.set_xlabel("prediction")
    ax.set_ylabel("ground truth")
    ax.set_title(title or "confusion matrix (row-normalised)", fontsize=9)
    fig.tight_layout()
    return fig


def plot_curves(history, metrics: Sequence[str] = ("miou", "mean_dice", "pixel_accuracy"), title: str = ""):
    """Training curves from history.csv rows: losses on the left, validation metrics on the right.

    Args:
        history: a pandas DataFrame (or path to history.csv) with an `epoch` column.
        metrics: validation columns to draw.
        title: figure title.
    """
    import matplotlib.pyplot as plt
    import pandas as pd

    if isinstance(history, (str, Path)):
        history = pd.read_csv(history)
    from matplotlib.ticker import MaxNLocator

    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(11, 3.5))
    for ax in (ax_loss, ax_metric):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs, not 0.25 of one
    for col in ("train_loss", "val_loss"):
        if col in history and history[col].notna().any():
            ax_loss.plot(history["epoch"], history[col], marker=".", label=col)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.legend()
    for col in metrics:
        if col in history and history[col].notna().any():
            rows = history[history[col].notna()]
            ax_metric.plot(rows["epoch"], rows[col], marker=".", label=col)
    ax_metric.set_xlabel("epoch")
    ax_metric.set_ylim(0, 1)
    if ax_metric.lines:  # no validation yet (eval_every > 1): no legend, and no warning about it
        ax_metric.legend()
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def plot_runs(histories: dict, title: str = ""):
    """Several runs' curves side by side: validation mIoU (left), train and val loss (right).

    Args:
        histories: {label: history.csv DataFrame} (`segkit.compare.run_histories`); one colour per run,
            train loss solid, val loss dashed.
        title: figure title.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fig, (ax_miou, ax_loss) = plt.subplots(1, 2, figsize=(12, 4))
    top = 0.0
    for i, (label, history) in enumerate(histories.items()):
        color = f"C{i % 10}"
        rows = history[history["miou"].notna()]
        ax_miou.plot(rows["epoch"], rows["miou"], marker=".", color=color, label=label)
        top = max([top, *rows["miou"]])
        ax_loss.plot(history["epoch"], history["train_loss"], color=color)
        rows = history[history["val_loss"].notna()]
        ax_loss.plot(rows["epoch"], rows["val_loss"], "--", marker=".", color=color)
    ax_miou.set(xlabel="epoch", ylabel="val mIoU (whole-image, val split)", ylim=(0, min(1.0, 1.2 * top + 0.05)))
    ax_miou.legend(fontsize=7)
    ax_loss.set(xlabel="epoch", ylabel="loss (colours as on the left)")
    ax_loss.legend(
        [Line2D([], [], color="k"), Line2D([], [], color="k", ls="--", marker=".")], ["train", "val"], fontsize=7
    )
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def plot_speed_accuracy(points: Sequence[dict], real_time_fps: float = 30.0, title: str = ""):
    """mIoU against end-to-end frames/s: one colour per run, one point per backend, named.

    Args:
        points: `segkit.compare.speed_points` ({"run", "backend", "image_size", "end_to_end_fps", "miou"}).
        real_time_fps: where the dashed "real time" line is drawn.
        title: figure title.
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    runs = list(dict.fromkeys(p["run"] for p in points))
    for i, run in enumerate(runs):
        mine = [p for p in points if p["run"] == run]
        fps, miou = [p["end_to_end_fps"] for p in mine], [100 * p["miou"] for p in mine]
        ax.scatter(fps, miou, color=f"C{i % 10}", label=f"{Path(run).name} ({mine[0]['image_size']})", zorder=3)
        for p, x, y in zip(mine, fps, miou):
            ax.annotate(p["backend"], (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.axvline(real_time_fps, color="0.5", ls="--", lw=1)
    ax.text(real_time_fps, ax.get_ylim()[0], f" {real_time_fps:g} frames/s", color="0.4", fontsize=7, va="bottom")
    ax.set(xlabel="end-to-end frames/s (segkit benchmark: decode, predict, write)", ylabel="val mIoU %")
    ax.grid(alpha=0.3)
    if runs:
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def figure_to_array(fig) -> np.ndarray:
    """Render a matplotlib figure to an (H, W, 3) uint8 array (for TensorBoard) and close it."""
    import matplotlib.pyplot as plt

    fig.canvas.draw()
    array = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return array


def figure_png(fig, dpi: int = 72) -> bytes:
    """Render a figure to PNG bytes (for a notebook output updated in place) and close it."""
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def save_figure(fig, path: str | Path, dpi: int = 100) -> Path:
    """Save a figure as PNG (creating the folder; written atomically) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=dpi, bbox_inches="tight"), binary=True)


# ----------------------------------------------------------------------------- a frame's class legend (videos)

_FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class LegendLayout:
    """Where each class's swatch and name go in the band at the bottom of a frame of one size."""

    px: int  # swatch side = height of the names' tallest letters above the baseline, pixels
    scale: float  # cv2 font scale that draws letters that tall (measured, see _ink_box)
    thick: int  # stroke width
    pad: int  # margin around the band's rows and gap between swatch and name
    top: int  # first row of the band
    places: tuple[tuple[int, int], ...]  # (x, y) of each entry's swatch's top-left corner
    origins: tuple[tuple[int, int], ...]  # (x, y) of each entry's name: cv2.putText's origin (on the baseline)


LEGEND_ALL_CLASSES = 24  # spaces up to this size show every class in fixed places; larger ones, those in the frame
# Letters whose ink sets the font scale: every upper- and lower-case letter and digit, so that any
# class name's tallest letter is at most as tall as the reference's and the scale needs no names.
_REFERENCE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def _ink_box(text: str, scale: float, thick: int) -> tuple[int, int, int, int]:
    """The pixels cv2.putText draws for `text` with its origin at (0, 0): (left, top, right, bottom),
    right and bottom exclusive, top < 0 above the baseline. Measured on a scratch canvas because
    `getTextSize` does not say where the ink goes the same way in every OpenCV (4.x: Hershey strokes,
    a fixed height and descent; 5.x: another renderer, other glyphs and other metrics)."""
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, thick)
    margin = 2 * (th + base + thick) + 8  # room for whatever the sizes leave out
    canvas = np.zeros((2 * margin + th + base, 2 * margin + tw), np.uint8)
    cv2.putText(canvas, text, (margin, margin + th), _FONT, scale, 255, thick, cv2.LINE_AA)
    rows, cols = np.flatnonzero(canvas.any(1)), np.flatnonzero(canvas.any(0))
    assert rows.size and 0 < rows[0] and rows[-1] < canvas.shape[0] - 1 and 0 < cols[0] < cols[-1] < canvas.shape[1] - 1
    return (
        int(cols[0] - margin),
        int(rows[0] - margin - th),
        int(cols[-1] + 1 - margin),
        int(rows[-1] + 1 - margin - th),
    )


@lru_cache(maxsize=64)
def _scale_for(px: int, thick: int) -> float:
    """The font scale whose tallest letters (of any name: `_REFERENCE`) are at least px pixels high."""
    scale = px / -_ink_box(_REFERENCE, 1.0, thick)[1]
    for _ in range(8):  # stroke width and anti-aliasing do not scale: correct on what is drawn at this size
        drawn = -_ink_box(_REFERENCE, scale, thick)[1]
        if drawn >= px:
            break
        scale *= (px + 0.5) / drawn
    return scale


@lru_cache(maxsize=64)  # one size per clip; every frame asks again
def legend_layout(h: int, w: int, names: tuple[str, ...] = CITYSCAPES.names) -> LegendLayout:
    """Every name in a fixed place (nothing jumps between frames), rows wrapped to the width.
    Letter height follows the frame's height: 9 px at 256 rows (the smallest text that stays readable),
    30 px at 1080. Every size comes from the ink cv2 draws, so the legend stays inside the frame with
    any OpenCV's font. A frame too small for 9-px letters gets smaller ones rather than a legend cut off,
    down to 5 px (smaller are no longer letters); one too small even for that gets no legend (no places)."""
    for px in range(max(9, round(h / 36)), 4, -1):
        layout = _layout(h, w, px, names)
        if layout is not None:
            return layout
    return LegendLayout(0, 0.0, 1, 0, h, (), ())


def _layout(h: int, w: int, px: int, names: tuple[str, ...]) -> LegendLayout | None:
    """The layout with px-high letters, or None when it does not fit in the frame."""
    thick, pad = max(1, round(px / 12)), max(2, px // 3)
    scale = _scale_for(px, thick)
    boxes = [_ink_box(n, scale, thick) for n in names]
    ascent, descent = max(-b[1] for b in boxes), max(0, *(b[3] for b in boxes))
    line = max(px, ascent + descent) + pad  # a row and the gap under it
    spots, x, row = [], pad, 0
    for left, _, right, _ in boxes:
        end = x + px + pad + right - left  # the name's ink ends here
        if end > w - pad and x > pad:
            x, row = pad, row + 1
            end = px + 2 * pad + right - left
        if end > w - pad:
            return None  # one name is wider than the frame
        spots.append((x, row, left))
        x = end + 2 * pad
    top = h - (row + 1) * line - pad
    if top < 0:
        return None
    places = tuple((x, top + pad + r * line) for x, r, _ in spots)
    origins = tuple((x + px + pad - left, y + ascent) for (x, y), (_, _, left) in zip(places, spots))
    return LegendLayout(px, scale, thick, pad, top, places, origins)


def legend_entries(pred: np.ndarray, space: LabelSpace = CITYSCAPES, most: int = 10) -> tuple[list[int], int]:
    """The classes a frame's legend names, and how many more the frame holds.

    A space of up to `LEGEND_ALL_CLASSES` classes: all of them, in order (absent ones are dimmed).
    A larger one (66 or 150 classes): those in `pred`, largest area first, at most `most`.
    """
    counts = np.bincount(pred.ravel(), minlength=256)[: space.num_classes]
    if space.num_classes <= LEGEND_ALL_CLASSES:
        return list(range(space.num_classes)), 0
    present = [int(c) for c in np.argsort(-counts, kind="stable") if counts[c] > 0]
    return present[:most], max(0, len(present) - most)


def draw_legend(image: np.ndarray, pred: np.ndarray, space: LabelSpace = CITYSCAPES) -> np.ndarray:
    """A band at the bottom of the frame naming the classes' colours (`legend_entries`); absent ones dimmed.

    Shape: image (H, W, 3) uint8, pred (h, w) class indices (any size: only which classes occur is read)
    -> (H, W, 3) uint8.
    """
    h, w = image.shape[:2]
    classes, more = legend_entries(pred, space)
    names = tuple([space.names[c] for c in classes] + ([f"+{more} more"] if more else []))
    lg = legend_layout(h, w, names)
    present = np.bincount(pred.ravel(), minlength=256)[: space.num_classes] > 0
    out = image.copy()
    out[lg.top :] = (out[lg.top :] * 0.35).astype(np.uint8)  # darkened, the picture still shows through
    for i, ((x, y), origin) in enumerate(zip(lg.places, lg.origins)):
        c = classes[i] if i < len(classes) else None  # None: the "+N more" entry, a name without a swatch
        here = c is None or present[c]
        text = (255, 255, 255) if here else (120, 120, 120)
        if c is not None:
            colour = space.palette[c].astype(int) if here else space.palette[c] * 0.3 + 60
            corner = (x + lg.px - 1, y + lg.px - 1)
            cv2.rectangle(out, (x, y), corner, tuple(int(v) for v in colour), -1)
            cv2.rectangle(out, (x, y), corner, text, 1)  # an outline: dark colours (truck, car) on the dark band
        cv2.putText(out, names[i], origin, _FONT, lg.scale, text, lg.thick, cv2.LINE_AA)
    return out
