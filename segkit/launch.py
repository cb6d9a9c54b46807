"""What to train, and where: resolve the config once, then train in this process or through torchrun.

`resolve_train_config` decides everything `fit` will train — the preset, a Kaggle chained run,
the resumed run's own settings, the Kaggle session's time budget — so that `fit` trains exactly
the config it is given, and the notebook and `segkit train` show the config that will run.

Notebooks cannot fork CUDA processes, so notebook 02 (and `segkit train --nproc 2`) start
`torchrun` as a subprocess; torchrun does all the process management.
"""

from __future__ import annotations

import codecs
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import IO

import torch

from segkit import progress
from segkit.checkpoint import load_checkpoint
from segkit.config import TrainConfig
from segkit.engine import fit
from segkit.errors import SegkitError
from segkit.kaggle.session import default_time_budget, prepare_chained_resume
from segkit.kaggle_env import on_kaggle
from segkit.live import live_view
from segkit.model_choice import ModelChoice
from segkit.models import architecture_of, check_model, checkpoint_origin, open_checkpoint, weights
from segkit.recipes import apply_preset
from segkit.reflect import explicit_fields, to_argv
from segkit.rundir import HistoryRow, RunSummary, merge_resumed_config, read_history
from segkit.runtime import distributed_env, log


def resolve_train_config(cfg: TrainConfig, explicit: set[str] | None = None) -> TrainConfig:
    """The config training will run: preset, the run's own settings (resume), the model, the weights, the budget.

    Args:
        cfg: the config as the user gave it (flags or notebook parameters).
        explicit: the fields the user set; a preset never replaces them (default: fields off their default).

    Returns:
        The config to pass to `fit` / `train`. On Kaggle with `resume`, a previous kernel's run
        attached as input is first copied into run_dir. The model is checked (names, sizes) and
        its pretrained encoder weights are found on disk or downloaded now, before any data is
        read: when they cannot be had, `WeightsUnavailable` says what to attach. With no time
        budget given, Kaggle gets one that ends inside the 12-hour session.
    """
    explicit = explicit_fields(cfg) if explicit is None else explicit
    cfg = apply_preset(cfg, explicit)
    if cfg.resume and on_kaggle():
        prepare_chained_resume(Path(cfg.run_dir))
    if cfg.resume and (Path(cfg.run_dir) / "last.pth").is_file():
        cfg = merge_resumed_config(cfg, load_checkpoint(Path(cfg.run_dir) / "last.pth")["config"])
    if cfg.init_from and not cfg.resume:
        cfg = _architecture_from(cfg, explicit)  # found on disk or downloaded now, or WeightsUnavailable
    choice = ModelChoice.from_config(cfg, explicit)  # refuses weights asked for a network without an encoder
    if choice.own_network or choice.init_from:
        cfg = replace(cfg, encoder_weights="")  # its TrainConfig default means nothing there
    check_model(choice, cfg.crop, cfg.batch_size)
    if choice.pretrained and not cfg.resume:
        found = weights.fetch(weights.weights_source(choice.encoder, choice.encoder_weights))
        log.info("encoder %s starts from %s: %s", choice.encoder, choice.encoder_weights, found)
    if not cfg.time_budget:
        cfg = replace(cfg, time_budget=default_time_budget() or 0.0)
    return cfg


def _architecture_from(cfg: TrainConfig, explicit: set[str]) -> TrainConfig:
    """The model fields of what `init_from` holds; ones the user set must agree (checked when it is built)."""
    start = open_checkpoint(cfg.init_from)
    taken = {k: v for k, v in architecture_of(start).items() if k not in explicit}
    log.info("fine-tuning from %s: %s", cfg.init_from, checkpoint_origin(start))
    return replace(cfg, **taken)


def resolved_nproc(cfg: TrainConfig) -> int:
    """Processes to run: cfg.nproc, or one per visible GPU for 0; 1 inside a torchrun worker."""
    if distributed_env() or "LOCAL_RANK" in os.environ:
        return 1  # already a torchrun worker: never launch again
    if cfg.nproc == 0:
        return max(1, torch.cuda.device_count())
    return cfg.nproc


def torchrun_command(cfg: TrainConfig, nproc: int) -> list[str]:
    """`python -m torch.distributed.run --standalone --nproc-per-node N -m segkit train ...` (every field)."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "segkit",
        "train",
        *to_argv(cfg, skip=("nproc", "dashboard")),
    ]


def train(cfg: TrainConfig, on_epoch_end: Callable[[HistoryRow], None] | None = None, live: bool = True) -> RunSummary:
    """Train a resolved config in-process (one GPU or CPU) or through torchrun; fit's summary either way.

    Args:
        cfg: from `resolve_train_config`.
        on_epoch_end: called with each epoch's history row (under torchrun: read from history.csv).
        live: when a person watches this notebook, also show `segkit.live.LiveView` (curves, the
            last row, the time left), redrawn in place after each epoch. Headless: nothing.
    """
    hooks = [hook for hook in (live_view(cfg) if live else None, on_epoch_end) if hook is not None]
    on_row = _each(hooks) if hooks else None
    nproc = resolved_nproc(cfg)
    if nproc <= 1:
        return fit(cfg, on_epoch_end=on_row)
    run_torchrun(cfg, nproc, on_row)
    return RunSummary.from_run_dir(Path(cfg.run_dir))


def _each(hooks: list[Callable[[HistoryRow], None]]) -> Callable[[HistoryRow], None]:
    def call(row: HistoryRow) -> None:
        for hook in hooks:
            hook(row)

    return call


def run_torchrun(cfg: TrainConfig, nproc: int, on_epoch_end: Callable[[HistoryRow], None] | None = None) -> None:
    """`torchrun_command` run to its end; each new history.csv row goes to `on_epoch_end`.

    In a terminal the workers write to it directly. A notebook kernel's output is not the
    process's, so there the workers' stdout and stderr are read here and shown (`_show_output`).
    The workers learn from the environment what this process decided: bars or log lines, and
    INFO on stdout (not red in a notebook).
    """
    command = torchrun_command(cfg, nproc)
    log.info("launching %d processes: %s", nproc, " ".join(command))
    env = {
        **os.environ,
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
        "PYTHONUNBUFFERED": "1",
        progress.PROGRESS_ENV: "bar" if progress.watching() else "log",
    }
    if progress.info_to_stdout():
        env[progress.INFO_STDOUT_ENV] = "1"
    history = _HistoryTail(Path(cfg.run_dir) / "history.csv", on_epoch_end)
    piped = progress.in_notebook()
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE if piped else None, stderr=subprocess.PIPE if piped else None, env=env
    )
    try:
        if piped:
            _show_output(proc, history)
        else:
            _wait(proc, history)
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)  # torchrun passes it on: the workers save last.pth and stop
        raise
    history.poll()
    if proc.wait() != 0:
        raise SegkitError(f"torchrun exited with status {proc.returncode}; its output is above")


def _wait(proc: subprocess.Popen, history: _HistoryTail) -> None:
    while proc.poll() is None:
        time.sleep(1.0)
        history.poll()


def _show_output(proc: subprocess.Popen, history: _HistoryTail) -> None:
    """The workers' stdout and stderr shown here as they come, until both end.

    Whole lines are printed; rank 0's bar (redrawn with '\r' on stderr) is drawn in place in the
    cell's bar slot when a person watches, and left out headless (its lines would flood the cell).
    """
    slot = progress.notebook_slot() if progress.watching() else None
    relays = {"stdout": progress.Relay("stdout"), "stderr": progress.Relay("stderr", slot)}
    chunks: queue.Queue[tuple[str, str | None]] = queue.Queue()
    for name in relays:
        threading.Thread(target=_read, args=(getattr(proc, name), name, chunks), daemon=True).start()
    open_streams = len(relays)
    while open_streams:
        try:
            name, text = chunks.get(timeout=1.0)
        except queue.Empty:
            name, text = "", ""
        if text is None:
            relays[name].close()
            open_streams -= 1
        elif text:
            relays[name].feed(text)
        history.poll()


def _read(pipe: IO[bytes], name: str, chunks: queue.Queue) -> None:
    """Bytes as they arrive (not lines: a bar's '\r' must stay), decoded; None at the end."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    while data := os.read(pipe.fileno(), 65536):
        chunks.put((name, decoder.decode(data)))
    chunks.put((name, decoder.decode(b"", final=True)))
    chunks.put((name, None))


class _HistoryTail:
    """history.csv's new or changed rows (a torchrun run writes it each epoch), passed to `on_row`."""

    def __init__(self, path: Path, on_row: Callable[[HistoryRow], None] | None) -> None:
        self.path, self.on_row, self.mtime = path, on_row, None
        self.seen = {row.epoch: row for row in read_history(path)}  # a resumed run's earlier epochs

    def poll(self) -> None:
        mtime = self.path.stat().st_mtime_ns if self.on_row is not None and self.path.exists() else None
        if mtime is None or mtime == self.mtime:
            return
        self.mtime = mtime
        for row in read_history(self.path):
            if self.seen.get(row.epoch) != row:
                self.seen[row.epoch] = row
                self.on_row(row)
