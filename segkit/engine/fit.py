"""`fit`: the whole training run, top to bottom, and the final official evaluation."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import torch
from torch import nn

from segkit import runtime
from segkit.checkpoint import load_checkpoint
from segkit.config import TrainConfig
from segkit.data.discover import DataRoots, list_samples, resolve_data_roots
from segkit.data.layouts import layouts_of
from segkit.data.loaders import build_cache, build_loaders, check_same_data
from segkit.data.spaces import space_of
from segkit.engine.loop import EpochResult, check_finite_weights, train_one_epoch
from segkit.engine.setup import (
    Optim,
    build_loss_fn,
    build_optimizer,
    build_scheduler,
    build_training_model,
    channels_last,
)
from segkit.engine.stopping import Budget, StopFlag, Stopper
from segkit.evaluation import Evaluation, evaluate, evaluate_split, protocol_for
from segkit.labels import LabelSpace
from segkit.metrics import format_table
from segkit.models import facts, model_from_checkpoint, model_space
from segkit.rundir import SIGNALS, HistoryRow, Run, RunSummary, Status, TrainState
from segkit.runtime import Precision, log
from segkit.tb import TensorBoardLog

PROBE_IMAGES = 4  # warm images timed to estimate the final evaluation's time (after one discarded)


def fit(
    cfg: TrainConfig, *, on_epoch_end: Callable[[HistoryRow], None] | None = None, stop_at_step: int | None = None
) -> RunSummary:
    """Train `cfg` into `cfg.run_dir`: model -> optimizer -> schedule -> resume -> epochs -> final evaluation.

    Args:
        cfg: the config to train, exactly (resolve presets, resume and the Kaggle budget first:
            `segkit.launch.resolve_train_config`); under torchrun, rank 0's, with each node's
            own NODE_FIELDS.
        on_epoch_end: called with each epoch's `HistoryRow` (e.g. a notebook's live plot).
        stop_at_step: stop cleanly after this many optimizer steps in total (as a time budget
            would), checkpointing the exact state — used to test resume equivalence.

    Returns:
        How the run ended, its best mIoU, metrics.json and history (`RunSummary`).
    """
    device = runtime.setup_device(cfg.device)  # GPU check, torchrun process group, cudnn settings
    cfg = _main_config(cfg)
    budget = Budget(cfg.time_budget)  # everything counts, data preparation included
    precision = runtime.resolve_precision(cfg.amp, device)
    # Each node finds its own copy of the data; a node without one stops every node, named.
    roots, (space, where) = runtime.on_every_rank(lambda: _data_of(cfg))  # space: the head's classes
    if runtime.is_main():
        log.info("%s", where)
    check_same_data(cfg, roots, space)  # every node's copy of the data: the same files, or refused here
    run = Run.create(cfg, roots.record(), space, where)  # the data found, layout included: evaluation finds it again
    board = model = train_model = None
    try:
        with StopFlag() as flag:
            build_cache(cfg, roots, space)
            model, train_model = build_training_model(cfg, device, run.resume_ckpt, space)
            train_loader, val_loader = build_loaders(cfg, roots, device, facts(model).normalization, space)
            optimizer = build_optimizer(cfg, model)
            scheduler = build_scheduler(cfg, optimizer, len(train_loader), budget.fraction if budget.seconds else None)
            scaler = torch.amp.GradScaler(device.type, enabled=precision.use_scaler)
            optim = Optim(optimizer, scheduler, scaler, precision, cfg.grad_clip)
            state = run.restore(model, optimizer, scheduler, scaler) if cfg.resume else TrainState()
            loss_fn = build_loss_fn(cfg, train_loader.dataset.samples, run.run_dir, device, space)
            board = TensorBoardLog.for_run(cfg, roots, state) if runtime.is_main() else None
            _announce(cfg, model, precision, device, roots, len(train_loader.dataset), len(val_loader.dataset))
            stopper = Stopper(flag, budget, stop_at_step, elapsed_before=state.elapsed_seconds)
            while state.epoch < cfg.epochs:
                epoch = state.epoch
                train_loader.sampler.set_epoch(epoch, state.step_in_epoch, cfg.batch_size)
                result = train_one_epoch(
                    model=train_model,
                    loader=train_loader,
                    loss_fn=loss_fn,
                    optim=optim,
                    epoch=epoch,
                    stop=lambda steps: stopper.reason(state.global_step + steps),
                    log_every=cfg.log_every,
                    on_step=board.on_step(state.global_step) if board else None,
                    channels_last=channels_last(cfg, device),
                )
                row = _advance(state, result, stopper.elapsed())
                check_finite_weights(model, optim, epoch, state.global_step, cfg.crop)
                reason = stopper.reason(state.global_step)
                # A signal leaves seconds at most (Kaggle kills soon after SIGTERM): save, don't evaluate.
                if _validation_due(cfg, result, state, reason):
                    with budget.timed():
                        ev = evaluate(
                            model=train_model,
                            loader=val_loader,
                            image_size=cfg.image_size,
                            precision=precision,
                            loss_fn=loss_fn,
                        )
                        _record_validation(
                            cfg, run, board, model, optim, ev, row, state, roots, val_loader.dataset.samples
                        )
                state.history.append(row)  # a partial epoch's row is replaced when a resumed run completes it
                state.status = reason or (Status.COMPLETED if state.epoch >= cfg.epochs else Status.RUNNING)
                with budget.timed():
                    run.save_last(model, optimizer, scheduler, scaler, state)
                if on_epoch_end is not None and runtime.is_main():
                    on_epoch_end(row)
                if reason is not None:
                    break
            metrics = final_evaluation(cfg, run, roots, device, precision, budget.left(), space)
            if board is not None:
                board.hparams(cfg, state, metrics)
            _say_how_it_ended(state, run)
            return RunSummary.of(run.run_dir, state, metrics)
    finally:
        if board is not None:
            board.close()
        run.release()  # train.lock: nobody trains here any more
        # DistributedDataParallel holds the process group inside reference cycles: let it go first,
        # or the group outlives destroy_process_group and gloo aborts at interpreter exit.
        model = train_model = None
        runtime.leave_process_group()  # every rank leaves together, after rank 0's last write


def _data_of(cfg: TrainConfig) -> tuple[DataRoots, tuple[LabelSpace, str]]:
    """The data roots and the classes their label files hold (with where that was decided)."""
    roots = resolve_data_roots(cfg.data_root or None, layouts=layouts_of(cfg))
    return roots, space_of(cfg.classes, roots)


# What each node keeps for itself under torchrun: its copy of the data, its CPUs, its cache.
NODE_FIELDS = ("data_root", "num_workers", "cache")


def _main_config(cfg: TrainConfig) -> TrainConfig:
    """Rank 0's config on every rank, but each node's own NODE_FIELDS.

    Only rank 0's host may hold the run directory: with --resume the other nodes cannot read the
    run's own settings from last.pth (`launch.resolve_train_config`), so they train rank 0's.
    """
    if runtime.world_size() <= 1:
        return cfg
    main = runtime.from_main(cfg)
    return replace(main, **{name: getattr(cfg, name) for name in NODE_FIELDS})


def _advance(state: TrainState, result: EpochResult, elapsed_seconds: float) -> HistoryRow:
    """Count the epoch's steps into the state (a stopped epoch stays current); its history row."""
    epoch = state.epoch
    state.global_step += result.steps
    state.step_in_epoch += result.steps
    train_loss = _carry_partial_epoch(state, result)
    if not result.stopped_early:
        state.epoch, state.step_in_epoch = epoch + 1, 0
    state.elapsed_seconds = elapsed_seconds
    return HistoryRow(
        epoch=epoch,
        train_loss=train_loss,
        lr=result.lr,
        images_per_sec=result.images_per_sec,
        minutes=elapsed_seconds / 60,
        steps=state.global_step,
    )


def _validation_due(cfg: TrainConfig, result: EpochResult, state: TrainState, reason: Status | None) -> bool:
    """Every eval_every epochs and after the last; before a budget stop; never after a signal."""
    if reason in SIGNALS:
        return False
    finished = not result.stopped_early
    return reason == Status.TIME_BUDGET or (
        finished and (state.epoch % cfg.eval_every == 0 or state.epoch >= cfg.epochs)
    )


def _record_validation(
    cfg: TrainConfig,
    run: Run,
    board: TensorBoardLog | None,
    model: nn.Module,
    optim: Optim,
    ev: Evaluation,
    row: HistoryRow,
    state: TrainState,
    roots: DataRoots,
    samples: list,
) -> None:
    """Metrics into the history row, the log and TensorBoard; best_model.pth; a plateau scheduler's step."""
    cm = ev.confusion
    row.val_loss, row.miou = ev.val_loss, _finite(cm.miou())
    row.mean_dice, row.pixel_accuracy = _finite(cm.mean_dice()), _finite(cm.pixel_accuracy())
    miou = row.miou if row.miou is not None else -1.0
    if isinstance(optim.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        optim.scheduler.step(max(miou, 0.0))
    if runtime.is_main():
        log.info(
            "epoch %d val mIoU %.4f dice %s pixel acc %s (%s resolution, %d images)",
            row.epoch,
            miou,
            _fmt(row.mean_dice),
            _fmt(row.pixel_accuracy),
            cfg.eval_resolution,
            ev.images,
        )
    if board is not None:
        board.validation(model, cm, row, state.global_step)
    if miou > state.best_miou:
        state.best_miou, state.best_epoch = miou, row.epoch
        protocol = protocol_for(
            roots=roots,
            samples=samples,
            split=cfg.val_split,
            images=ev.images,
            image_size=cfg.image_size,
            eval_resolution=cfg.eval_resolution,
            label_space=model_space(model).tag,
        )
        run.save_best(model, cm.summary(model_space(model).names, protocol), row.epoch)


def _say_how_it_ended(state: TrainState, run: Run) -> None:
    if runtime.is_main() and state.status != Status.COMPLETED:
        log.warning(
            "training stopped (%s) at epoch %d, step %d: continue with the same command plus --resume (run_dir %s)",
            state.status,
            state.epoch,
            state.step_in_epoch,
            run.run_dir,
        )


def evaluation_estimate(probe: Callable[[int], float], n_images: int, world_size: int = 1) -> float:
    """Seconds an evaluation of `n_images` will take, from `probe(k)` = seconds to evaluate the first k.

    The first call pays for the warm-up (the first forward pass, the allocator, the data workers
    starting), which one image would multiply by `n_images`: it is run and discarded, then
    PROBE_IMAGES images per process are timed warm. Under torchrun each process evaluates its share.
    """
    probe(1)
    k = max(1, min(n_images, PROBE_IMAGES * world_size))
    return probe(k) * math.ceil(n_images / world_size) / math.ceil(k / world_size)


def final_evaluation(
    cfg: TrainConfig,
    run: Run,
    roots: DataRoots,
    device: torch.device,
    precision: Precision,
    seconds_left: float | None,
    space: LabelSpace | None = None,
) -> dict | None:
    """best_model.pth scored as `segkit evaluate` scores it (label resolution) -> metrics.json.

    With a time budget, it runs only if it fits in what is left (estimated from a few warm images);
    otherwise metrics.json keeps the best model's training-time numbers, labelled so in their
    protocol, and the log says how to get the official ones.
    """
    best = run.run_dir / "best_model.pth"
    # Rank 0 wrote best_model.pth on its own host; the other nodes get its content from it.
    ckpt = runtime.main_decides(lambda: load_checkpoint(best) if best.exists() else None)
    if ckpt is None:
        return None
    model = model_from_checkpoint(ckpt, device)
    n_images = len(list_samples(roots, cfg.val_split)[: cfg.max_val_images or None])

    def score(max_images: int) -> dict:  # the official evaluation, on the first `max_images` (0 = all)
        return evaluate_split(
            model,
            roots=roots,
            image_size=cfg.inference_size,
            split=cfg.val_split,
            max_images=max_images,
            precision=precision,
            space=space,
        )

    if seconds_left is not None:
        estimate = evaluation_estimate(lambda k: score(k)["seconds"], n_images, runtime.world_size())
        if runtime.any_rank(estimate > seconds_left + 60, device):
            if runtime.is_main():
                log.warning(
                    "the official evaluation (%d val images at the label files' resolution, about %.0f s) "
                    "does not fit in the time budget: metrics.json holds the best model's %s-resolution "
                    "numbers. Official numbers: segkit evaluate --checkpoint %s",
                    n_images,
                    estimate,
                    cfg.eval_resolution,
                    best,
                )
            metrics = {**ckpt["metrics"], "epoch": ckpt.get("epoch"), "checkpoint": str(best)}
            run.write_metrics(metrics)
            return metrics
    metrics = score(cfg.max_val_images)
    metrics.update(epoch=ckpt.get("epoch"), checkpoint=str(best))
    run.write_metrics(metrics)
    if runtime.is_main():
        log.info("best model (epoch %s):\n%s", ckpt.get("epoch"), format_table(metrics))
    return metrics


def _announce(
    cfg: TrainConfig,
    model: nn.Module,
    precision: Precision,
    device: torch.device,
    roots: DataRoots,
    n_train: int,
    n_val: int,
) -> None:
    if not runtime.is_main():
        return
    params = sum(p.numel() for p in model.parameters()) / 1e6
    data = "SYNTHETIC data (not Cityscapes)" if roots.synthetic else str(roots.image_root)
    log.info(
        "run %s | %s %.1fM params | %s | amp %s | %d processes | %d train / %d val images | %s",
        cfg.run_dir,
        cfg.model,
        params,
        device,
        precision.name,
        runtime.world_size(),
        n_train,
        n_val,
        data,
    )
    if cfg.time_budget:
        log.info(
            "time budget %.1f minutes: training stops cleanly, evaluates and saves before it runs out", cfg.time_budget
        )


def _carry_partial_epoch(state: TrainState, result: EpochResult) -> float:
    """The epoch's mean training loss; an epoch split by a stop and a resume reports the mean of all its steps."""
    done = state.partial_epoch if (state.partial_epoch or {}).get("epoch") == state.epoch else None
    state.partial_epoch = None
    train_loss, steps = result.train_loss, result.steps
    if done:
        steps = done["steps"] + result.steps
        train_loss = (done["loss_sum"] + result.train_loss * result.steps) / max(1, steps)
    if result.stopped_early:
        state.partial_epoch = {"epoch": state.epoch, "loss_sum": train_loss * steps, "steps": steps}
    return train_loss


def _finite(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"
