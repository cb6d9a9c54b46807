"""The run directory: what training writes and everything after it reads. Files only.

    runs/<name>/  config.json  last.pth  best_model.pth  history.csv  metrics.json  tb/  figures/  train.lock

`Run` creates the folder (never clobbering a finished run, nor one another process is training
into: train.lock is held while training), writes config.json, checkpoints, history.csv and
metrics.json, and reads last.pth back for `--resume`. Only global rank 0 writes, on its own host: the
other ranks (other nodes) never read the folder but get what they need from rank 0. What
goes into TensorBoard is `segkit.tb`'s job; the training loop is `segkit.engine`'s.
"""

from __future__ import annotations

import csv
import json
import platform
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Any

import torch
from torch import nn

import segkit
from segkit import runtime
from segkit.checkpoint import atomic_save, load_checkpoint
from segkit.config import TrainConfig
from segkit.errors import ConfigError
from segkit.files import atomic_write, hold_lock, lock_holder, remove_stale_temp_files, write_json
from segkit.labels import CITYSCAPES, LabelSpace, space_of_record
from segkit.models import checkpoint_payload, facts
from segkit.reflect import from_dict, to_dict
from segkit.runtime import log

# Files segkit writes into a run directory: --overwrite removes these and nothing else.
RUN_FILES = (
    "config.json",
    "last.pth",
    "best_model.pth",
    "history.csv",
    "metrics.json",
    "class_counts.json",
    "dashboard.json",
)
RUN_DIRS = ("tb", "figures", "cache")
# A folder holds a run once training saved something; config.json and tb/ alone are a failed start.
RUN_MARKERS = ("last.pth", "best_model.pth", "history.csv")
# Held (a POSIX lockf lock) by the process training into the folder; the OS drops it when that process ends.
# Not in RUN_FILES: --overwrite must never unlink a lock another process may hold.
LOCK_FILE = "train.lock"
# Fields that may change when a run is resumed; every other field must match the saved run.
RESUMABLE_FIELDS = frozenset(
    {
        "data_root",
        "run_dir",
        "epochs",
        "time_budget",
        "eval_every",
        "log_every",
        "num_workers",
        "device",
        "resume",
        "overwrite",
        "dashboard",
        "num_vis",
        "compile",
        "max_val_images",
        "preset",
        "nproc",
        "cache",
    }
)


class Status(str, Enum):
    """How a training run stands, or how it ended (last.pth keeps the value)."""

    RUNNING = "running"  # training, or killed/crashed before it could say otherwise
    COMPLETED = "completed"  # every epoch trained
    TIME_BUDGET = "time_budget"  # stopped cleanly by --time-budget
    SIGTERM = "SIGTERM"  # stopped cleanly by SIGTERM (Kaggle's session end)
    SIGINT = "SIGINT"  # stopped cleanly by Ctrl-C
    STOPPED = "stopped"  # stopped at a step limit (`fit(stop_at_step=...)`)
    # What `segkit runs` concludes from a run directory's files; training never saves these two.
    FAILED = "failed"  # the process ended without saving how (killed, crashed), or before its first epoch
    UNKNOWN = "unknown"  # last.pth unreadable or holding a status this segkit does not know

    def __str__(self) -> str:  # the value in logs and f-strings, on every Python version
        return self.value

    @property
    def text(self) -> str:
        """The words `segkit runs` shows."""
        return _STATUS_TEXT[self]

    @property
    def interrupted(self) -> bool:
        """Stopped before its epochs were done by something other than the budget: `--resume` continues it."""
        return self in (Status.SIGTERM, Status.SIGINT, Status.STOPPED)


_STATUS_TEXT = {
    Status.RUNNING: "running",
    Status.COMPLETED: "finished",
    Status.TIME_BUDGET: "stopped by budget",
    Status.SIGTERM: "interrupted (SIGTERM)",
    Status.SIGINT: "interrupted (Ctrl-C)",
    Status.STOPPED: "stopped at a step limit",
    Status.FAILED: "failed",
    Status.UNKNOWN: "unknown",
}
SIGNALS = (Status.SIGTERM, Status.SIGINT)  # stops that leave seconds at most: save, do not evaluate


@dataclass
class HistoryRow:
    """One epoch of history.csv: its columns are these fields, in this order."""

    epoch: int  # the epoch (0-based)
    train_loss: float  # mean training loss over the epoch's steps
    val_loss: float | None = None  # mean validation loss (None: not validated this epoch)
    miou: float | None = None  # validation mIoU, 0..1
    mean_dice: float | None = None  # validation mean Dice, 0..1
    pixel_accuracy: float | None = None  # validation pixel accuracy, 0..1
    lr: float = 0.0  # learning rate at the epoch's end
    images_per_sec: float = 0.0  # training throughput, all processes together
    minutes: float = 0.0  # training wall time of the run so far, all sessions
    steps: int = 0  # optimizer steps since the run's start

    def as_dict(self) -> dict[str, Any]:
        """The row as plain values: what last.pth, history.csv, `RunSummary.history` and a shown table hold."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> HistoryRow:
        """A row back from `as_dict` (values kept as they are) or from history.csv's text ("" = None)."""
        kept = {f.name: values[f.name] for f in fields(cls) if f.name in values}
        for name, value in kept.items():
            if isinstance(value, str):
                kept[name] = None if value == "" else int(value) if name in _COUNTS else float(value)
        return cls(**kept)


HISTORY_COLUMNS = tuple(f.name for f in fields(HistoryRow))
_COUNTS = ("epoch", "steps")  # history.csv's integer columns


@dataclass
class TrainState:
    """Where training stands; saved in last.pth as a plain dict (`to_dict`) and restored by `--resume`."""

    epoch: int = 0  # epochs completed
    step_in_epoch: int = 0  # optimizer steps done in the current, unfinished epoch
    global_step: int = 0  # optimizer steps since the start of the run
    best_miou: float = -1.0  # best validation mIoU so far (-1: none yet)
    best_epoch: int | None = None  # epoch of best_model.pth
    elapsed_seconds: float = 0.0  # wall time of all sessions of this run
    history: list[HistoryRow] = field(default_factory=list)  # one row per epoch (history.csv)
    partial_epoch: dict | None = None  # {"epoch", "loss_sum", "steps"} of an epoch a stop split in two
    status: Status = Status.RUNNING  # how the run stands

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> TrainState:
        """The state last.pth saved; rows of an unfinished epoch are dropped (it is trained again)."""
        state = cls(**{f.name: saved[f.name] for f in fields(cls) if f.name in saved})
        state.history = [HistoryRow.from_dict(r) for r in state.history if r["epoch"] < state.epoch]
        state.status = Status(state.status)
        return state

    def to_dict(self) -> dict[str, Any]:
        """Plain values only (last.pth is loaded with weights_only=True)."""
        return {**asdict(self), "status": Status(self.status).value}  # asdict turns the rows into dicts too


@dataclass(frozen=True)
class RunSummary:
    """What a training run came to: `fit` returns it; `RunSummary.from_run_dir` reads it back from the files."""

    run_dir: str  # the run directory
    status: Status  # how it ended
    epochs_done: int  # epochs completed
    best_miou: float  # best validation mIoU (-1: never validated)
    metrics: dict | None  # metrics.json: the final evaluation with its protocol (None: none yet)
    history: list[dict]  # history.csv's rows (`HistoryRow.as_dict()`: what a notebook shows)

    @classmethod
    def of(cls, run_dir: Path, state: TrainState, metrics: dict | None) -> RunSummary:
        """The summary of a run in `state` (the one way it is built)."""
        rows = [row.as_dict() for row in state.history]
        return cls(str(run_dir), Status(state.status), state.epoch, state.best_miou, metrics, rows)

    @classmethod
    def from_run_dir(cls, run_dir: Path) -> RunSummary:
        """The summary of a run another process trained (torchrun), from last.pth and metrics.json."""
        run_dir = Path(run_dir)
        saved = saved_state(run_dir)
        state = TrainState.from_dict(saved) if saved is not None else TrainState()
        state.history = read_history(run_dir / "history.csv")  # every row, a partial epoch's too
        metrics_file = run_dir / "metrics.json"
        return cls.of(run_dir, state, json.loads(metrics_file.read_text()) if metrics_file.is_file() else None)


def environment_info() -> dict[str, Any]:
    """Versions and hardware, recorded in config.json so a number can be traced to its setup."""
    return {
        "segkit": segkit.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cuda": torch.version.cuda,
        "git_commit": git_commit(),
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "world_size": runtime.world_size(),
    }


def git_commit() -> str | None:
    """The commit of the segkit checkout (None when installed from a wheel)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def write_history(path: Path, rows: Sequence[HistoryRow]) -> None:
    """history.csv: one row per epoch (rewritten whole from the checkpointed history)."""

    def write(f) -> None:
        writer = csv.DictWriter(f, fieldnames=HISTORY_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None else v for k, v in row.as_dict().items()})

    atomic_write(path, write)


def read_history(path: Path) -> list[HistoryRow]:
    """history.csv's rows as `fit` made them (None where empty); [] if absent."""
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [HistoryRow.from_dict(row) for row in csv.DictReader(f)]


def training_now(run_dir: Path) -> str | None:
    """Who is training into `run_dir` right now ("pid 123 on host"), None if nobody.

    Ask from another process than the trainer: a process does not see its own lock (and
    `files.lock_holder` would drop it there; see `files.hold_lock`).
    """
    return lock_holder(Path(run_dir) / LOCK_FILE)


def _busy(run_dir: Path, holder: str) -> ConfigError:
    return ConfigError(
        f"{run_dir} is being trained into right now ({holder}): wait for it to end, stop it, or pick another --run-dir"
    )


def prepare_run_dir(run_dir: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to clobber an existing run unless --resume or --overwrite says what to do."""
    holder = training_now(run_dir)
    if holder:
        raise _busy(run_dir, holder)
    existing = [n for n in RUN_FILES if (run_dir / n).exists()] + [d for d in RUN_DIRS if (run_dir / d).exists()]
    if resume:
        if not (run_dir / "last.pth").exists():
            raise ConfigError(
                f"--resume: there is no {run_dir / 'last.pth'} to continue from"
                + (f" (the folder holds {', '.join(existing)})" if existing else "")
                + ". Start a new run without --resume, or point --run-dir at the run to continue."
                + _several_nodes_hint()
            )
        return
    if not any((run_dir / n).exists() for n in RUN_MARKERS):
        return  # nothing trained here yet (e.g. a start that failed on bad data): reuse the folder
    if not overwrite:
        n = 2
        while Path(f"{run_dir}-{n}").exists():
            n += 1
        raise ConfigError(
            f"run directory {run_dir} already holds a run ({', '.join(existing)}). Use --resume to continue it, "
            f"--overwrite to replace it, or another --run-dir (e.g. {run_dir}-{n})."
        )
    if runtime.is_main():
        for name in existing:
            target = run_dir / name
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        log.warning("--overwrite: removed %s from %s", ", ".join(existing), run_dir)


def _several_nodes_hint() -> str:
    """Where the run directory is under torchrun on several nodes ("" on one machine)."""
    if not runtime.several_nodes():
        return ""
    return (
        f" With several nodes the run directory lives on global rank 0's host, here {runtime.node()}; torchrun's "
        "c10d rendezvous gives rank 0 to the node whose host name sorts first (--node-rank is ignored there). "
        "Start the job with --rdzv-backend static --master-addr <the run's host> --node-rank 0 on that host, "
        "or keep --run-dir on a file system every node shares."
    )


class Run:
    """A training run's directory: config.json, checkpoints, history.csv, metrics.json (rank 0 writes).

    Args:
        cfg: the config being trained (already resolved; see `segkit.launch.resolve_train_config`).
        data: what config.json records about the data (roots, synthetic or not).
    """

    def __init__(
        self, cfg: TrainConfig, data: dict[str, Any], space: LabelSpace = CITYSCAPES, space_from: str = ""
    ) -> None:
        self.cfg = cfg
        self.run_dir = Path(cfg.run_dir)
        self.data = data
        self.space = space  # the label space the run trains in: every checkpoint carries it
        self.space_from = space_from  # where it came from, in one line (`labels.resolve_space`)
        self.resume_ckpt: dict | None = None  # last.pth of a resumed run, read once
        self._lock: Any = None  # train.lock, held by rank 0 until `release`

    @classmethod
    def create(
        cls, cfg: TrainConfig, data: dict[str, Any], space: LabelSpace = CITYSCAPES, space_from: str = ""
    ) -> Run:
        """Check the folder (refuse to clobber; resume must match the saved run and its space), write config.json."""
        run = cls(cfg, data, space, space_from)

        def check() -> dict | None:  # rank 0, on the host that holds the run directory
            prepare_run_dir(run.run_dir, cfg.resume, cfg.overwrite)
            if run.run_dir.is_dir():
                for stale in remove_stale_temp_files(run.run_dir):
                    log.warning("removed %s, left by an interrupted write", stale.name)
            if not cfg.resume:
                return None
            ckpt = load_checkpoint(run.run_dir / "last.pth")
            check_resumable(cfg, ckpt["config"])
            check_same_space(space_of_record(ckpt), space, run.run_dir)
            return ckpt

        # Every rank gets rank 0's verdict and last.pth: the other nodes may not see its files.
        run.resume_ckpt = runtime.main_decides(check)
        if runtime.is_main():
            (run.run_dir / "figures").mkdir(parents=True, exist_ok=True)
            run._lock = hold_lock(run.run_dir / LOCK_FILE)
            if run._lock is None:  # another process started in the same folder a moment ago
                raise _busy(run.run_dir, training_now(run.run_dir) or "another process")
            record = {
                "config": to_dict(cfg),
                "data": data,
                "space": space.to_dict(),
                "space_from": space_from,
                "environment": environment_info(),
            }
            write_json(run.run_dir / "config.json", record)
        return run

    def release(self) -> None:
        """Let go of train.lock: nobody trains here any more (the OS does it too if the process dies)."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def restore(self, model: nn.Module, optimizer, scheduler, scaler) -> TrainState:
        """Load everything last.pth saved into the given objects; returns the training state."""
        ckpt, self.resume_ckpt = self.resume_ckpt or load_checkpoint(self.run_dir / "last.pth"), None
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        runtime.set_rng_state(ckpt["rng"])
        state = TrainState.from_dict(ckpt["state"])
        if runtime.is_main():
            log.info(
                "resumed %s at epoch %d, step %d of the epoch (global step %d)",
                self.run_dir,
                state.epoch,
                state.step_in_epoch,
                state.global_step,
            )
        return state

    def save_last(self, model: nn.Module, optimizer, scheduler, scaler, state: TrainState) -> None:
        """last.pth with the full state, then history.csv derived from it (rank 0; all ranks wait)."""
        if runtime.is_main():
            payload = self.model_payload(model)
            payload.update(
                optimizer=optimizer.state_dict(),
                scheduler=scheduler.state_dict(),
                scaler=scaler.state_dict(),
                rng=runtime.rng_state(),
                state=state.to_dict(),
                global_step=state.global_step,
            )
            atomic_save(payload, self.run_dir / "last.pth")
            write_history(self.run_dir / "history.csv", state.history)
        runtime.barrier()

    def save_best(self, model: nn.Module, summary: dict, epoch: int) -> None:
        """best_model.pth: the weights and their validation summary (rank 0)."""
        if runtime.is_main():
            atomic_save(
                {**self.model_payload(model), "epoch": epoch, "metrics": summary}, self.run_dir / "best_model.pth"
            )

    def write_metrics(self, metrics: dict) -> None:
        """metrics.json: the final evaluation with its protocol (rank 0)."""
        if runtime.is_main():
            write_json(self.run_dir / "metrics.json", metrics)

    def model_payload(self, model: nn.Module) -> dict:
        """What any checkpoint carries: weights, how to rebuild the model, how it was trained."""
        return checkpoint_payload(
            model,
            self.cfg.inference_size,  # what predict, evaluate and benchmark run it at
            self.space,
            # Where the encoder's initial weights came from (provenance; rebuilding never fetches them).
            pretrained=facts(model).pretrained,
            config=to_dict(self.cfg),
            data=self.data,  # the data trained on (DataRoots.record): evaluation finds it again
        )


# ----------------------------------------------------------------------------- resume


def _clashes(cfg: TrainConfig, saved_cfg: TrainConfig, skip_defaults: bool) -> list[str]:
    """Fields that may not change on resume but differ (optionally ignoring fields left at their default)."""
    # Without an encoder (segkit's own U-Net) encoder_weights means nothing: never a clash.
    ignore = RESUMABLE_FIELDS | ({"encoder_weights"} if not cfg.encoder and not saved_cfg.encoder else set())
    return [
        f"{f.name} ({getattr(saved_cfg, f.name)!r} in the run, {getattr(cfg, f.name)!r} now)"
        for f in fields(TrainConfig)
        if f.name not in ignore
        and getattr(cfg, f.name) != getattr(saved_cfg, f.name)
        and not (skip_defaults and getattr(cfg, f.name) == f.default)
    ]


def _saved_config(saved: dict) -> TrainConfig:
    return from_dict(TrainConfig, {k: v for k, v in saved.items() if k in {f.name for f in fields(TrainConfig)}})


def _refuse(clashes: list[str]) -> None:
    if clashes:
        raise ConfigError(
            "--resume continues a run with its own settings, but these differ: "
            + "; ".join(clashes)
            + ". Drop them from the command, or start a new run with another --run-dir."
        )


def check_same_space(saved: LabelSpace, now: LabelSpace, run_dir: Path) -> None:
    """Refuse to resume a run in another label space than the one it trained in."""
    if saved != now:
        raise ConfigError(
            f"{run_dir} trained in the {saved.describe()} label space (from {saved.source}); this command's "
            f"data is in {now.describe()} (from {now.source}). A resumed run keeps its classes: pass --classes "
            f"{saved.source if saved.source != 'built-in' else saved.name}, or start a new run (another "
            "--run-dir; --init-from its best_model.pth keeps all but the classifier)."
        )


def check_resumable(cfg: TrainConfig, saved: dict) -> None:
    """Refuse to resume a run with settings (other than RESUMABLE_FIELDS) that differ from its own."""
    _refuse(_clashes(cfg, _saved_config(saved), skip_defaults=False))


def merge_resumed_config(cfg: TrainConfig, saved: dict) -> TrainConfig:
    """The saved run's config, with the resumable fields the user set in `cfg` (the others must match)."""
    saved_cfg = _saved_config(saved)
    _refuse(_clashes(cfg, saved_cfg, skip_defaults=True))
    # Settings left at their default keep the run's own value: `segkit train --run-dir R --resume`
    # continues on the run's data for the run's epochs, not on the defaults.
    defaults = {f.name: f.default for f in fields(TrainConfig)}
    updates = {name: getattr(cfg, name) for name in RESUMABLE_FIELDS if getattr(cfg, name) != defaults[name]}
    return from_dict(TrainConfig, {**to_dict(saved_cfg), **updates, "resume": True, "overwrite": False})


def saved_state(run_dir: Path) -> dict | None:
    """The TrainState last.pth holds, as a plain dict (None without last.pth).

    Read memory-mapped: the weights and optimizer state are not read, so it is quick for any model.
    Raises CheckpointError for an unreadable last.pth.
    """
    last = Path(run_dir) / "last.pth"
    if not last.exists():
        return None
    return dict(load_checkpoint(last, map_location="cpu", mmap=True)["state"])
