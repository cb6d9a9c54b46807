"""Training runs side by side: `segkit runs [DIR]` and notebook 05.

`find_run_dirs` finds the run directories under a folder; `read_run` reads one into a `RunRow`
(model, encoder, size, epochs done/asked, training time, status, best val mIoU with its protocol,
and what is wrong with the folder); `runs_table` is the DataFrame notebook 05 shows and
`format_runs` the text `segkit runs` prints; `run_histories` are the history.csv files the curves
are drawn from; `speed_tables` the speed.json `segkit benchmark` wrote beside a run's checkpoint.
A broken folder (unreadable JSON, a truncated checkpoint, missing files) gives a row that says
what is wrong, never an exception.

Status comes from last.pth's saved status (`run.saved_state`) and from train.lock, which the
training process holds while it runs (`run.training_now`): a run whose last.pth says "running"
but whose lock nobody holds ended without saving how (killed or crashed).
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segkit.checkpoint import load_checkpoint
from segkit.config import CompareConfig
from segkit.errors import CheckpointError, SegkitError
from segkit.labels import CITYSCAPES
from segkit.metrics import protocol_text
from segkit.reflect import add_config_flags, config_from_args
from segkit.rundir import RUN_FILES, Status, saved_state, training_now

if TYPE_CHECKING:  # pandas is imported where it is used (a slow import)
    import pandas as pd

# A folder holding any of these is a run directory (its subfolders are not searched).
RUN_SIGNS = tuple(n for n in RUN_FILES if n not in ("class_counts.json", "dashboard.json"))
COLUMNS = (
    "run",
    "model",
    "encoder",
    "image size",
    "classes",
    "epochs",
    "time",
    "status",
    "val mIoU %",
    "protocol",
    "note",
)


@dataclass
class RunRow:
    """One run directory as `segkit runs` shows it; fields it could not read stay None."""

    path: str  # the run directory
    model: str | None = None  # architecture (config.json)
    encoder: str | None = None  # smp/timm encoder, "" = segkit's own U-Net
    image_size: str | None = None  # training size, "HxW"
    classes: str | None = None  # the label space trained in, e.g. "camvid-11" (config.json; older runs: cityscapes)
    eval_resolution: str | None = None  # validation during training: label or train (config.json)
    epochs_done: int | None = None  # epochs completed (last.pth)
    epochs: int | None = None  # epochs asked for (config.json)
    minutes: float | None = None  # training wall time over all sessions (last.pth)
    status: Status = Status.UNKNOWN  # how the run stands or ended; the table shows its `text`
    miou: float | None = None  # best model's val mIoU (0..1), only together with `protocol`
    protocol: str = ""  # how `miou` was measured (label space, resolution, inference, split, images)
    notes: list[str] = field(default_factory=list)  # what is wrong or worth knowing

    def cells(self) -> dict[str, Any]:
        """The row under `COLUMNS` (missing values as "?")."""
        size = self.image_size or "?"
        epochs = (
            f"{'?' if self.epochs_done is None else self.epochs_done}/{'?' if self.epochs is None else self.epochs}"
        )
        return {
            "run": self.path,
            "model": self.model or "?",
            "encoder": _encoder(self.encoder),
            "image size": size,
            "classes": self.classes or "?",
            "epochs": epochs,
            "time": _duration(self.minutes),
            "status": self.status.text,
            "val mIoU %": None if self.miou is None else round(100 * self.miou, 1),
            "protocol": self.protocol,
            "note": "; ".join(self.notes),
        }


def _duration(minutes: float | None) -> str:
    if minutes is None:
        return "?"
    return f"{minutes * 60:.0f} s" if minutes < 1 else f"{minutes:.1f} min" if minutes < 60 else f"{minutes / 60:.1f} h"


def _encoder(encoder: str | None) -> str:
    return "?" if encoder is None else encoder or "(own U-Net)"


# ----------------------------------------------------------------------------- finding and reading


def find_run_dirs(root: str | Path) -> list[Path]:
    """The run directories in `root` (or `root` itself), at any depth, sorted.

    Raises:
        SegkitError: `root` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise SegkitError(
            f"{root} is not a folder: expected a folder of runs (default: runs/) or one run directory. "
            "Train one first: segkit train --run-dir runs/NAME"
        )
    found = []
    for folder, subdirs, files in os.walk(root):
        if any(name in files for name in RUN_SIGNS):
            found.append(Path(folder))
            subdirs.clear()  # tb/, figures/, cache/ are the run's own
        subdirs.sort()
    return sorted(found)


def read_run(run_dir: str | Path) -> RunRow:
    """One run directory read back; what cannot be read is said in `notes`, never raised."""
    run_dir = Path(run_dir)
    row = RunRow(str(run_dir))
    config = _read_json(run_dir / "config.json", row) or {}
    cfg = config.get("config") if isinstance(config.get("config"), dict) else {}
    row.model, row.encoder, row.epochs = cfg.get("model"), cfg.get("encoder"), cfg.get("epochs")
    row.eval_resolution = cfg.get("eval_resolution")
    if config:
        space = config.get("space")
        row.classes = f"{space['name']}-{len(space['classes'])}" if isinstance(space, dict) else CITYSCAPES.tag
    if isinstance(cfg.get("image_size"), list):
        row.image_size = "x".join(map(str, cfg["image_size"]))
    state = _read_state(run_dir, row)
    if state is not None:
        row.epochs_done, row.minutes = state.get("epoch"), state.get("elapsed_seconds", 0.0) / 60
    metrics = _read_json(run_dir / "metrics.json", row)
    _best_miou(row, run_dir, metrics)
    row.status = _status(row, run_dir, state, metrics)
    return row


def list_runs(root: str | Path) -> list[RunRow]:
    """Every run directory under `root`, read (`read_run`)."""
    return [read_run(d) for d in find_run_dirs(root)]


def _read_json(path: Path, row: RunRow) -> dict | None:
    if not path.is_file():
        if path.name == "config.json":
            row.notes.append("no config.json")
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        row.notes.append(f"{path.name} is unreadable ({str(e).splitlines()[0][:80]})")
        return None
    if not isinstance(data, dict):
        row.notes.append(f"{path.name} holds {type(data).__name__}, not an object")
        return None
    return data


def _read_state(run_dir: Path, row: RunRow) -> dict | None:
    try:
        return saved_state(run_dir)
    except (CheckpointError, KeyError, TypeError):
        row.notes.append("last.pth is unreadable (truncated, or not a segkit checkpoint): epochs and status unknown")
        return None


def _best_miou(row: RunRow, run_dir: Path, metrics: dict | None) -> None:
    """The best model's val mIoU with its protocol: metrics.json, else best_model.pth's validation."""
    source = metrics
    if source is None and (run_dir / "best_model.pth").is_file():
        try:
            source = load_checkpoint(run_dir / "best_model.pth", mmap=True).get("metrics")
        except CheckpointError:
            row.notes.append("best_model.pth is unreadable (truncated, or not a segkit checkpoint)")
            return
        if source is not None:
            row.notes.append("mIoU from best_model.pth's validation: no final evaluation (metrics.json) yet")
    if source is None:
        return
    try:
        row.protocol, row.miou = protocol_text(source), float(source["miou"])
    except (KeyError, TypeError, ValueError, AttributeError):
        row.notes.append("its mIoU has no readable protocol, so it is not shown")


def _status(row: RunRow, run_dir: Path, state: dict | None, metrics: dict | None) -> Status:
    holder = training_now(run_dir)
    if holder:
        row.notes.append(f"training now: {holder}")
        return Status.RUNNING
    saved = _saved_status(state)
    resume = f"continue: segkit train --run-dir {run_dir} --resume"
    if saved is None:
        if state is not None:
            row.notes.append(f"last.pth holds an unknown status {state.get('status')!r}")
            return Status.UNKNOWN
        if (run_dir / "config.json").is_file() and not (run_dir / "last.pth").exists():
            row.notes.append("no last.pth: training stopped before its first epoch was saved")
            return Status.FAILED
        return Status.UNKNOWN
    if saved == Status.RUNNING:
        row.notes.append(
            f"the training process ended during epoch {state.get('epoch', 0) + 1} without saving how "
            f"(killed or crashed); {resume}"
        )
        return Status.FAILED
    if metrics is None and (run_dir / "best_model.pth").is_file():
        row.notes.append(
            f"no metrics.json: the final evaluation did not finish (segkit evaluate --checkpoint "
            f"{run_dir / 'best_model.pth'})"
        )
    if saved.interrupted:
        row.notes.append(resume)
    return saved


def _saved_status(state: dict | None) -> Status | None:
    try:
        return None if state is None else Status(state.get("status"))
    except ValueError:
        return None


# ----------------------------------------------------------------------------- showing


def runs_table(rows: list[RunRow]) -> pd.DataFrame:
    """The rows (`list_runs`) as a DataFrame with `COLUMNS`, indexed by run directory."""
    import pandas as pd

    return pd.DataFrame([r.cells() for r in rows], columns=list(COLUMNS)).set_index("run")


def format_runs(rows: list[RunRow]) -> str:
    """The text table `segkit runs` prints; a run's notes follow it on indented lines."""
    cells = [{k: "" if v is None else str(v) for k, v in r.cells().items()} for r in rows]
    shown = [c for c in COLUMNS if c != "note"]
    widths = {c: max([len(c)] + [len(x[c]) for x in cells]) for c in shown}
    lines = ["  ".join(c.ljust(widths[c]) for c in shown).rstrip()]
    for row, cell in zip(rows, cells):
        lines.append("  ".join(cell[c].ljust(widths[c]) for c in shown).rstrip())
        lines += [f"    ! {note}" for note in row.notes]
    return "\n".join(lines)


def run_histories(rows: list[RunRow]) -> dict[str, pd.DataFrame]:
    """{label: history.csv} of each run that has one; the label names the run and how its
    validation was measured during training (eval_resolution, whole-image, val)."""
    import pandas as pd

    out = {}
    for row in rows:
        path = Path(row.path) / "history.csv"
        try:
            history = pd.read_csv(path)
        except (OSError, ValueError):
            continue  # no or unreadable history.csv: read_run's notes say so
        if {"epoch", "train_loss", "val_loss", "miou"} <= set(history.columns):
            resolution = "label" if row.eval_resolution == "label" else f"train {row.image_size or '?'}"
            out[f"{row.path} (val at {resolution} resolution)"] = history
    return out


def _speed_records(rows: list[RunRow]) -> Iterator[tuple[RunRow, dict]]:
    """(row, its speed.json) for each run with a readable one beside its checkpoint (what `segkit benchmark
    --checkpoint RUN/best_model.pth` writes); runs never benchmarked, or with another file there, are left out."""
    from segkit.backends import SPEED_FILE

    for row in rows:
        try:
            record = json.loads((Path(row.path) / SPEED_FILE).read_text())
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and isinstance(record.get("backends"), dict) and record.get("image_size"):
            yield row, record


def speed_tables(rows: list[RunRow]) -> dict[str, str]:
    """{run directory: its speed table} for each benchmarked run, as `segkit benchmark` prints it."""
    from segkit.benchmark import format_table  # imports torch: only when asked

    tables = {}
    for row, record in _speed_records(rows):
        try:
            tables[row.path] = format_table(record)
        except (KeyError, TypeError, ValueError):
            continue  # not a speed.json segkit benchmark wrote
    return tables


def speed_points(rows: list[RunRow]) -> list[dict[str, Any]]:
    """Each benchmarked backend of each run as a point of mIoU against end-to-end frames/s.

    A backend's mIoU is the one `segkit benchmark --data-root` scored for it (at the benchmark's frame
    size); else, for a lossless backend (its class maps equal eager's), the run's own val mIoU; a lossy
    backend that was never scored is left out (its mIoU is not known).

    Returns:
        [{"run", "backend", "image_size" ("HxW"), "end_to_end_fps", "miou" (0..1)}], in the rows' order.
    """
    points = []
    for row, record in _speed_records(rows):
        size = "x".join(str(n) for n in record["image_size"])
        for name, rec in record["backends"].items():
            if not isinstance(rec, dict) or not rec.get("end_to_end_fps"):
                continue  # unavailable or failed here
            miou = rec.get("miou")
            if miou is None and rec.get("outputs_equal") is True:
                miou = row.miou
            if miou is not None:
                fps = rec["end_to_end_fps"]
                points.append(
                    {"run": row.path, "backend": name, "image_size": size, "end_to_end_fps": fps, "miou": miou}
                )
    return points


# ----------------------------------------------------------------------------- CLI


def register_cli(sub: Any) -> None:
    """`segkit runs [DIR]`."""
    p = sub.add_parser(
        "runs",
        help="list training runs side by side: model, epochs, time, status, mIoU with protocol",
        description=__doc__.split("\n\n")[0],
    )
    add_config_flags(p, CompareConfig)
    p.set_defaults(func=cmd_runs)


def cmd_runs(args: argparse.Namespace) -> int:
    cfg, _ = config_from_args(CompareConfig, args)
    rows = list_runs(cfg.runs_dir)
    if not rows:
        print(f"no run directories under {cfg.runs_dir} (a run directory holds config.json, last.pth, ...)")
        return 0
    print(format_runs(rows))
    return 0
