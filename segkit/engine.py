"""Training and evaluation: plain functions `train_one_epoch`, `evaluate` and `fit`.

`fit` survives Kaggle: a time budget that stops cleanly, full-state checkpoints written atomically
every epoch and on SIGTERM / Ctrl-C, exact resume, fp16 on T4s, and torchrun (DDP) when launched so.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from segkit import runtime
from segkit.checkpoint import unwrap
from segkit.config import TrainConfig
from segkit.data.loaders import build_cache, build_loaders
from segkit.errors import SegkitError
from segkit.labels import IGNORE_INDEX, NUM_CLASSES
from segkit.metrics import ConfusionMatrix
from segkit.runtime import Precision, log


class TrainingDiverged(SegkitError):
    """The loss became NaN or infinite."""


# ----------------------------------------------------------------------------- optimisation


def build_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """Adam / AdamW / SGD; no weight decay on norms and biases (they only rescale)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9, nesterov=True)


def build_scheduler(cfg: TrainConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int,
                    time_fraction: Callable[[], float] | None = None):
    """Poly decay (power 0.9) after linear warmup, stepped per iteration; or ReduceLROnPlateau.

    With a time budget, poly decays over whichever ends first — the epochs or the budget — so a
    run cut short by `--time-budget` still ends at a low learning rate instead of mid-schedule.
    """
    if cfg.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.5, patience=3)
    total = max(1, cfg.epochs * steps_per_epoch)
    warmup = int(cfg.warmup_epochs * steps_per_epoch) if cfg.scheduler == "poly" else 0

    def factor(step: int) -> float:
        if cfg.scheduler == "none":
            return 1.0
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total - warmup)
        if time_fraction is not None:
            progress = max(progress, time_fraction())
        return max(0.0, 1 - min(1.0, progress)) ** 0.9

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def build_loss_fn(cfg: TrainConfig, train_loader: DataLoader, run_dir: Path, device: torch.device) -> nn.Module:
    """The configured loss, with class weights computed from the training labels (cached)."""
    from segkit.losses import build_loss

    weights = None
    if cfg.class_weights != "none":
        from segkit.data.stats import class_statistics, class_weights

        stats = class_statistics(train_loader.dataset.samples, NUM_CLASSES, cache_path=run_dir / "class_counts.json")
        w = class_weights(stats["pixels"], cfg.class_weights, image_pixels=stats["image_pixels"])
        weights = torch.as_tensor(w, dtype=torch.float32, device=device)
    return build_loss(cfg.loss, NUM_CLASSES, IGNORE_INDEX, class_weights=weights)


# ----------------------------------------------------------------------------- one epoch


def train_one_epoch(
    model: nn.Module,
    loader: DataLoader,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler,
    scaler: torch.amp.GradScaler,
    device: torch.device,
    precision: Precision,
    epoch: int,
    should_stop: Callable[[], bool] = lambda: False,
    on_step: Callable[[dict], None] | None = None,
    interrupted: Callable[[], bool] = lambda: False,
    grad_clip: float = 0.0,
    log_every: int = 20,
    channels_last: bool = False,
) -> dict:
    """Train for one epoch (or until `should_stop()` is true after a step).

    `interrupted()` (a signal arrived) also ends the epoch when the DataLoader fails because the
    same signal stopped its workers.

    Returns:
        {"train_loss", "steps", "images", "seconds", "images_per_sec", "lr", "stopped_early"}.
    """
    model.train()
    per_step_scheduler = isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR)
    total_loss = torch.zeros((), device=device)
    steps = images = 0
    start = time.perf_counter()
    n_batches = len(loader)
    stopped = False
    for batch in _batches(loader, n_batches, epoch, interrupted):
        image = batch["image"].to(device, non_blocking=True)  # (B, 3, H, W)
        mask = batch["mask"].to(device, non_blocking=True)  # (B, H, W)
        if channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        with runtime.autocast(device, precision):
            logits = model(image)  # (B, C, H, W)
            loss = loss_fn(logits, mask)
        if not torch.isfinite(loss):
            what = f"the training loss became {float(loss.detach())}"
            raise TrainingDiverged(_diverged_message(what, optimizer, epoch, steps + 1, precision.dtype is not None))
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if grad_clip > 0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scaler.step(optimizer)
        scaler.update()
        if per_step_scheduler:
            scheduler.step()
        total_loss += loss.detach()
        steps += 1
        images += image.shape[0]
        if on_step is not None:
            on_step({"loss": loss.detach(), "lr": optimizer.param_groups[0]["lr"], "images": image.shape[0]})
        if runtime.is_main() and not runtime.person_is_watching() and (steps % log_every == 0 or steps == n_batches):
            _log_line(epoch, steps, n_batches, total_loss / steps, optimizer, images, start)
        if runtime.any_rank(should_stop(), device):
            stopped = steps < n_batches
            break
    stopped = stopped or (interrupted() and steps < n_batches)
    seconds = time.perf_counter() - start
    return {
        "train_loss": float(total_loss / max(1, steps)), "steps": steps, "images": images, "seconds": seconds,
        "images_per_sec": images * runtime.world_size() / max(seconds, 1e-9),
        "lr": optimizer.param_groups[0]["lr"], "stopped_early": stopped,
    }


def _batches(loader: DataLoader, n_batches: int, epoch: int, interrupted: Callable[[], bool]) -> Iterator[dict]:
    """The loader's batches; ends quietly if a signal took the workers down (SIGTERM to the group)."""
    iterator = runtime.progress(loader, n_batches, f"epoch {epoch}")
    while True:
        try:
            yield next(iterator)
        except StopIteration:
            return
        except RuntimeError:
            if interrupted():
                return
            raise


def _log_line(epoch: int, step: int, total: int, loss: torch.Tensor, optimizer, images: int, start: float) -> None:
    elapsed = time.perf_counter() - start
    eta = elapsed / step * (total - step)
    log.info(
        "epoch %d step %d/%d loss %.4f lr %.2e %.1f img/s eta %s", epoch, step, total, float(loss),
        optimizer.param_groups[0]["lr"], images * runtime.world_size() / max(elapsed, 1e-9), _hms(eta),
    )


def _hms(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _diverged_message(what: str, optimizer, epoch: int, step: int, amp_on: bool = False) -> str:
    lr = optimizer.param_groups[0]["lr"]
    return (
        f"{what} at epoch {epoch}, step {step} (lr {lr:.2e}). The last good checkpoint (last.pth, "
        "best_model.pth, if any was written) is kept: nothing non-finite was saved. Try a lower --lr "
        f"(e.g. {lr / 10:.1e}), --grad-clip 1.0{', or --amp off' if amp_on else ''}; then --resume or start a new run."
    )


@torch.no_grad()
def _check_finite_weights(model: nn.Module, optimizer, epoch: int, step: int, precision: Precision,
                          image_size: tuple[int, int]) -> None:
    """The last update can blow the weights up after a finite loss: never evaluate or save those.

    Weights can be finite yet huge (1e29), so a forward pass on a probe image must be finite too.
    """
    bad = next((n for n, p in model.named_parameters() if not torch.isfinite(p).all()), None)
    what = f"the weights became inf/nan ({bad})" if bad else None
    if what is None:
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        probe = torch.randn(1, 3, *image_size, generator=torch.Generator().manual_seed(0)).to(device)
        if not torch.isfinite(model(probe)).all():
            what = "the weights blew up (the model's output on a probe image is inf/nan)"
        model.train(was_training)
    if what is not None:
        raise TrainingDiverged(_diverged_message(what, optimizer, epoch, step, precision.dtype is not None))


# ----------------------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device,
    image_size: tuple[int, int],
    precision: Precision | None = None,
    loss_fn: nn.Module | None = None,
    inference: str = "whole",
    per_image: bool = False,
    num_classes: int = NUM_CLASSES,
) -> dict:
    """Confusion matrix over the whole loader (all-reduced under torchrun) and the mean loss.

    Masks come at the resolution the loader gives them (the label files' own size for the
    official protocol); scores are upsampled to each mask's size before the argmax.

    Returns:
        {"confusion": ConfusionMatrix, "val_loss": float | None, "images": int, "seconds": float,
         "per_image": [(name, mIoU), ...] if per_image}
    """
    from segkit.inference import infer

    precision = precision or Precision(None, False)
    model.eval()
    divisor = getattr(unwrap(model), "size_divisor", 32)
    cm = ConfusionMatrix(num_classes, IGNORE_INDEX, device=device)
    loss_sum = torch.zeros((), device=device)
    n = 0
    per = []
    start = time.perf_counter()
    for batch in loader:
        for image, mask, name in _split_batch(batch):
            image, mask = image.to(device, non_blocking=True), mask.to(device, non_blocking=True)
            with runtime.autocast(device, precision):
                scores = infer(model, image, image_size, inference, out_size=mask.shape[-2:], size_divisor=divisor)
            if loss_fn is not None and inference == "whole":
                loss_sum += loss_fn(scores.float(), mask).detach() * mask.shape[0]
            pred = scores.argmax(1)
            cm.update(pred, mask)
            n += mask.shape[0]
            if per_image:
                per += _per_image_miou(pred, mask, name, num_classes)
    stats = torch.tensor([float(loss_sum), float(n)], device=device)
    cm.all_reduce()
    if torch.distributed.is_initialized():
        torch.distributed.all_reduce(stats)
    images = int(stats[1].item())
    return {
        "confusion": cm, "images": images, "seconds": time.perf_counter() - start,
        "val_loss": float(stats[0] / max(1, images)) if loss_fn is not None and inference == "whole" else None,
        "per_image": per,
    }


def _split_batch(batch: dict):
    """Yield (image (B,3,H,W), mask (B,H,W), names) groups of equal size."""
    if torch.is_tensor(batch["image"]) and torch.is_tensor(batch["mask"]):
        yield batch["image"], batch["mask"], batch["name"]
        return
    for i, name in enumerate(batch["name"]):
        yield batch["image"][i][None], batch["mask"][i][None], [name]


def _per_image_miou(pred: torch.Tensor, mask: torch.Tensor, names: list[str], num_classes: int) -> list:
    out = []
    for p, m, name in zip(pred, mask, names):
        one = ConfusionMatrix(num_classes, IGNORE_INDEX, device=p.device)
        one.update(p, m)
        out.append((name, one.miou()))
    return out


# ----------------------------------------------------------------------------- fit


class _StopFlag:
    """SIGTERM (Kaggle's session end) and the first Ctrl-C ask for a clean stop after this step."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:  # noqa: PYI034 (a private, final class)
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.reason is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        self.reason = signal.Signals(signum).name
        if runtime.is_main():
            log.warning("%s received: finishing this step, then saving a checkpoint", self.reason)

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class Budget:
    """Wall-clock budget in minutes; stops early enough to leave time to evaluate and save."""

    def __init__(self, minutes: float) -> None:
        self.seconds = minutes * 60
        self.start = time.monotonic()
        self.reserve = 0.0  # seconds the final evaluation + save took last time

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def exhausted(self) -> bool:
        # 2x the slowest evaluate+save seen: the last evaluation plus the final official one.
        return self.seconds > 0 and self.elapsed() + 2 * self.reserve >= self.seconds

    def fraction(self) -> float:
        """Share of the usable budget spent so far (drives the time-aware poly schedule)."""
        usable = max(1e-9, self.seconds - 2 * self.reserve)
        return min(1.0, self.elapsed() / usable)


def fit(cfg: TrainConfig, on_epoch_end: Callable[[dict], None] | None = None, stop_at_step: int | None = None) -> dict:
    """Train `cfg` into `cfg.run_dir` and return the final summary.

    Args:
        cfg: the (preset-resolved) training config.
        on_epoch_end: called with each history row (e.g. a notebook's live plot).
        stop_at_step: stop cleanly after this many optimizer steps in total (as a time budget
            would), checkpointing the exact state — used to test resume equivalence.

    Returns:
        {"run_dir", "status" ("completed" | "time_budget" | "SIGTERM" | "SIGINT" | "stopped"),
         "epochs_done", "best_miou", "metrics" (the metrics.json dict), "history" (list of rows)}
    """
    from segkit.run import Run

    runtime.setup_logging()
    device = runtime.resolve_device(cfg.device)
    runtime.check_gpu(device)
    runtime.init_distributed(device)
    runtime.configure_backends(device)
    run = Run.open(cfg)
    try:
        with _StopFlag() as flag:
            return _fit(run, device, flag, on_epoch_end, stop_at_step)
    finally:
        run.close()
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _fit(run, device: torch.device, flag: _StopFlag, on_epoch_end, stop_at_step) -> dict:
    cfg = run.cfg
    budget = Budget(run.time_budget_minutes)  # everything counts, data preparation included
    precision = runtime.resolve_precision(cfg.amp, device)
    build_cache(cfg, run.roots)
    train_loader, val_loader = build_loaders(cfg, run.roots, device)
    model, ddp_model = run.build_model(device)
    optimizer = build_optimizer(cfg, model)
    scheduler = build_scheduler(cfg, optimizer, len(train_loader), budget.fraction if budget.seconds else None)
    scaler = torch.amp.GradScaler(device.type, enabled=precision.use_scaler)
    state = run.restore(model, optimizer, scheduler, scaler)
    loss_fn = build_loss_fn(cfg, train_loader, run.run_dir, device)
    run.announce(model, precision, device, len(train_loader.dataset), len(val_loader.dataset))
    status = "completed"
    steps_box = [0]

    def should_stop() -> bool:
        at_step = stop_at_step is not None and state["global_step"] + steps_box[0] >= stop_at_step
        return bool(flag.reason) or budget.exhausted() or at_step

    def stop_reason() -> str | None:
        if flag.reason:
            return flag.reason
        if budget.exhausted():
            return "time_budget"
        return "stopped" if stop_at_step is not None and state["global_step"] >= stop_at_step else None

    elapsed0 = state.get("elapsed_seconds", 0.0)
    while state["epoch"] < cfg.epochs:
        epoch = state["epoch"]
        train_loader.sampler.set_epoch(epoch, state["step_in_epoch"], cfg.batch_size)
        steps_box[0] = 0

        def on_step(info: dict) -> None:
            steps_box[0] += 1
            run.tb_step(state["global_step"] + steps_box[0], info)

        result = train_one_epoch(
            ddp_model, train_loader, loss_fn, optimizer, scheduler, scaler, device, precision, epoch,
            should_stop, on_step, lambda: bool(flag.reason), cfg.grad_clip, cfg.log_every, run.channels_last,
        )
        state["global_step"] += result["steps"]
        state["step_in_epoch"] += result["steps"]
        _carry_partial_epoch(state, result)
        if not result["stopped_early"]:
            state["epoch"], state["step_in_epoch"] = epoch + 1, 0
        _check_finite_weights(model, optimizer, epoch, state["global_step"], precision, cfg.image_size)
        reason = stop_reason()
        state["elapsed_seconds"] = elapsed0 + budget.elapsed()
        row = _epoch_row(epoch, result, state)
        # A signal leaves seconds at most (Kaggle kills soon after SIGTERM): save, don't evaluate.
        scheduled = not result["stopped_early"] and ((epoch + 1) % cfg.eval_every == 0 or state["epoch"] >= cfg.epochs)
        if (scheduled or reason == "time_budget") and reason not in ("SIGTERM", "SIGINT"):
            t0 = time.monotonic()
            ev = evaluate(ddp_model, val_loader, device, cfg.image_size, precision, loss_fn)
            row.update(_metric_columns(ev))
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(row["miou"] if row["miou"] is not None else 0.0)
            run.on_eval(model, ev, row, state)
            budget.reserve = max(budget.reserve, time.monotonic() - t0)
        # A partial epoch's row is replaced when a resumed run completes that epoch.
        state["history"].append(row)
        # How the run stands, for readers of last.pth (a notebook that launched torchrun).
        state["status"] = reason or ("completed" if state["epoch"] >= cfg.epochs else "running")
        t0 = time.monotonic()
        run.save_last(model, optimizer, scheduler, scaler, state)
        budget.reserve = max(budget.reserve, time.monotonic() - t0)
        if on_epoch_end is not None and runtime.is_main():
            on_epoch_end(row)
        if reason is not None:
            status = reason
            break
    seconds_left = budget.seconds - budget.elapsed() if budget.seconds else None
    return run.finish(model, val_loader, device, precision, state, status, seconds_left)


def _carry_partial_epoch(state: dict, result: dict) -> None:
    """An epoch split by a stop and a resume reports the mean loss of all its steps."""
    done = state.pop("partial_epoch", None) if state.get("partial_epoch", {}).get("epoch") == state["epoch"] else None
    if done:
        steps = done["steps"] + result["steps"]
        result["train_loss"] = (done["loss_sum"] + result["train_loss"] * result["steps"]) / max(1, steps)
        result["steps"] = steps
    if result["stopped_early"]:
        state["partial_epoch"] = {"epoch": state["epoch"], "loss_sum": result["train_loss"] * result["steps"],
                                  "steps": result["steps"]}


def _epoch_row(epoch: int, result: dict, state: dict) -> dict:
    return {
        "epoch": epoch, "train_loss": result["train_loss"], "val_loss": None, "miou": None, "mean_dice": None,
        "pixel_accuracy": None, "lr": result["lr"], "images_per_sec": result["images_per_sec"],
        "minutes": state["elapsed_seconds"] / 60, "steps": state["global_step"],
    }


def _metric_columns(ev: dict) -> dict:
    cm: ConfusionMatrix = ev["confusion"]
    return {"val_loss": ev["val_loss"], "miou": _nan_to_none(cm.miou()), "mean_dice": _nan_to_none(cm.mean_dice()),
            "pixel_accuracy": _nan_to_none(cm.pixel_accuracy())}


def _nan_to_none(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)
