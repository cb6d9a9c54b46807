"""Evaluation, in one place: a network over a loader or a split (`network`), a folder of prediction
PNGs (`predictions`), and `segkit evaluate` (`command`). Every model evaluation's protocol is built
by `protocol_for`; the confusion matrix and the protocol record themselves are `segkit.metrics`.
"""

from segkit.evaluation.command import (
    checkpoint_path,
    data_roots_for,
    data_space,
    evaluate_checkpoint,
    load_model,
    run_evaluation,
    score_folder,
)
from segkit.evaluation.network import Evaluation, data_name, evaluate, evaluate_split, protocol_for
from segkit.evaluation.predictions import match_predictions, read_prediction, score_predictions

__all__ = [
    "Evaluation",
    "checkpoint_path",
    "data_name",
    "data_roots_for",
    "data_space",
    "evaluate",
    "evaluate_checkpoint",
    "evaluate_split",
    "load_model",
    "match_predictions",
    "protocol_for",
    "read_prediction",
    "run_evaluation",
    "score_folder",
    "score_predictions",
]
