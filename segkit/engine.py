"""Training and evaluation: plain functions `train_one_epoch`, `evaluate`, `evaluate_split` and `fit`.

`fit` survives Kaggle: a time budget that stops cleanly, full-state checkpoints written atomically
every epoch and on SIGTERM / Ctrl-C, exact resume, fp16 on T4s, and torchrun (DDP) when launched
so. It trains exactly the config it is given: presets, resume merging and the Kaggle budget are
resolved before it (`segkit.launch.resolve_train_config`).
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from segkit import runtime
from segkit.checkpoint import load_checkpoint
from segkit.config import TrainConfig
from segkit.data.cityscapes import CityscapesDataset
from segkit.data.discover import DataRoots, list_samples, resolve_data_roots
from segkit.data.loaders import EpochSampler, build_cache, build_loaders, collate
from segkit.data.stats import class_statistics, class_weights
from segkit.data.transforms import eval_transform
from segkit.errors import SegkitError
from segkit.inference import infer
from segkit.labels import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES
from segkit.losses import build_loss
from segkit.metrics import ConfusionMatrix, format_table, make_protocol
from segkit.models import check_input_size, create_model, model_from_checkpoint, unwrap
from segkit.run import Run, TrainState
from segkit.runtime import Precision, log
from segkit.tb import TensorBoardLog


class TrainingDiverged(SegkitError):
    """The loss became NaN or infinite."""


# ----------------------------------------------------------------------------- building blocks


def build_training_model(cfg: TrainConfig, device: torch.device) -> tuple[nn.Module, nn.Module]:
    """The model (seeded init) and the module to train: DDP and/or torch.compile around it, or itself."""
    runtime.seed_everything(cfg.seed)
    model = create_model(cfg.model, NUM_CLASSES, **cfg.model_kwargs)
    check_input_size(model, *cfg.image_size)
    if cfg.sync_bn and torch.distributed.is_initialized():
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = model.to(device)
    if channels_last(cfg, device):
        model = model.to(memory_format=torch.channels_last)
    train_model: nn.Module = model
    if torch.distributed.is_initialized():
        train_model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        train_model = torch.compile(train_model)
    return model, train_model


def channels_last(cfg: TrainConfig, device: torch.device) -> bool:
    """channels_last speeds up convolutions on tensor cores; on CPU it is slower (0.75x here)."""
    return cfg.channels_last and device.type == "cuda"


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
                    time_fraction: Callable[[], float] | None = None) -> torch.optim.lr_scheduler.LRScheduler:
    """Poly decay (power 0.9) after linear warmup, stepped per iteration; or ReduceLROnPlateau.

    With a time budget, poly decays over whichever ends first — the epochs or the budget — so a
    run cut short by `--time-budget` still ends at a low learning rate instead of mid-schedule.

    Args:
        cfg: scheduler, epochs, warmup_epochs.
        optimizer: the optimizer to schedule.
        steps_per_epoch: optimizer steps in one epoch.
        time_fraction: share of the time budget used so far (0..1), or None without a budget.
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


def build_loss_fn(cfg: TrainConfig, train_samples: list, run_dir: Path, device: torch.device) -> nn.Module:
    """The configured loss, with class weights computed from the training labels (cached in run_dir)."""
    weights = None
    if cfg.class_weights != "none":
        stats = class_statistics(train_samples, NUM_CLASSES, cache_path=run_dir / "class_counts.json")
        w = class_weights(stats["pixels"], cfg.class_weights, image_pixels=stats["image_pixels"])
        weights = torch.as_tensor(w, dtype=torch.float32, device=device)
    return build_loss(cfg.loss, NUM_CLASSES, IGNORE_INDEX, class_weights=weights)


@dataclass
class Optim:
    """Everything one optimizer step needs: mixed-precision scaling, clipping, per-step schedule."""

    optimizer: torch.optim.Optimizer
    scheduler: Any  # LambdaLR (stepped per iteration) or ReduceLROnPlateau (per evaluation)
    scaler: torch.amp.GradScaler
    precision: Precision
    grad_clip: float = 0.0  # max gradient norm, 0 = off

    def step(self, model: nn.Module, loss: torch.Tensor) -> None:
        """Backward (scaled under fp16), optional clipping, optimizer and scheduler step."""
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), self.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if isinstance(self.scheduler, torch.optim.lr_scheduler.LambdaLR):
            self.scheduler.step()

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]


# ----------------------------------------------------------------------------- one epoch


def train_one_epoch(
    *,
    model: nn.Module,
    loader: DataLoader,
    loss_fn: nn.Module,
    optim: Optim,
    epoch: int,
    stop: Callable[[int], str | None] = lambda steps: None,
    on_step: Callable[[int, float, float], None] | None = None,
    channels_last: bool = False,
    log_every: int = 20,
) -> dict:
    """Train for one epoch, or until `stop(steps_done)` names a reason after a step.

    Args:
        model: the module to train (plain, DDP or compiled); its device is used.
        loader: batches {"image": (B, 3, H, W), "mask": (B, H, W)}.
        loss_fn: (logits, mask) -> scalar loss.
        optim: optimizer, scheduler, scaler and precision.
        epoch: epoch number (log lines).
        stop: called after each step with the steps done this epoch; a reason ("SIGTERM",
            "time_budget", ...) ends the epoch. A signal also ends it quietly when the DataLoader
            fails because the same signal stopped its workers.
        on_step: called with (steps done this epoch, loss, lr) after each step (TensorBoard).
        channels_last: feed images in channels_last memory format (CUDA).
        log_every: steps between headless log lines.

    Returns:
        {"train_loss", "steps", "images", "seconds", "images_per_sec", "lr", "stopped_early"}.
    """
    model.train()
    device = next(model.parameters()).device
    total_loss = torch.zeros((), device=device)
    steps = images = 0
    start = time.perf_counter()
    n_batches = len(loader)
    stopped = False
    for batch in _batches(loader, epoch, lambda: stop(steps)):  # noqa: B023 (the current step count, on purpose)
        image = batch["image"].to(device, non_blocking=True)  # (B, 3, H, W)
        mask = batch["mask"].to(device, non_blocking=True)  # (B, H, W)
        if channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        with runtime.autocast(device, optim.precision):
            logits = model(image)  # (B, C, H, W)
            loss = loss_fn(logits, mask)
        if not torch.isfinite(loss):
            what = f"the training loss became {float(loss.detach())}"
            raise TrainingDiverged(diverged_message(what, optim, epoch, steps + 1))
        optim.step(model, loss)
        total_loss += loss.detach()
        steps += 1
        images += image.shape[0]
        if on_step is not None:
            on_step(steps, float(loss.detach()), optim.lr)
        if runtime.is_main() and not runtime.person_is_watching() and (steps % log_every == 0 or steps == n_batches):
            _log_line(epoch, steps, n_batches, total_loss / steps, optim.lr, images, start)
        if runtime.any_rank(stop(steps) is not None, device):
            stopped = steps < n_batches
            break
    stopped = stopped or (stop(steps) is not None and steps < n_batches)
    seconds = time.perf_counter() - start
    return {
        "train_loss": float(total_loss / max(1, steps)), "steps": steps, "images": images, "seconds": seconds,
        "images_per_sec": images * runtime.world_size() / max(seconds, 1e-9), "lr": optim.lr, "stopped_early": stopped,
    }


def _batches(loader: DataLoader, epoch: int, reason: Callable[[], str | None]) -> Iterator[dict]:
    """The loader's batches; ends quietly if a signal took the workers down (SIGTERM to the group)."""
    iterator = runtime.progress(loader, len(loader), f"epoch {epoch}")
    while True:
        try:
            yield next(iterator)
        except StopIteration:
            return
        except RuntimeError:
            if reason() in StopFlag.SIGNALS:
                return
            raise


def _log_line(epoch: int, step: int, total: int, loss: torch.Tensor, lr: float, images: int, start: float) -> None:
    elapsed = time.perf_counter() - start
    eta = int(elapsed / step * (total - step))
    log.info("epoch %d step %d/%d loss %.4f lr %.2e %.1f img/s eta %d:%02d:%02d", epoch, step, total, float(loss), lr,
             images * runtime.world_size() / max(elapsed, 1e-9), eta // 3600, eta % 3600 // 60, eta % 60)


def diverged_message(what: str, optim: Optim, epoch: int, step: int) -> str:
    """What diverged, where, and what to try (the last good checkpoint is kept)."""
    amp = ", or --amp off" if optim.precision.dtype is not None else ""
    return (
        f"{what} at epoch {epoch}, step {step} (lr {optim.lr:.2e}). The last good checkpoint (last.pth, "
        "best_model.pth, if any was written) is kept: nothing non-finite was saved. Try a lower --lr "
        f"(e.g. {optim.lr / 10:.1e}), --grad-clip 1.0{amp}; then --resume or start a new run."
    )


@torch.no_grad()
def check_finite_weights(model: nn.Module, optim: Optim, epoch: int, step: int, image_size: tuple[int, int]) -> None:
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
        raise TrainingDiverged(diverged_message(what, optim, epoch, step))


# ----------------------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate(
    *,
    model: nn.Module,
    loader: DataLoader,
    image_size: tuple[int, int],
    precision: Precision | None = None,
    loss_fn: nn.Module | None = None,
    inference: str = "whole",
    per_image: bool = False,
) -> dict:
    """Confusion matrix over the whole loader (all-reduced under torchrun) and the mean loss.

    Masks come at the resolution the loader gives them (the label files' own size for the
    official protocol); scores are upsampled to each mask's size before the argmax.

    Args:
        model: the network (any wrapper); its device is used.
        loader: batches {"image", "mask", "name"}; images and masks may differ in size per item.
        image_size: the training size (what "whole" inference resizes to).
        precision: autocast plan (default: off).
        loss_fn: also report the mean validation loss ("whole" inference only).
        inference: whole, slide, flip or ms.
        per_image: also return [(name, mIoU)] per image.

    Returns:
        {"confusion": ConfusionMatrix, "val_loss": float | None, "images": int, "seconds": float,
         "per_image": [(name, mIoU), ...]}
    """
    precision = precision or Precision(None, False)
    model.eval()
    device = next(model.parameters()).device
    divisor = unwrap(model).size_divisor
    cm = ConfusionMatrix(NUM_CLASSES, IGNORE_INDEX, device=device)
    loss_sum = torch.zeros((), device=device)
    n, per, start = 0, [], time.perf_counter()
    with_loss = loss_fn is not None and inference == "whole"
    for batch in loader:
        for image, mask, names in _equal_size_groups(batch):
            image, mask = image.to(device, non_blocking=True), mask.to(device, non_blocking=True)
            with runtime.autocast(device, precision):
                scores = infer(model, image, image_size, inference, out_size=mask.shape[-2:], size_divisor=divisor)
            if with_loss:
                loss_sum += loss_fn(scores.float(), mask).detach() * mask.shape[0]
            pred = scores.argmax(1)
            cm.update(pred, mask)
            n += mask.shape[0]
            if per_image:
                per += [(name, _image_miou(p, m)) for p, m, name in zip(pred, mask, names)]
    stats = torch.tensor([float(loss_sum), float(n)], device=device)
    cm.all_reduce()
    if torch.distributed.is_initialized():
        torch.distributed.all_reduce(stats)
    images = int(stats[1].item())
    return {"confusion": cm, "images": images, "seconds": time.perf_counter() - start,
            "val_loss": float(stats[0] / max(1, images)) if with_loss else None, "per_image": per}


def _equal_size_groups(batch: dict) -> Iterator[tuple[torch.Tensor, torch.Tensor, list[str]]]:
    """(image (B,3,H,W), mask (B,H,W), names) groups of equal size from a collated batch."""
    if torch.is_tensor(batch["image"]) and torch.is_tensor(batch["mask"]):
        yield batch["image"], batch["mask"], batch["name"]
        return
    for i, name in enumerate(batch["name"]):
        yield batch["image"][i][None], batch["mask"][i][None], [name]


def _image_miou(pred: torch.Tensor, mask: torch.Tensor) -> float:
    one = ConfusionMatrix(NUM_CLASSES, IGNORE_INDEX, device=pred.device)
    one.update(pred, mask)
    return one.miou()


def evaluate_split(
    model: nn.Module,
    *,
    roots: DataRoots,
    image_size: tuple[int, int],
    split: str = "val",
    inference: str = "whole",
    eval_resolution: str = "label",
    batch_size: int = 1,
    max_images: int = 0,
    precision: Precision | None = None,
    per_image: bool = False,
) -> dict:
    """Score a model on a split; the summary carries its protocol. What `segkit evaluate` runs.

    Under torchrun each process takes its share of the images; the confusion matrix is summed.

    Args:
        model: network (eval mode is set).
        roots: the data set.
        image_size: the training size the model was trained at.
        split: split name.
        inference: whole, slide, flip or ms.
        eval_resolution: "label" (official: the label files' own size) or "train" (resized labels).
        batch_size: images per forward pass.
        max_images: first N images only (0 = all).
        precision: autocast plan (default: off).
        per_image: also list each image's mIoU (for "worst images").

    Returns:
        The metrics summary (schema of metrics.json) plus "seconds", "confusion_matrix" and, with
        `per_image`, "per_image": [{"name", "miou"}].
    """
    samples = list_samples(roots, split)
    samples = samples[:max_images] if max_images else samples
    label_res = eval_resolution == "label"
    ds = CityscapesDataset(samples, eval_transform(None if label_res else image_size), label_resolution=label_res)
    sampler = EpochSampler(len(ds), 0, False, runtime.rank(), runtime.world_size(), pad=False)
    loader = DataLoader(ds, batch_size=batch_size, sampler=sampler, collate_fn=collate,
                        num_workers=min(2, runtime.default_num_workers()))
    ev = evaluate(model=model, loader=loader, image_size=image_size, precision=precision, inference=inference,
                  per_image=per_image)
    resolution = "label" if label_res else f"train {image_size[0]}x{image_size[1]}"
    protocol = make_protocol(resolution=resolution, inference=inference, split=split, images=ev["images"],
                             data=data_name(roots))
    summary = ev["confusion"].summary(CLASS_NAMES, protocol)
    summary["seconds"] = ev["seconds"]
    summary["confusion_matrix"] = ev["confusion"].mat.cpu().tolist()
    if per_image:
        summary["per_image"] = [{"name": n, "miou": m} for n, m in ev["per_image"]]
    return summary


def data_name(roots: DataRoots) -> str:
    """How a metrics protocol names the data: "synthetic" or the label root."""
    return "synthetic" if roots.synthetic else str(roots.label_root)


# ----------------------------------------------------------------------------- stopping


class StopFlag:
    """SIGTERM (Kaggle's session end) and the first Ctrl-C ask for a clean stop after this step."""

    SIGNALS = ("SIGTERM", "SIGINT")

    def __init__(self) -> None:
        self.reason: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:  # noqa: PYI034 (a final class)
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.reason is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        self.reason = signal.Signals(signum).name
        if runtime.is_main():
            log.warning("%s received: finishing this step, then saving a checkpoint", self.reason)

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class Budget:
    """Wall-clock budget in minutes (0 = none); stops early enough to leave time to evaluate and save."""

    def __init__(self, minutes: float) -> None:
        self.seconds = minutes * 60
        self.start = time.monotonic()
        self.reserve = 0.0  # seconds the slowest evaluation + save took so far

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def left(self) -> float | None:
        return self.seconds - self.elapsed() if self.seconds else None

    def exhausted(self) -> bool:
        # 2x the slowest evaluate+save seen: the last evaluation plus the final official one.
        return self.seconds > 0 and self.elapsed() + 2 * self.reserve >= self.seconds

    def fraction(self) -> float:
        """Share of the usable budget spent so far (drives the time-aware poly schedule)."""
        usable = max(1e-9, self.seconds - 2 * self.reserve)
        return min(1.0, self.elapsed() / usable)

    def timed(self) -> _Timed:
        """`with budget.timed():` around an evaluation or a save raises `reserve` to its duration."""
        return _Timed(self)


class _Timed:
    def __init__(self, budget: Budget) -> None:
        self.budget = budget

    def __enter__(self) -> None:
        self.t0 = time.monotonic()

    def __exit__(self, *exc: object) -> None:
        self.budget.reserve = max(self.budget.reserve, time.monotonic() - self.t0)


# ----------------------------------------------------------------------------- fit


def fit(cfg: TrainConfig, *, on_epoch_end: Callable[[dict], None] | None = None,
        stop_at_step: int | None = None) -> dict:
    """Train `cfg` into `cfg.run_dir`: model -> optimizer -> schedule -> resume -> epochs -> final evaluation.

    Args:
        cfg: the config to train, exactly (resolve presets, resume and the Kaggle budget first:
            `segkit.launch.resolve_train_config`).
        on_epoch_end: called with each history row (e.g. a notebook's live plot).
        stop_at_step: stop cleanly after this many optimizer steps in total (as a time budget
            would), checkpointing the exact state — used to test resume equivalence.

    Returns:
        {"run_dir", "status" ("completed" | "time_budget" | "SIGTERM" | "SIGINT" | "stopped"),
         "epochs_done", "best_miou", "metrics" (the metrics.json dict), "history" (list of rows)}
    """
    device = runtime.setup_device(cfg.device)  # GPU check, torchrun process group, cudnn settings
    budget = Budget(cfg.time_budget)  # everything counts, data preparation included
    precision = runtime.resolve_precision(cfg.amp, device)
    roots = resolve_data_roots(cfg.data_root or None)
    run = Run.create(cfg, {"image_root": str(roots.image_root), "label_root": str(roots.label_root),
                           "synthetic": roots.synthetic})
    board = None
    try:
        with StopFlag() as flag:
            build_cache(cfg, roots)
            train_loader, val_loader = build_loaders(cfg, roots, device)
            model, train_model = build_training_model(cfg, device)
            optimizer = build_optimizer(cfg, model)
            scheduler = build_scheduler(cfg, optimizer, len(train_loader), budget.fraction if budget.seconds else None)
            scaler = torch.amp.GradScaler(device.type, enabled=precision.use_scaler)
            optim = Optim(optimizer, scheduler, scaler, precision, cfg.grad_clip)
            state = run.restore(model, optimizer, scheduler, scaler) if cfg.resume else TrainState()
            loss_fn = build_loss_fn(cfg, train_loader.dataset.samples, run.run_dir, device)
            board = TensorBoardLog.for_run(cfg, roots, state) if runtime.is_main() else None
            _announce(cfg, model, precision, device, roots, len(train_loader.dataset), len(val_loader.dataset))
            stopper = _Stopper(flag, budget, stop_at_step, elapsed_before=state.elapsed_seconds)
            while state.epoch < cfg.epochs:
                epoch = state.epoch
                train_loader.sampler.set_epoch(epoch, state.step_in_epoch, cfg.batch_size)
                result = train_one_epoch(
                    model=train_model, loader=train_loader, loss_fn=loss_fn, optim=optim, epoch=epoch,
                    stop=lambda steps: stopper.reason(state.global_step + steps), log_every=cfg.log_every,
                    on_step=board.on_step(state.global_step) if board else None, channels_last=channels_last(cfg, device),
                )
                row = _advance(state, result, stopper.elapsed())
                check_finite_weights(model, optim, epoch, state.global_step, cfg.image_size)
                reason = stopper.reason(state.global_step)
                # A signal leaves seconds at most (Kaggle kills soon after SIGTERM): save, don't evaluate.
                if _validation_due(cfg, result, state, reason):
                    with budget.timed():
                        ev = evaluate(model=train_model, loader=val_loader, image_size=cfg.image_size,
                                      precision=precision, loss_fn=loss_fn)
                        _record_validation(cfg, run, board, model, optim, ev, row, state, data_name(roots))
                state.history.append(row)  # a partial epoch's row is replaced when a resumed run completes it
                state.status = reason or ("completed" if state.epoch >= cfg.epochs else "running")
                with budget.timed():
                    run.save_last(model, optimizer, scheduler, scaler, state)
                if on_epoch_end is not None and runtime.is_main():
                    on_epoch_end(row)
                if reason is not None:
                    break
            metrics = final_evaluation(cfg, run, roots, device, precision, budget.left())
            _say_how_it_ended(state, run)
            return {"run_dir": str(run.run_dir), "status": state.status, "epochs_done": state.epoch,
                    "best_miou": state.best_miou, "metrics": metrics, "history": state.history}
    finally:
        if board is not None:
            board.close()
        runtime.leave_process_group()  # every rank leaves together, after rank 0's last write


class _Stopper:
    """Why training should stop after a step: a signal, the time budget, or `stop_at_step`."""

    def __init__(self, flag: StopFlag, budget: Budget, stop_at_step: int | None, elapsed_before: float) -> None:
        self.flag, self.budget, self.stop_at_step, self.elapsed_before = flag, budget, stop_at_step, elapsed_before

    def reason(self, global_step: int) -> str | None:
        if self.flag.reason:
            return self.flag.reason
        if self.budget.exhausted():
            return "time_budget"
        return "stopped" if self.stop_at_step is not None and global_step >= self.stop_at_step else None

    def elapsed(self) -> float:
        """Seconds of this run over all its sessions (a resumed run continues the count)."""
        return self.elapsed_before + self.budget.elapsed()


def _advance(state: TrainState, result: dict, elapsed_seconds: float) -> dict:
    """Count the epoch's steps into the state (a stopped epoch stays current); its history row."""
    epoch = state.epoch
    state.global_step += result["steps"]
    state.step_in_epoch += result["steps"]
    _carry_partial_epoch(state, result)
    if not result["stopped_early"]:
        state.epoch, state.step_in_epoch = epoch + 1, 0
    state.elapsed_seconds = elapsed_seconds
    return {
        "epoch": epoch, "train_loss": result["train_loss"], "val_loss": None, "miou": None, "mean_dice": None,
        "pixel_accuracy": None, "lr": result["lr"], "images_per_sec": result["images_per_sec"],
        "minutes": elapsed_seconds / 60, "steps": state.global_step,
    }


def _validation_due(cfg: TrainConfig, result: dict, state: TrainState, reason: str | None) -> bool:
    """Every eval_every epochs and after the last; before a budget stop; never after a signal."""
    if reason in StopFlag.SIGNALS:
        return False
    finished = not result["stopped_early"]
    return reason == "time_budget" or (finished and (state.epoch % cfg.eval_every == 0 or state.epoch >= cfg.epochs))


def _record_validation(cfg: TrainConfig, run: Run, board: TensorBoardLog | None, model: nn.Module, optim: Optim,
                       ev: dict, row: dict, state: TrainState, data: str) -> None:
    """Metrics into the history row, the log and TensorBoard; best_model.pth; a plateau scheduler's step."""
    cm = ev["confusion"]
    row.update(val_loss=ev["val_loss"], miou=_finite(cm.miou()), mean_dice=_finite(cm.mean_dice()),
               pixel_accuracy=_finite(cm.pixel_accuracy()))
    miou = row["miou"] if row["miou"] is not None else -1.0
    if isinstance(optim.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        optim.scheduler.step(max(miou, 0.0))
    if runtime.is_main():
        log.info("epoch %d val mIoU %.4f dice %s pixel acc %s (%s resolution, %d images)", row["epoch"], miou,
                 _fmt(row["mean_dice"]), _fmt(row["pixel_accuracy"]), cfg.eval_resolution, ev["images"])
    if board is not None:
        board.validation(model, cm, row, state.global_step)
    if miou > state.best_miou:
        state.best_miou, state.best_epoch = miou, row["epoch"]
        resolution = "label" if cfg.eval_resolution == "label" else "train {}x{}".format(*cfg.image_size)
        protocol = make_protocol(resolution=resolution, inference="whole", split="val", images=ev["images"], data=data)
        run.save_best(model, cm.summary(CLASS_NAMES, protocol), row["epoch"])


def _say_how_it_ended(state: TrainState, run: Run) -> None:
    if runtime.is_main() and state.status != "completed":
        log.warning("training stopped (%s) at epoch %d, step %d: continue with the same command plus --resume "
                    "(run_dir %s)", state.status, state.epoch, state.step_in_epoch, run.run_dir)


def final_evaluation(cfg: TrainConfig, run: Run, roots: DataRoots, device: torch.device, precision: Precision,
                     seconds_left: float | None) -> dict | None:
    """best_model.pth scored as `segkit evaluate` scores it (label resolution) -> metrics.json.

    With a time budget, it runs only if it fits in what is left (estimated from one image);
    otherwise metrics.json keeps the best model's training-time numbers, labelled so in their
    protocol, and the log says how to get the official ones.
    """
    best = run.run_dir / "best_model.pth"
    runtime.barrier()  # rank 0 wrote best_model.pth
    if not best.exists():
        return None
    ckpt = load_checkpoint(best, map_location=device)
    model = model_from_checkpoint(ckpt, device)
    n_images = len(list_samples(roots, "val")[: cfg.max_val_images or None])
    if seconds_left is not None:
        probe = evaluate_split(model, roots=roots, image_size=cfg.image_size, max_images=1, precision=precision)
        estimate = probe["seconds"] * n_images / runtime.world_size()
        if runtime.any_rank(estimate > seconds_left + 60, device):
            if runtime.is_main():
                log.warning("the official evaluation (%d val images at the label files' resolution, about %.0f s) "
                            "does not fit in the time budget: metrics.json holds the best model's %s-resolution "
                            "numbers. Official numbers: segkit evaluate --checkpoint %s", n_images, estimate,
                            cfg.eval_resolution, best)
            metrics = {**ckpt["metrics"], "epoch": ckpt.get("epoch"), "checkpoint": str(best)}
            run.write_metrics(metrics)
            return metrics
    metrics = evaluate_split(model, roots=roots, image_size=cfg.image_size, max_images=cfg.max_val_images,
                             precision=precision)
    metrics.update(epoch=ckpt.get("epoch"), checkpoint=str(best))
    run.write_metrics(metrics)
    if runtime.is_main():
        log.info("best model (epoch %s):\n%s", ckpt.get("epoch"), format_table(metrics))
    return metrics


def _announce(cfg: TrainConfig, model: nn.Module, precision: Precision, device: torch.device, roots: DataRoots,
              n_train: int, n_val: int) -> None:
    if not runtime.is_main():
        return
    params = sum(p.numel() for p in model.parameters()) / 1e6
    data = "SYNTHETIC data (not Cityscapes)" if roots.synthetic else str(roots.image_root)
    log.info("run %s | %s %.1fM params | %s | amp %s | %d processes | %d train / %d val images | %s",
             cfg.run_dir, cfg.model, params, device, precision.name, runtime.world_size(), n_train, n_val, data)
    if cfg.time_budget:
        log.info("time budget %.1f minutes: training stops cleanly, evaluates and saves before it runs out", cfg.time_budget)


def _carry_partial_epoch(state: TrainState, result: dict) -> None:
    """An epoch split by a stop and a resume reports the mean loss of all its steps."""
    done = state.partial_epoch if (state.partial_epoch or {}).get("epoch") == state.epoch else None
    state.partial_epoch = None
    if done:
        steps = done["steps"] + result["steps"]
        result["train_loss"] = (done["loss_sum"] + result["train_loss"] * result["steps"]) / max(1, steps)
        result["steps"] = steps
    if result["stopped_early"]:
        state.partial_epoch = {"epoch": state.epoch, "loss_sum": result["train_loss"] * result["steps"],
                               "steps": result["steps"]}


def _finite(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"
