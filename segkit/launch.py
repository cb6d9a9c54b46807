"""Run training in this process, or in N processes through torchrun (one per GPU).

Notebooks cannot fork CUDA processes, so notebook 02 (and `segkit train --nproc 2`) start
`torchrun` as a subprocess; torchrun does all the process management.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import typing
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

import torch

from segkit.config import TrainConfig, field_types
from segkit.errors import SegkitError
from segkit.runtime import distributed_env, log


def resolved_nproc(cfg: TrainConfig) -> int:
    """Processes to run: cfg.nproc, or one per visible GPU for 0; 1 inside a torchrun worker."""
    if distributed_env() or "LOCAL_RANK" in os.environ:
        return 1  # already a torchrun worker: never launch again
    if cfg.nproc == 0:
        return max(1, torch.cuda.device_count())
    return cfg.nproc


def config_flags(cfg: TrainConfig) -> list[str]:
    """The `segkit train` flags that reproduce `cfg` (fields off their default only)."""
    types = field_types(TrainConfig)
    args: list[str] = []
    for f in fields(TrainConfig):
        value = getattr(cfg, f.name)
        if f.name in ("nproc", "dashboard") or value == f.default:
            continue
        flag = "--" + f.name.replace("_", "-")
        if types[f.name] is bool:
            args.append(flag if value else "--no-" + f.name.replace("_", "-"))
        elif typing.get_origin(types[f.name]) is tuple:
            args += [flag, *map(str, value)]
        else:
            args += [flag, str(value)]
    return args


def torchrun_command(cfg: TrainConfig, nproc: int) -> list[str]:
    """`python -m torch.distributed.run --standalone --nproc-per-node N -m segkit train ...`."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "-m", "segkit", "train", *config_flags(cfg)]


def train(cfg: TrainConfig, on_epoch_end: Callable[[dict], None] | None = None) -> dict:
    """Train in-process (one GPU or CPU) or through torchrun; returns fit's summary either way.

    Args:
        cfg: the preset-resolved training config.
        on_epoch_end: per-epoch callback (in-process runs only; torchrun runs log to stdout).
    """
    nproc = resolved_nproc(cfg)
    if nproc <= 1:
        from segkit.engine import fit

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
            history = [{k: (float(v) if v not in ("",) else None) for k, v in row.items()} for row in csv.DictReader(f)]
        for row in history:
            row["epoch"] = int(row["epoch"])
    metrics = json.loads((run_dir / "metrics.json").read_text()) if (run_dir / "metrics.json").exists() else None
    best = max((r["miou"] for r in history if r.get("miou") is not None), default=-1.0)
    return {"run_dir": str(run_dir), "status": _saved_status(run_dir), "epochs_done": len(history), "best_miou": best,
            "metrics": metrics, "history": history}


def _saved_status(run_dir: Path) -> str:
    """How the run ended, as its last checkpoint says ("completed", "time_budget", "SIGTERM", ...)."""
    from segkit.checkpoint import load_checkpoint

    last = run_dir / "last.pth"
    if not last.exists():
        return "unknown"
    return str(load_checkpoint(last, map_location="cpu")["state"].get("status", "unknown"))
