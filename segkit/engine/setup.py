"""What `fit` builds before the first step: the model to train, optimizer, schedule, loss, `Optim`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from segkit import runtime
from segkit.config import TrainConfig
from segkit.data.stats import class_statistics, class_weights
from segkit.engine import finetune
from segkit.errors import SegkitError
from segkit.labels import CITYSCAPES, IGNORE_INDEX, LabelSpace, load_class_map
from segkit.losses import build_loss
from segkit.models import build_model, check_input_size, facts, model_from_spec, set_facts
from segkit.runtime import Precision, log


class TrainingDiverged(SegkitError):
    """The loss became NaN or infinite."""


def build_training_model(
    cfg: TrainConfig, device: torch.device, resume_ckpt: dict | None = None, space: LabelSpace = CITYSCAPES
) -> tuple[nn.Module, nn.Module]:
    """The model (seeded init) and the module to train: DDP and/or torch.compile around it, or itself.

    A fresh run's encoder starts from its pretrained weights, or the whole network from `init_from`
    (found on disk: the command that resolved the config fetched them); a resumed run
    (`resume_ckpt`: its last.pth) rebuilds the network last.pth describes and takes every weight
    from it instead, keeping the normalisation and provenance it started with.
    """
    runtime.seed_everything(cfg.seed)
    if resume_ckpt is not None:  # never look for pretrained files again
        model = model_from_spec(resume_ckpt["model_spec"])
        norm = resume_ckpt["normalization"]
        set_facts(model, mean=tuple(norm["mean"]), std=tuple(norm["std"]), pretrained=resume_ckpt.get("pretrained"))
        set_facts(model, space=space)
    else:
        class_map = load_class_map(cfg.class_map) if cfg.class_map and cfg.init_from else None
        model = build_model(cfg.model_choice, space=space, class_map=class_map)
        if runtime.is_main() and (head := (facts(model).pretrained or {}).get("head")):
            log.info("init-from %s: %s", cfg.init_from, head)
    check_input_size(model, *cfg.crop)
    finetune.prepare(model, cfg.encoder_lr_scale, cfg.freeze_encoder_bn)
    if cfg.sync_bn and torch.distributed.is_initialized():
        if device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        elif runtime.is_main():  # torch's SyncBatchNorm runs on GPUs only
            log.warning(
                "sync_bn: SyncBatchNorm works on CUDA GPUs only; on %s each process keeps its own BatchNorm statistics",
                device.type,
            )
    model = model.to(device)
    if channels_last(cfg, device):
        model = model.to(memory_format=torch.channels_last)
    train_model: nn.Module = model
    if torch.distributed.is_initialized():
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
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
    if cfg.encoder_lr_scale != 1.0:  # the encoder's own lr: four groups (two when it is frozen)
        groups = finetune.parameter_groups(model, cfg.weight_decay, cfg.lr, cfg.encoder_lr_scale)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9, nesterov=True)


def build_scheduler(
    cfg: TrainConfig,
    optimizer: torch.optim.Optimizer,
    steps_per_epoch: int,
    time_fraction: Callable[[], float] | None = None,
) -> torch.optim.lr_scheduler.LRScheduler:
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


def build_loss_fn(
    cfg: TrainConfig, train_samples: list, run_dir: Path, device: torch.device, space: LabelSpace = CITYSCAPES
) -> nn.Module:
    """The configured loss over `space`'s classes, with class weights from the training labels (cached in run_dir)."""
    weights = None
    if cfg.class_weights != "none":
        # Rank 0 counts (class_counts.json lives in its run directory); the other ranks take its counts.
        stats = runtime.main_decides(
            lambda: class_statistics(train_samples, cache_path=run_dir / "class_counts.json", space=space)
        )
        w = class_weights(stats["pixels"], cfg.class_weights, image_pixels=stats["image_pixels"])
        weights = torch.as_tensor(w, dtype=torch.float32, device=device)
    return build_loss(cfg.loss, space.num_classes, IGNORE_INDEX, class_weights=weights)


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
