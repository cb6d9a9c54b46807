"""Training: plain functions `train_one_epoch` and `fit` (evaluation itself is `segkit.evaluation`).

`fit` survives Kaggle: a time budget that stops cleanly, full-state checkpoints written atomically
every epoch and on SIGTERM / Ctrl-C, exact resume, fp16 on T4s, and torchrun (DDP) when launched
so. It trains exactly the config it is given: presets, resume merging and the Kaggle budget are
resolved before it (`segkit.launch.resolve_train_config`).
"""

from segkit.engine.fit import final_evaluation, fit
from segkit.engine.loop import EpochResult, check_finite_weights, diverged_message, train_one_epoch
from segkit.engine.setup import (
    Optim,
    TrainingDiverged,
    build_loss_fn,
    build_optimizer,
    build_scheduler,
    build_training_model,
    channels_last,
)
from segkit.engine.stopping import Budget, StopFlag

__all__ = [
    "Budget",
    "EpochResult",
    "Optim",
    "StopFlag",
    "TrainingDiverged",
    "build_loss_fn",
    "build_optimizer",
    "build_scheduler",
    "build_training_model",
    "channels_last",
    "check_finite_weights",
    "diverged_message",
    "final_evaluation",
    "fit",
    "train_one_epoch",
]
