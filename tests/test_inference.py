"""Inference modes: output at the input's size, sliding windows cover every pixel, TTA averages."""

from __future__ import annotations

import pytest
import torch

from segkit.inference import MODES, _starts, infer, predicted_classes
from segkit.models import create_model


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model("unet", num_classes=19, base_channels=8, depth=2).eval()


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("size", [(37, 70), (64, 128)])
def test_every_mode_returns_scores_at_the_requested_size(model, mode, size):
    image = torch.randn(2, 3, *size)
    scores = infer(model, image, (32, 64), mode, size_divisor=4)
    assert scores.shape == (2, 19, *size) and torch.isfinite(scores).all()
    if mode != "whole":  # averaged probabilities
        assert torch.allclose(scores.sum(1), torch.ones(2, *size), atol=1e-4)


def test_whole_mode_runs_the_model_at_the_training_size(model):
    seen = []
    handle = model.register_forward_hook(lambda m, i, o: seen.append(tuple(i[0].shape[-2:])))
    infer(model, torch.randn(1, 3, 100, 200), (32, 64), "whole", size_divisor=4)
    handle.remove()
    assert seen == [(32, 64)]


def test_slide_windows_have_the_training_size_and_cover_the_image(model):
    seen = []
    handle = model.register_forward_hook(lambda m, i, o: seen.append(tuple(i[0].shape[-2:])))
    infer(model, torch.randn(1, 3, 100, 200), (32, 64), "slide", size_divisor=4)
    handle.remove()
    assert set(seen) == {(32, 64)} and len(seen) > 1
    for length, window in [(48, 32), (96, 64), (33, 32), (32, 32), (200, 64)]:
        starts = _starts(length, window)
        covered = set()
        for s in starts:
            covered.update(range(s, s + window))
        assert covered == set(range(length)) and starts[-1] + window == length


def test_flip_mode_averages_the_image_and_its_mirror(model):
    image = torch.randn(1, 3, 32, 64)
    with torch.no_grad():
        expected = (model(image).softmax(1) + model(image.flip(-1)).softmax(1).flip(-1)) / 2
    probs = infer(model, image, (32, 64), "flip", size_divisor=4)
    assert torch.allclose(probs, expected, atol=1e-5)
    assert not torch.allclose(probs, model(image).softmax(1), atol=1e-3)  # the mirror really contributed


def test_predicted_classes_equal_argmax_ties_included():
    scores = torch.randn(2, 19, 8, 16)
    scores[0, :, 0, 0] = 1.0  # all tied: the first class, as argmax picks
    scores[1, 3:7, 2, 2] = 50.0  # a tie between 3..6
    pred = predicted_classes(scores)
    assert pred.shape == (2, 8, 16) and torch.equal(pred, scores.argmax(1))
    assert pred[0, 0, 0] == 0 and pred[1, 2, 2] == 3
