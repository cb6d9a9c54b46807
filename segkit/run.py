"""The run directory: what training writes and everything after it reads.

runs/<name>/ config.json, last.pth (full state), best_model.pth, history.csv, metrics.json,
tb/ (TensorBoard), figures/. Only rank 0 writes.
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import subprocess
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

import segkit
from segkit import runtime
from segkit.checkpoint import (
    FORMAT,
    VERSION,
    atomic_save,
    load_checkpoint,
    remove_stale_temp_files,
    unwrap,
)
from segkit.config import TrainConfig, from_dict, to_dict
from segkit.data.transforms import MEAN, STD
from segkit.errors import ConfigError, SegkitError
from segkit.labels import CLASS_NAMES, NUM_CLASSES
from segkit.runtime import log

# Files segkit writes into a run directory: --overwrite removes these and nothing else.
RUN_FILES = ("config.json", "last.pth", "best_model.pth", "history.csv", "metrics.json", "class_counts.json", "dashboard.json")
RUN_DIRS = ("tb", "figures", "cache")
HISTORY_COLUMNS = ("epoch", "train_loss", "val_loss", "miou", "mean_dice", "pixel_accuracy", "lr",
                   "images_per_sec", "minutes", "steps")
# Fields that may change when a run is resumed; every other field must match the saved run.
RESUMABLE_FIELDS = {"data_root", "run_dir", "epochs", "time_budget", "eval_every", "log_every", "num_workers",
                    "device", "resume", "overwrite", "dashboard", "num_vis", "compile", "max_val_images", "preset", "nproc", "cache"}


def environment_info() -> dict[str, Any]:
    """Versions and hardware, recorded in config.json so a number can be traced to its setup."""
    info: dict[str, Any] = {
        "segkit": segkit.__version__, "torch": torch.__version__, "python": platform.python_version(),
        "cuda": torch.version.cuda, "git_commit": git_commit(),
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "world_size": runtime.world_size(),
    }
    return info


def git_commit() -> str | None:
    """The commit of the segkit checkout (None when installed from a wheel)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True,
                             timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (temporary file + rename)."""
    text = json.dumps(obj, indent=2, default=_json_default) + "\n"
    _atomic_write(path, lambda f: f.write(text))


def _atomic_write(path: Path, write: Any) -> None:
    """Write a text file through a temporary file + rename; disk errors become a clear message."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w", newline="") as f:
            write(f)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise SegkitError(
            f"could not write {path}: {e.strerror or e}. Earlier files in {path.parent} are intact; "
            "free disk space or make the folder writable, then run again (with --resume if last.pth exists)."
        ) from None


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (Path,)):
        return str(obj)
    if torch.is_tensor(obj):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_history(path: Path, rows: list[dict]) -> None:
    """history.csv: one row per epoch (rewritten whole from the checkpointed history)."""
    def write(f) -> None:
        writer = csv.DictWriter(f, fieldnames=HISTORY_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in HISTORY_COLUMNS})

    _atomic_write(path, write)


# A folder holds a run once training saved something; config.json and tb/ alone are a failed start.
RUN_MARKERS = ("last.pth", "best_model.pth", "history.csv")


def prepare_run_dir(run_dir: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to clobber an existing run unless --resume or --overwrite says what to do."""
    existing = [n for n in RUN_FILES if (run_dir / n).exists()] + [d for d in RUN_DIRS if (run_dir / d).exists()]
    if not any((run_dir / n).exists() for n in RUN_MARKERS) and not resume:
        return  # nothing trained here yet (e.g. a start that failed on bad data): reuse the folder
    if resume:
        if not (run_dir / "last.pth").exists():
            raise ConfigError(
                f"--resume: there is no {run_dir / 'last.pth'} to continue from"
                + (f" (the folder holds {', '.join(existing)})" if existing else "")
                + ". Start a new run without --resume, or point --run-dir at the run to continue."
            )
        return
    if existing and not overwrite:
        n = 2
        while Path(f"{run_dir}-{n}").exists():
            n += 1
        raise ConfigError(
            f"run directory {run_dir} already holds a run ({', '.join(existing)}). Use --resume to continue it, "
            f"--overwrite to replace it, or another --run-dir (e.g. {run_dir}-{n})."
        )
    if existing and overwrite and runtime.is_main():
        import shutil

        for name in existing:
            target = run_dir / name
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        log.warning("--overwrite: removed %s from %s", ", ".join(existing), run_dir)


@dataclass
class Run:
    """A training run's directory, checkpoints, TensorBoard writer and history (rank 0 writes)."""

    cfg: TrainConfig
    run_dir: Path
    roots: Any
    resume_ckpt: dict | None = None
    writer: Any = None
    vis_samples: list = field(default_factory=list)
    channels_last: bool = False
    time_budget_minutes: float = 0.0

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(cls, cfg: TrainConfig) -> Run:
        """Check the run dir, merge a resumed config, find the data, write config.json."""
        from segkit.data.discover import resolve_data_roots

        run_dir = Path(cfg.run_dir)
        prepare_run_dir(run_dir, cfg.resume, cfg.overwrite)
        if runtime.is_main() and run_dir.is_dir():
            for stale in remove_stale_temp_files(run_dir):
                log.warning("removed %s, left by an interrupted checkpoint write", stale.name)
        runtime.barrier()  # nobody reads the folder before rank 0 has cleaned it
        ckpt = None
        if cfg.resume:
            ckpt = load_checkpoint(run_dir / "last.pth")
            cfg = merge_resumed_config(cfg, ckpt["config"])
        roots = resolve_data_roots(cfg.data_root or None)
        run = cls(cfg, run_dir, roots, ckpt)
        run.time_budget_minutes = effective_time_budget(cfg.time_budget)
        if runtime.is_main():
            (run_dir / "figures").mkdir(parents=True, exist_ok=True)
            write_json(run_dir / "config.json", {
                "config": to_dict(cfg), "data": {"image_root": str(roots.image_root), "label_root": str(roots.label_root),
                                                   "synthetic": roots.synthetic},
                "environment": environment_info(), "time_budget_minutes": run.time_budget_minutes,
            })
            from torch.utils.tensorboard import SummaryWriter

            step = ckpt["global_step"] if ckpt else None
            run.writer = SummaryWriter(str(run_dir / "tb"), purge_step=step)
        return run

    def build_model(self, device: torch.device) -> tuple[nn.Module, nn.Module]:
        """The model (seeded init) and the module to train (DDP / compiled wrapper, or itself)."""
        from segkit.models import check_input_size, create_model

        runtime.seed_everything(self.cfg.seed)
        model = create_model(self.cfg.model, NUM_CLASSES, **self.cfg.model_kwargs)
        check_input_size(model, *self.cfg.image_size)
        if self.cfg.sync_bn and torch.distributed.is_initialized():
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = model.to(device)
        # channels_last speeds up convolutions on tensor cores; on CPU it is slower (0.75x here).
        self.channels_last = self.cfg.channels_last and device.type == "cuda"
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        train_model: nn.Module = model
        if torch.distributed.is_initialized():
            train_model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        if self.cfg.compile:
            train_model = torch.compile(train_model)
        return model, train_model

    def restore(self, model, optimizer, scheduler, scaler) -> dict:
        """The loop state: fresh, or everything last.pth saved (weights, optimizer, RNG, history)."""
        if self.resume_ckpt is None:
            return {"epoch": 0, "step_in_epoch": 0, "global_step": 0, "best_miou": -1.0, "history": [],
                    "elapsed_seconds": 0.0, "best_epoch": None}
        ck = self.resume_ckpt
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        scheduler.load_state_dict(ck["scheduler"])
        scaler.load_state_dict(ck["scaler"])
        runtime.set_rng_state(ck["rng"])
        state = dict(ck["state"])
        # Rows of the epoch being continued (a partial epoch) are replaced when it completes.
        state["history"] = [dict(r) for r in state["history"] if r["epoch"] < state["epoch"]]
        if runtime.is_main():
            log.info("resumed %s at epoch %d, step %d of the epoch (global step %d)", self.run_dir,
                     state["epoch"], state["step_in_epoch"], state["global_step"])
        return state

    def announce(self, model: nn.Module, precision, device, n_train: int, n_val: int) -> None:
        if not runtime.is_main():
            return
        params = sum(p.numel() for p in model.parameters()) / 1e6
        data = "SYNTHETIC data (not Cityscapes)" if self.roots.synthetic else str(self.roots.image_root)
        log.info("run %s | %s %.1fM params | %s | amp %s | %d processes | %d train / %d val images | %s",
                 self.run_dir, self.cfg.model, params, device, precision.name, runtime.world_size(), n_train, n_val, data)
        if self.time_budget_minutes:
            log.info("time budget %.1f minutes: training stops cleanly, evaluates and saves before it runs out", self.time_budget_minutes)

    # ------------------------------------------------------------------ during training

    def tb_step(self, step: int, info: dict) -> None:
        if self.writer is not None and step % self.cfg.log_every == 0:
            self.writer.add_scalar("train/loss", float(info["loss"]), step)
            self.writer.add_scalar("train/lr", info["lr"], step)

    def on_eval(self, model: nn.Module, ev: dict, row: dict, state: dict) -> None:
        """Log validation results and keep best_model.pth (rank 0)."""
        if not runtime.is_main():
            return
        cm = ev["confusion"]
        miou = row["miou"] if row["miou"] is not None else -1.0
        log.info("epoch %d val mIoU %.4f dice %s pixel acc %s (%s resolution, %d images)", row["epoch"], miou,
                 _fmt(row["mean_dice"]), _fmt(row["pixel_accuracy"]), self.cfg.eval_resolution, ev["images"])
        self._tb_eval(model, cm, row, state["global_step"])
        if miou > state["best_miou"]:
            state["best_miou"], state["best_epoch"] = miou, row["epoch"]
            summary = cm.summary(CLASS_NAMES, self.protocol(ev["images"]))
            atomic_save(self.best_payload(model, summary, row["epoch"]), self.run_dir / "best_model.pth")

    def _tb_eval(self, model: nn.Module, cm, row: dict, step: int) -> None:
        from segkit.viz import figure_to_array, plot_confusion

        w = self.writer
        for key in ("val_loss", "miou", "mean_dice", "pixel_accuracy"):
            if row.get(key) is not None:
                w.add_scalar(f"val/{key}", row[key], step)
        w.add_scalar("train/images_per_sec", row["images_per_sec"], step)
        w.add_scalar("train/epoch_loss", row["train_loss"], step)
        for name, iou in zip(CLASS_NAMES, cm.iou().tolist()):
            if not math.isnan(iou):  # NaN: class absent from ground truth and prediction
                w.add_scalar(f"val_iou/{name}", iou, step)
        w.add_image("val/confusion_matrix", figure_to_array(plot_confusion(cm.mat.cpu().numpy(), seaborn=False)), step, dataformats="HWC")
        for i, grid in enumerate(self._vis_grids(model)):
            w.add_image(f"val_samples/{i}", grid, step, dataformats="HWC")
        w.flush()

    @torch.no_grad()
    def _vis_grids(self, model: nn.Module) -> list:
        """input | ground truth | prediction overlays for a fixed set of validation images."""
        from segkit.data.transforms import denormalize
        from segkit.inference import infer
        from segkit.viz import triptych_array

        if not self.vis_samples:
            self.vis_samples = self._load_vis_samples()
        model.eval()
        device = next(model.parameters()).device
        grids = []
        for sample in self.vis_samples:
            image = sample["image"][None].to(device)
            scores = infer(model, image, self.cfg.image_size, "whole", out_size=sample["mask"].shape[-2:],
                           size_divisor=getattr(model, "size_divisor", 32))
            pred = scores.argmax(1)[0].cpu().numpy().astype("uint8")
            grids.append(triptych_array(denormalize(sample["image"]), sample["mask"].numpy().astype("uint8"), pred))
        return grids

    def _load_vis_samples(self) -> list:
        from segkit.data.cityscapes import CityscapesDataset
        from segkit.data.discover import list_samples
        from segkit.data.transforms import eval_transform

        samples = list_samples(self.roots, "val")[: self.cfg.num_vis]
        ds = CityscapesDataset(samples, eval_transform(self.cfg.image_size))
        return [ds[i] for i in range(len(ds))]

    def save_last(self, model, optimizer, scheduler, scaler, state: dict) -> None:
        """last.pth with the full state, then history.csv derived from it (rank 0)."""
        if runtime.is_main():
            payload = self.model_payload(model)
            payload.update(
                optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(), scaler=scaler.state_dict(),
                rng=runtime.rng_state(), state=_plain_state(state), global_step=state["global_step"],
            )
            atomic_save(payload, self.run_dir / "last.pth")
            write_history(self.run_dir / "history.csv", state["history"])
        runtime.barrier()

    # ------------------------------------------------------------------ payloads

    def model_payload(self, model: nn.Module) -> dict:
        """What any checkpoint carries: weights, how to rebuild the model, how it was trained."""
        from segkit.models import model_spec

        plain = unwrap(model)
        weights = {k: v.detach().cpu().contiguous() for k, v in plain.state_dict().items()}
        return {
            "format": FORMAT, "version": VERSION, "segkit_version": segkit.__version__,
            "model": weights, "model_spec": model_spec(plain), "num_classes": NUM_CLASSES,
            "label_space": "cityscapes-19", "class_names": list(CLASS_NAMES),
            "image_size": list(self.cfg.image_size), "normalization": {"mean": list(MEAN), "std": list(STD)},
            "config": to_dict(self.cfg),
        }

    def best_payload(self, model: nn.Module, summary: dict, epoch: int) -> dict:
        payload = self.model_payload(model)
        payload.update(epoch=epoch, metrics=summary)
        return payload

    def protocol(self, images: int, inference: str = "whole", resolution: str | None = None) -> dict:
        from segkit.metrics import make_protocol

        res = resolution or self.cfg.eval_resolution
        res = "label" if res == "label" else f"train {self.cfg.image_size[0]}x{self.cfg.image_size[1]}"
        return make_protocol(resolution=res, inference=inference, split="val", images=images,
                             data="synthetic" if self.roots.synthetic else str(self.roots.label_root))

    # ------------------------------------------------------------------ the end

    def finish(self, model, val_loader, device, precision, state: dict, status: str,
               seconds_left: float | None = None) -> dict:
        """Official-protocol evaluation of best_model.pth -> metrics.json; the resume hint if stopped.

        With a time budget, the official evaluation runs only if it fits in what is left (it is
        estimated from one image); otherwise metrics.json keeps the best model's training-size
        numbers, labelled so in its protocol, and the log says how to get the official ones.
        """
        metrics = None
        best = self.run_dir / "best_model.pth"
        if best.exists() and state["history"]:
            metrics = self.final_metrics(best, device, seconds_left)
        if runtime.is_main():
            if metrics is not None:
                write_json(self.run_dir / "metrics.json", metrics)
                from segkit.metrics import format_table

                log.info("best model (epoch %s):\n%s", state.get("best_epoch"), format_table(metrics))
            if status not in ("completed",):
                log.warning("training stopped (%s) at epoch %d, step %d: continue with the same command plus --resume "
                            "(run_dir %s)", status, state["epoch"], state["step_in_epoch"], self.run_dir)
        return {"run_dir": str(self.run_dir), "status": status, "epochs_done": state["epoch"],
                "best_miou": state["best_miou"], "metrics": metrics, "history": state["history"]}

    def final_metrics(self, best: Path, device, seconds_left: float | None = None) -> dict:
        """Evaluate the best weights at the label files' own resolution (the headline number)."""
        from segkit.checkpoint import model_from_checkpoint
        from segkit.data.cityscapes import CityscapesDataset
        from segkit.data.discover import list_samples
        from segkit.data.loaders import EpochSampler, collate
        from segkit.data.transforms import eval_transform
        from segkit.engine import evaluate

        runtime.barrier()
        ckpt = load_checkpoint(best, map_location=device)
        model = model_from_checkpoint(ckpt, device)
        samples = list_samples(self.roots, "val")
        samples = samples[: self.cfg.max_val_images] if self.cfg.max_val_images else samples
        ds = CityscapesDataset(samples, eval_transform(None), label_resolution=True)
        precision = runtime.resolve_precision(self.cfg.amp, device)
        if seconds_left is not None and ckpt.get("metrics"):
            probe = torch.utils.data.DataLoader(torch.utils.data.Subset(ds, [0]), batch_size=1, collate_fn=collate)
            estimate = evaluate(model, probe, device, self.cfg.image_size, precision)["seconds"] * len(samples) / runtime.world_size()
            if runtime.any_rank(estimate > seconds_left + 60, device):
                log.warning("the official evaluation (%d val images at the label files' resolution, about %.0f s) "
                            "does not fit in the time budget: metrics.json holds the best model's %s-resolution "
                            "numbers. Official numbers: segkit evaluate --checkpoint %s", len(samples), estimate,
                            self.cfg.eval_resolution, best)
                return {**ckpt["metrics"], "epoch": ckpt.get("epoch"), "checkpoint": str(best)}
        sampler = EpochSampler(len(ds), 0, False, runtime.rank(), runtime.world_size(), pad=False)
        loader = torch.utils.data.DataLoader(ds, batch_size=1, sampler=sampler, collate_fn=collate)
        ev = evaluate(model, loader, device, self.cfg.image_size, precision)
        summary = ev["confusion"].summary(CLASS_NAMES, self.protocol(ev["images"], resolution="label"))
        summary["epoch"] = ckpt.get("epoch")
        summary["checkpoint"] = str(best)
        return summary

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def _plain_state(state: dict) -> dict:
    return {k: ([dict(r) for r in v] if k == "history" else v) for k, v in state.items()}


def merge_resumed_config(cfg: TrainConfig, saved: dict) -> TrainConfig:
    """The saved run's config with the fields that may change on resume taken from `cfg`."""
    saved_cfg = from_dict(TrainConfig, {k: v for k, v in saved.items() if k in {f.name for f in fields(TrainConfig)}})
    clashes = [
        f"{f.name} ({getattr(saved_cfg, f.name)!r} in the run, {getattr(cfg, f.name)!r} now)"
        for f in fields(TrainConfig)
        if f.name not in RESUMABLE_FIELDS and getattr(cfg, f.name) != getattr(saved_cfg, f.name)
        and getattr(cfg, f.name) != f.default
    ]
    if clashes:
        raise ConfigError(
            "--resume continues a run with its own settings, but these differ: " + "; ".join(clashes)
            + ". Drop them from the command, or start a new run with another --run-dir."
        )
    # Settings left at their default keep the run's own value: `segkit train --run-dir R --resume`
    # continues on the run's data for the run's epochs, not on the defaults.
    defaults = {f.name: f.default for f in fields(TrainConfig)}
    updates = {name: getattr(cfg, name) for name in RESUMABLE_FIELDS if getattr(cfg, name) != defaults[name]}
    return from_dict(TrainConfig, {**to_dict(saved_cfg), **updates, "resume": True, "overwrite": False})


def effective_time_budget(minutes: float) -> float:
    """The budget in minutes; on Kaggle with none given, what keeps the run inside the session."""
    if minutes > 0:
        return minutes
    try:
        from segkit.kaggle import default_time_budget
    except ImportError:
        return 0.0
    return default_time_budget() or 0.0
