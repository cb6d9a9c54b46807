"""One epoch of training and one pass of evaluation: `train_one_epoch`, `evaluate`, `evaluate_split`."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import torch
from torch import nn
from torch.utils.data import DataLoader

from segkit import progress, runtime
from segkit.data.cityscapes import CityscapesDataset
from segkit.data.discover import DataRoots, list_samples
from segkit.data.loaders import EpochSampler, collate
from segkit.data.pairs import protocol_fields
from segkit.data.transforms import MEAN, STD, eval_transform
from segkit.engine.setup import (
    Optim,
    TrainingDiverged,
)
from segkit.engine.stopping import StopFlag
from segkit.inference import infer
from segkit.labels import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES
from segkit.metrics import ConfusionMatrix, input_scaling, make_protocol
from segkit.models import unwrap
from segkit.runtime import Precision, log


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
    return {
        "train_loss": float(total_loss / max(1, steps)), "steps": steps, "images": images, "seconds": seconds,
        "images_per_sec": images * runtime.world_size() / max(seconds, 1e-9), "lr": optim.lr, "stopped_early": stopped,
    }


def _batches(loader: DataLoader, reason: Callable[[], str | None]) -> Iterator[dict]:
    """The loader's batches; ends quietly if a signal took the workers down (SIGTERM to the group)."""
    iterator = iter(loader)
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
    for batch in progress.bar(loader, desc="evaluate", unit="batch", leave=False):
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
    mean, std = getattr(unwrap(model), "normalization", (MEAN, STD))
    ds = CityscapesDataset(samples, eval_transform(None if label_res else image_size, mean, std), label_resolution=label_res)
    sampler = EpochSampler(len(ds), 0, False, runtime.rank(), runtime.world_size(), pad=False)
    loader = DataLoader(ds, batch_size=batch_size, sampler=sampler, collate_fn=collate,
                        num_workers=min(2, runtime.default_num_workers()))
    ev = evaluate(model=model, loader=loader, image_size=image_size, precision=precision, inference=inference,
                  per_image=per_image)
    resolution = "label" if label_res else f"train {image_size[0]}x{image_size[1]}"
    protocol = make_protocol(resolution=resolution, inference=inference, split=split, images=ev["images"],
                             data=data_name(roots), input=input_scaling(image_size), **protocol_fields(samples))
    summary = ev["confusion"].summary(CLASS_NAMES, protocol)
    summary["seconds"] = ev["seconds"]
    summary["confusion_matrix"] = ev["confusion"].mat.cpu().tolist()
    if per_image:
        summary["per_image"] = [{"name": n, "miou": m} for n, m in ev["per_image"]]
    return summary


def data_name(roots: DataRoots) -> str:
    """How a metrics protocol names the data: "synthetic" or the label root."""
    return "synthetic" if roots.synthetic else str(roots.label_root)
