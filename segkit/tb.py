"""What training shows in TensorBoard (`run_dir/tb`): losses, lr, validation metrics, per-class IoU,
throughput, the confusion matrix and input | ground truth | prediction overlays of fixed images.

`segkit.engine.fit` calls `TensorBoardLog.step` after optimizer steps, `.validation` after
each evaluation and `.hparams` when training ends (the HParams tab: the run's settings beside its
final metrics, one row per run), on rank 0 only. Serving the logs is `segkit.dashboard`'s job.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from segkit.config import TrainConfig
from segkit.data.cityscapes import CityscapesDataset
from segkit.data.discover import DataRoots, list_samples
from segkit.data.transforms import denormalize, eval_transform
from segkit.inference import infer, predicted_classes
from segkit.metrics import ConfusionMatrix, protocol_text
from segkit.models import facts, model_space, unwrap
from segkit.reflect import to_dict
from segkit.rundir import HistoryRow, Status, TrainState
from segkit.viz import figure_to_array, plot_confusion, triptych_array

# Settings that change nothing a run learns (paths, workers, logging): not HParams columns.
NOT_HPARAMS = (
    "data_root",
    "run_dir",
    "device",
    "num_workers",
    "log_every",
    "num_vis",
    "resume",
    "overwrite",
    "dashboard",
)
# The HParams metrics: the final evaluation, and the last epoch's losses and validation mIoU.
HPARAM_METRICS = (
    "val/final_miou",
    "val/final_mean_dice",
    "val/final_pixel_accuracy",
    "val/miou",
    "val/val_loss",
    "train/epoch_loss",
)


class TensorBoardLog:
    """A SummaryWriter on `run_dir/tb` plus the fixed validation images shown every evaluation.

    Args:
        run_dir: the run directory.
        roots: the data set (validation images for the overlays).
        image_size: training size (the overlays are predicted as validation does).
        num_vis: how many validation images to show.
        log_every: write train/loss and train/lr every N steps.
        purge_step: on resume, events after this step (from the interrupted session) are dropped.
        val_split: the split the validation images come from.
    """

    def __init__(
        self,
        run_dir: Path,
        roots: DataRoots,
        image_size: tuple[int, int],
        num_vis: int,
        log_every: int,
        purge_step: int | None = None,
        val_split: str = "val",
    ) -> None:
        from torch.utils.tensorboard import SummaryWriter  # slow import: only when training

        self.writer = SummaryWriter(str(Path(run_dir) / "tb"), purge_step=purge_step)
        self.roots, self.image_size, self.num_vis, self.log_every = roots, image_size, num_vis, log_every
        self.val_split = val_split
        self._vis: list[dict[str, Any]] | None = None

    @classmethod
    def for_run(cls, cfg: TrainConfig, roots: DataRoots, state: TrainState) -> TensorBoardLog:
        """The log of a (possibly resumed) training run: a resumed run drops the events it redoes."""
        return cls(
            Path(cfg.run_dir),
            roots,
            cfg.image_size,
            cfg.num_vis,
            cfg.log_every,
            purge_step=state.global_step if cfg.resume else None,
            val_split=cfg.val_split,
        )

    def on_step(self, global_step: int) -> Callable[[int, float, float], None]:
        """A `train_one_epoch` on_step callback for an epoch that starts at `global_step`."""
        return lambda steps, loss, lr: self.step(global_step + steps, loss, lr)

    def step(self, step: int, loss: float, lr: float) -> None:
        """Training loss and learning rate every `log_every` steps."""
        if step % self.log_every == 0:
            self.writer.add_scalar("train/loss", loss, step)
            self.writer.add_scalar("train/lr", lr, step)

    def validation(self, model: nn.Module, cm: ConfusionMatrix, row: HistoryRow, step: int) -> None:
        """An evaluation: its history row's metrics, per-class IoU, confusion matrix and overlays."""
        w = self.writer
        for key in ("val_loss", "miou", "mean_dice", "pixel_accuracy"):
            if getattr(row, key) is not None:
                w.add_scalar(f"val/{key}", getattr(row, key), step)
        w.add_scalar("train/images_per_sec", row.images_per_sec, step)
        w.add_scalar("train/epoch_loss", row.train_loss, step)
        names = model_space(model).names
        for name, iou in zip(names, cm.iou().tolist()):
            if not math.isnan(iou):  # NaN: class absent from ground truth and prediction
                w.add_scalar(f"val_iou/{name}", iou, step)
        confusion = plot_confusion(cm.mat.cpu().numpy(), names, seaborn=False)
        w.add_image("val/confusion_matrix", figure_to_array(confusion), step, dataformats="HWC")
        for i, grid in enumerate(self._overlays(model)):
            w.add_image(f"val_samples/{i}", grid, step, dataformats="HWC")
        w.flush()

    def hparams(self, cfg: TrainConfig, state: TrainState, metrics: dict | None) -> None:
        """The run's settings and final metrics for the HParams tab, written into this run's own
        log dir (so the dashboard shows them beside its scalars), at the last step (a resumed
        session's record replaces the one before)."""
        from torch.utils.tensorboard.summary import hparams

        results = final_results(metrics)
        columns = {tag: results.get(tag, float("nan")) for tag in HPARAM_METRICS}  # only the names are used
        for summary in hparams(hparam_values(cfg, state, metrics), columns):  # experiment, session start, end
            self.writer.file_writer.add_summary(summary, state.global_step)
        for tag, value in results.items():
            self.writer.add_scalar(tag, value, state.global_step)
        self.writer.flush()

    @torch.no_grad()
    def _overlays(self, model: nn.Module) -> list:
        """input | ground truth | prediction for the same validation images every time."""
        model = unwrap(model).eval()
        mean, std = facts(model).normalization
        if self._vis is None:
            transform = eval_transform(self.image_size, mean, std)
            samples = list_samples(self.roots, self.val_split)[: self.num_vis]
            ds = CityscapesDataset(samples, transform, space=model_space(model))
            self._vis = [ds[i] for i in range(len(ds))]
        device = next(model.parameters()).device
        grids = []
        for sample in self._vis:
            scores = infer(
                model,
                sample["image"][None].to(device),
                self.image_size,
                "whole",
                out_size=sample["mask"].shape[-2:],
                size_divisor=facts(model).size_divisor,
            )
            pred = predicted_classes(scores)[0].cpu().numpy().astype("uint8")
            image = denormalize(sample["image"], mean, std)
            grids.append(triptych_array(image, sample["mask"].numpy().astype("uint8"), pred, model_space(model)))
        return grids

    def close(self) -> None:
        self.writer.close()


def hparam_values(cfg: TrainConfig, state: TrainState, metrics: dict | None) -> dict[str, Any]:
    """The HParams columns: the config's training settings, how far the run went and how it ended,
    and the protocol of its final metrics."""
    values = {k: str(tuple(v)) if isinstance(v, list) else v for k, v in to_dict(cfg).items() if k not in NOT_HPARAMS}
    values["image_size"] = "{}x{}".format(*cfg.image_size)
    return {
        **values,
        "status": Status(state.status).value,
        "epochs_done": state.epoch,
        "minutes": state.elapsed_seconds / 60,
        "final_protocol": protocol_text(metrics) if metrics else "no validation",
    }


def final_results(metrics: dict | None) -> dict[str, float]:
    """The final evaluation (metrics.json; `final_protocol` says how it was measured) as scalar tags
    of their own: HParams shows a metric's last value, and these tags are written once."""
    return {
        f"val/final_{k}": float(metrics[k])
        for k in ("miou", "mean_dice", "pixel_accuracy")
        if metrics and metrics.get(k) is not None
    }


def write_text(run_dir: str | Path, tag: str, text: str) -> Path:
    """Add `text` (shown as monospaced Markdown) under `tag` in the TensorBoard folder `run_dir/tb`.

    `segkit benchmark` records its table here when it times a run's checkpoint, so the run's
    TensorBoard shows its speed beside its curves. Returns the tb folder.
    """
    from torch.utils.tensorboard import SummaryWriter  # slow import: only when writing

    folder = Path(run_dir) / "tb"
    writer = SummaryWriter(str(folder))
    writer.add_text(tag, "\n".join("    " + line for line in text.splitlines()))  # indented: a code block
    writer.close()
    return folder
