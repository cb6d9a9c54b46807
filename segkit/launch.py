"""What to train, and where: resolve the config once, then train in this process or through torchrun.

`resolve_train_config` decides everything `fit` will train — the preset, a Kaggle chained run,
the resumed run's own settings, the Kaggle session's time budget — so that `fit` trains exactly
the config it is given, and the notebook and `segkit train` show the config that will run.

Notebooks cannot fork CUDA processes, so notebook 02 (and `segkit train --nproc 2`) start
`torchrun` as a subprocess; torchrun does all the process management.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import fields, replace
from pathlib import Path

import torch

from segkit.checkpoint import load_checkpoint
from segkit.config import NO_WEIGHTS, TrainConfig, apply_preset, to_argv
from segkit.engine import fit
from segkit.errors import ConfigError, SegkitError
from segkit.kaggle.session import default_time_budget, prepare_chained_resume
from segkit.kaggle_env import on_kaggle
from segkit.models import check_model, weights
from segkit.run import merge_resumed_config, saved_status
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
    explicit = {f.name for f in fields(cfg) if getattr(cfg, f.name) != f.default} if explicit is None else explicit
    cfg = apply_preset(cfg, explicit)
    if cfg.resume and on_kaggle():
        prepare_chained_resume(Path(cfg.run_dir))
    if cfg.resume and (Path(cfg.run_dir) / "last.pth").is_file():
        cfg = merge_resumed_config(cfg, load_checkpoint(Path(cfg.run_dir) / "last.pth")["config"])
    if not cfg.encoder:  # segkit's own U-Net has no pretrained encoder
        if "encoder_weights" in explicit and cfg.encoder_weights.lower() not in NO_WEIGHTS:
            raise ConfigError(f"encoder_weights {cfg.encoder_weights!r} needs an encoder: segkit's own U-Net starts "
                              "from random weights. Add e.g. --encoder resnet34, or drop --encoder-weights.")
        cfg = replace(cfg, encoder_weights="")
    check_model(cfg.model, cfg.encoder, cfg.encoder_weights, cfg.crop, cfg.model_kwargs, cfg.batch_size)
    if cfg.pretrained and not cfg.resume:
        found = weights.fetch(weights.weights_source(cfg.encoder, cfg.encoder_weights))
        log.info("encoder %s starts from %s: %s", cfg.encoder, cfg.encoder_weights, found)
    if not cfg.time_budget:
        cfg = replace(cfg, time_budget=default_time_budget() or 0.0)
    return cfg


def resolved_nproc(cfg: TrainConfig) -> int:
    """Processes to run: cfg.nproc, or one per visible GPU for 0; 1 inside a torchrun worker."""
    if distributed_env() or "LOCAL_RANK" in os.environ:
        return 1  # already a torchrun worker: never launch again
    if cfg.nproc == 0:
        return max(1, torch.cuda.device_count())
    return cfg.nproc


def torchrun_command(cfg: TrainConfig, nproc: int) -> list[str]:
    """`python -m torch.distributed.run --standalone --nproc-per-node N -m segkit train ...` (every field)."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "-m", "segkit", "train", *to_argv(cfg, skip=("nproc", "dashboard"))]


def train(cfg: TrainConfig, on_epoch_end: Callable[[dict], None] | None = None) -> dict:
    """Train a resolved config in-process (one GPU or CPU) or through torchrun; fit's summary either way.

    Args:
        cfg: from `resolve_train_config`.
        on_epoch_end: per-epoch callback (in-process runs only; torchrun runs log to stdout).
    """
    nproc = resolved_nproc(cfg)
    if nproc <= 1:
        return fit(cfg, on_epoch_end=on_epoch_end)
    command = torchrun_command(cfg, nproc)
    log.info("launching %d processes: %s", nproc, " ".join(command))
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    assert proc.stdout is not None
    for line in proc.stdout:  # stream the workers' log into the notebook as it comes
        print(line, end="", flush=True)
    if proc.wait() != 0:
        raise SegkitError(f"torchrun exited with status {proc.returncode}; its output is above")
    return summary_from_run_dir(Path(cfg.run_dir))


def summary_from_run_dir(run_dir: Path) -> dict:
    """What `fit` returns, rebuilt from the files a (torchrun) run wrote."""
    history = []
    if (run_dir / "history.csv").exists():
        with open(run_dir / "history.csv") as f:
            history = [{k: (float(v) if v != "" else None) for k, v in row.items()} for row in csv.DictReader(f)]
        for row in history:
            row["epoch"] = int(row["epoch"])
    metrics = json.loads((run_dir / "metrics.json").read_text()) if (run_dir / "metrics.json").exists() else None
    best = max((r["miou"] for r in history if r.get("miou") is not None), default=-1.0)
    return {"run_dir": str(run_dir), "status": saved_status(run_dir), "epochs_done": len(history), "best_miou": best,
            "metrics": metrics, "history": history}
