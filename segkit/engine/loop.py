"""One epoch of training (`train_one_epoch` -> `EpochResult`) and the checks after it (weights still finite)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader

from segkit import progress, runtime
from segkit.engine.setup import Optim, TrainingDiverged
from segkit.rundir import SIGNALS, Status
from segkit.runtime import log


@dataclass(frozen=True)
class EpochResult:
    """What one call of `train_one_epoch` did."""

    train_loss: float  # mean loss over its steps
    steps: int  # optimizer steps taken
    images: int  # images seen by this process
    seconds: float  # wall time
    images_per_sec: float  # throughput of all processes together
    lr: float  # learning rate after the last step
    stopped_early: bool  # a stop reason ended the epoch before its last batch


def train_one_epoch(
    *,
    model: nn.Module,
    loader: DataLoader,
    loss_fn: nn.Module,
    optim: Optim,
    epoch: int,
    stop: Callable[[int], Status | None] = lambda steps: None,
    on_step: Callable[[int, float, float], None] | None = None,
    channels_last: bool = False,
    log_every: int = 20,
) -> EpochResult:
    """Train for one epoch, or until `stop(steps_done)` names a reason after a step.

    Args:
        model: the module to train (plain, DDP or compiled); its device is used.
        loader: batches {"image": (B, 3, H, W), "mask": (B, H, W)}.
        loss_fn: (logits, mask) -> scalar loss.
        optim: optimizer, scheduler, scaler and precision.
        epoch: epoch number (log lines).
        stop: called after each step with the steps done this epoch; a reason (`Status.SIGTERM`,
            `Status.TIME_BUDGET`, ...) ends the epoch. A signal also ends it quietly when the DataLoader
            fails because the same signal stopped its workers.
        on_step: called with (steps done this epoch, loss, lr) after each step (TensorBoard).
        channels_last: feed images in channels_last memory format (CUDA).
        log_every: steps between headless log lines.

    Returns:
        What the epoch did (`EpochResult`).
    """
    model.train()
    device = next(model.parameters()).device
    total_loss = torch.zeros((), device=device)
    steps = images = 0
    start = time.perf_counter()
    n_batches = len(loader)
    stopped = False
    # A bar per epoch when a person watches; headless, the log lines below say more (loss, lr).
    with progress.bar(total=n_batches, desc=f"epoch {epoch}", unit="batch", every=None, leave=False) as bar:
        for batch in _batches(loader, lambda: stop(steps)):  # noqa: B023 (the current step count, on purpose)
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
            if not bar.disable:  # a person watches: the running loss on the bar (one sync per step)
                bar.set_postfix_str(f"loss {float(total_loss) / steps:.4f}", refresh=False)
                bar.update()
            elif runtime.is_main() and (steps % log_every == 0 or steps == n_batches):
                _log_line(epoch, steps, n_batches, total_loss / steps, optim.lr, images, start)
            if runtime.any_rank(stop(steps) is not None, device):
                stopped = steps < n_batches
                break
    stopped = stopped or (stop(steps) is not None and steps < n_batches)
    seconds = time.perf_counter() - start
    return EpochResult(
        float(total_loss / max(1, steps)),
        steps,
        images,
        seconds,
        images * runtime.world_size() / max(seconds, 1e-9),
        optim.lr,
        stopped,
    )


def _batches(loader: DataLoader, reason: Callable[[], Status | None]) -> Iterator[dict]:
    """The loader's batches; ends quietly if a signal took the workers down (SIGTERM to the group)."""
    iterator = iter(loader)
    while True:
        try:
            yield next(iterator)
        except StopIteration:
            return
        except RuntimeError:
            if reason() in SIGNALS:
                return
            raise


def _log_line(epoch: int, step: int, total: int, loss: torch.Tensor, lr: float, images: int, start: float) -> None:
    elapsed = time.perf_counter() - start
    eta = int(elapsed / step * (total - step))
    log.info(
        "epoch %d step %d/%d loss %.4f lr %.2e %.1f img/s eta %d:%02d:%02d",
        epoch,
        step,
        total,
        float(loss),
        lr,
        images * runtime.world_size() / max(elapsed, 1e-9),
        eta // 3600,
        eta % 3600 // 60,
        eta % 60,
    )


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
