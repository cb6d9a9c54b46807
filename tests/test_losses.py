"""Losses: known answers on hand-built logits, ignore_index, class weights, OHEM, empty batches."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from segkit.config import LOSSES
from segkit.errors import ConfigError
from segkit.losses import OhemCrossEntropyLoss, build_loss

IGNORE = 255


def _logits_from_probs(probs: list[list[float]]) -> torch.Tensor:
    """(N pixels, C) probabilities -> (1, C, 1, N) logits whose softmax is exactly `probs`."""
    return torch.tensor(probs, dtype=torch.float64).log().float().T.reshape(1, len(probs[0]), 1, -1)


def _target(labels: list[int]) -> torch.Tensor:
    return torch.tensor(labels, dtype=torch.int64).reshape(1, 1, -1)


def _perfect_logits(target: torch.Tensor, num_classes: int) -> torch.Tensor:
    safe = target.clamp(max=num_classes - 1)
    return 30.0 * F.one_hot(safe, num_classes).permute(0, 3, 1, 2).float()


@pytest.mark.parametrize("num_classes", [2, 5, 19])
@pytest.mark.parametrize("name", ["ce", "ohem"])
def test_uniform_logits_give_log_num_classes(name: str, num_classes: int) -> None:
    target = torch.randint(0, num_classes, (2, 4, 4))
    target[0, 0] = IGNORE
    loss = build_loss(name, num_classes, ohem_min_kept=10)(torch.zeros(2, num_classes, 4, 4), target)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(math.log(num_classes), rel=1e-6)


@pytest.mark.parametrize("name", LOSSES)
def test_perfect_logits_give_zero(name: str) -> None:
    target = torch.randint(0, 4, (2, 8, 8))
    target[:, 0] = IGNORE
    loss = build_loss(name, num_classes=4)(_perfect_logits(target, 4), target)
    assert loss.item() == pytest.approx(0.0, abs=1e-6)


# Hand-computed: p(true) of the two pixels is 0.25 and 0.75.
CE_TABLE = [
    ([[0.25, 0.75], [0.25, 0.75]], [0, 1], (math.log(4) + math.log(4 / 3)) / 2),
    ([[0.25, 0.75], [0.25, 0.75]], [1, IGNORE], math.log(4 / 3)),
    ([[0.5, 0.5], [0.1, 0.9]], [0, 0], (math.log(2) + math.log(10)) / 2),
]


@pytest.mark.parametrize(("probs", "labels", "expected"), CE_TABLE)
def test_cross_entropy_known_answers(probs, labels, expected) -> None:
    loss = build_loss("ce", num_classes=2)(_logits_from_probs(probs), _target(labels))
    assert loss.item() == pytest.approx(expected, rel=1e-6)


# Hand-computed soft Dice: Dice_c = 2 sum(p_c t_c) / (sum p_c + sum t_c), mean over classes
# present in the target.
DICE_TABLE = [
    # class 0: 2*0.75 / (1.5 + 1) = 0.6; class 1: 2*0.25 / (0.5 + 1) = 1/3.
    ([[0.75, 0.25], [0.75, 0.25]], [0, 1], 1 - (0.6 + 1 / 3) / 2),
    # class 2 is absent from the target: left out. class 0: 2*0.5/2 = 0.5; class 1: 1/3.
    ([[0.5, 0.25, 0.25], [0.5, 0.25, 0.25]], [0, 1], 1 - (0.5 + 1 / 3) / 2),
    # Only class 1 present; the ignored pixel's prediction does not count: 2*0.9/(0.9+1).
    ([[0.1, 0.9], [0.99, 0.01]], [1, IGNORE], 1 - 1.8 / 1.9),
]


@pytest.mark.parametrize(("probs", "labels", "expected"), DICE_TABLE)
def test_dice_known_answers(probs, labels, expected) -> None:
    loss = build_loss("dice", num_classes=len(probs[0]))(_logits_from_probs(probs), _target(labels))
    assert loss.item() == pytest.approx(expected, rel=1e-5)


# Hand-computed Lovasz-softmax: per present class, the errors |[y = c] - p_c| in decreasing order
# dotted with the increments of 1 - IoU_c as those pixels join class c's prediction.
LOVASZ_TABLE = [
    # class 0: errors (0.25 fg, 0.6 bg) -> order (0.6 bg, 0.25 fg): 1 - IoU 0.5 then 1: 0.6*0.5 + 0.25*0.5;
    # class 1: errors (0.25 bg, 0.6 fg) -> order (0.6 fg, 0.25 bg): 1 - IoU 1 then 1: 0.6*1 + 0.25*0.
    ([[0.75, 0.25], [0.6, 0.4]], [0, 1], (0.425 + 0.6) / 2),
    # only class 1 present (class 0 left out), one pixel ignored: its error 0.9 alone, 1 - IoU 1.
    ([[0.9, 0.1], [0.5, 0.5]], [1, IGNORE], 0.9),
    # right with certainty: 0.
    ([[1.0, 0.0], [0.0, 1.0]], [0, 1], 0.0),
]


@pytest.mark.parametrize(("probs", "labels", "expected"), LOVASZ_TABLE)
def test_lovasz_known_answers(probs, labels, expected) -> None:
    loss = build_loss("lovasz", num_classes=2)(_logits_from_probs(probs), _target(labels))
    assert loss.item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("num_classes", [3, 11])
def test_lovasz_equals_the_reference_library_value_and_gradient(num_classes: int) -> None:
    # segmentation_models_pytorch's LovaszLoss (multiclass, whole batch, present classes): the
    # authors' algorithm as that library ships it.
    from segmentation_models_pytorch import losses  # a dependency of segkit: never skipped

    torch.manual_seed(num_classes)
    target = torch.randint(0, num_classes, (2, 12, 16))
    target[target == num_classes - 1] = 0  # one class absent: left out of both means
    target[:, :3] = IGNORE
    logits = (3 * torch.randn(2, num_classes, 12, 16, dtype=torch.float64)).float().requires_grad_()
    ours = build_loss("lovasz", num_classes)(logits, target)
    (grad,) = torch.autograd.grad(ours, logits)
    reference_fn = losses.LovaszLoss("multiclass", per_image=False, ignore_index=IGNORE, from_logits=True)
    reference = reference_fn(logits, target)
    (reference_grad,) = torch.autograd.grad(reference, logits)
    assert ours.item() == pytest.approx(reference.item(), rel=1e-5)
    torch.testing.assert_close(grad, reference_grad, rtol=1e-4, atol=1e-7)


def test_lovasz_puts_a_thin_class_on_a_par_with_a_large_one() -> None:
    # 1,000 road pixels right, the 10 pole pixels all wrong (p(pole) = 0.4): cross-entropy's mean
    # hardly moves, the Lovasz loss (a mean over classes) is about half its worst.
    target = torch.zeros(1, 1, 1010, dtype=torch.int64)
    target[..., :10] = 1
    probs = [[0.6, 0.4]] * 10 + [[0.99, 0.01]] * 1000
    logits = _logits_from_probs(probs)
    assert build_loss("ce", 2)(logits, target).item() < 0.02
    assert build_loss("lovasz", 2)(logits, target).item() > 0.3


def test_sums_add_the_region_loss_times_its_weight() -> None:
    torch.manual_seed(0)
    logits, target = torch.randn(2, 3, 8, 8), torch.randint(0, 3, (2, 8, 8))
    ce, dice = build_loss("ce", 3)(logits, target), build_loss("dice", 3)(logits, target)
    ohem = build_loss("ohem", 3, ohem_min_kept=20)(logits, target)
    lovasz = build_loss("lovasz", 3)(logits, target)
    assert build_loss("ce+dice", 3, region_weight=0.5)(logits, target) == pytest.approx((ce + 0.5 * dice).item())
    assert build_loss("ohem+dice", 3, ohem_min_kept=20)(logits, target) == pytest.approx((ohem + dice).item())
    assert build_loss("ce+lovasz", 3, region_weight=2.0)(logits, target) == pytest.approx((ce + 2 * lovasz).item())
    assert build_loss("ohem+lovasz", 3, ohem_min_kept=20)(logits, target) == pytest.approx((ohem + lovasz).item())


@pytest.mark.parametrize("name", LOSSES)
def test_ignored_pixels_do_not_count(name: str) -> None:
    torch.manual_seed(1)
    logits, target = torch.randn(1, 4, 6, 6), torch.randint(0, 4, (1, 6, 6))
    loss_fn = build_loss(name, num_classes=4, ohem_min_kept=5)
    cropped = loss_fn(logits[..., :4], target[..., :4])
    target[..., 4:] = IGNORE
    logits[..., 4:] = 100 * torch.randn(1, 4, 6, 2)  # wild predictions where ignored
    assert loss_fn(logits, target).item() == pytest.approx(cropped.item(), rel=1e-5)


@pytest.mark.parametrize("as_numpy", [True, False])
def test_weighted_ce_equals_torch(as_numpy: bool) -> None:
    torch.manual_seed(2)
    logits, target = torch.randn(2, 5, 7, 9), torch.randint(0, 5, (2, 7, 9))
    target[0, :3] = IGNORE
    weights = np.array([0.5, 2.0, 1.0, 0.0, 3.0], dtype=np.float64)
    loss = build_loss("ce", 5, class_weights=weights if as_numpy else torch.tensor(weights))
    expected = F.cross_entropy(logits, target, weight=torch.tensor(weights, dtype=torch.float32), ignore_index=IGNORE)
    assert loss(logits, target).item() == pytest.approx(expected.item(), rel=1e-6)
    unweighted = F.cross_entropy(logits, target, ignore_index=IGNORE)
    assert build_loss("ce", 5)(logits, target).item() == pytest.approx(unweighted.item(), rel=1e-6)


# Ten pixels, two classes: p(true class) for each pixel, three of them below 0.7.
OHEM_P_TRUE = [0.1, 0.3, 0.6, 0.8, 0.85, 0.9, 0.95, 0.97, 0.99, 0.995]


@pytest.mark.parametrize(
    ("min_kept", "kept"),
    [
        (1, 3),  # only the three pixels below the threshold
        (3, 3),
        (5, 5),  # the five lowest p(true), although two are above the threshold
        (10, 10),  # everything
        (50, 10),  # more than there are: everything valid
    ],
)
def test_ohem_keeps_hard_pixels(min_kept: int, kept: int) -> None:
    probs = [[p, 1 - p] for p in OHEM_P_TRUE]
    logits, target = _logits_from_probs(probs), _target([0] * 10)
    loss = build_loss("ohem", 2, ohem_thresh=0.7, ohem_min_kept=min_kept)(logits, target)
    expected = np.mean([-math.log(p) for p in OHEM_P_TRUE[:kept]])
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_ohem_min_kept_counts_only_valid_pixels() -> None:
    probs = [[p, 1 - p] for p in OHEM_P_TRUE]
    labels = [IGNORE, IGNORE] + [0] * 8  # the two hardest pixels are ignored
    loss = build_loss("ohem", 2, ohem_min_kept=4)(_logits_from_probs(probs), _target(labels))
    assert loss.item() == pytest.approx(np.mean([-math.log(p) for p in OHEM_P_TRUE[2:6]]), rel=1e-5)


@pytest.mark.parametrize("name", LOSSES)
def test_all_ignored_batch_gives_zero_with_grad(name: str) -> None:
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    weights = torch.tensor([1.0, 2.0, 3.0])
    loss = build_loss(name, 3, class_weights=weights)(logits, torch.full((2, 4, 4), IGNORE))
    assert loss.item() == 0.0
    loss.backward()
    assert logits.grad is not None and torch.equal(logits.grad, torch.zeros_like(logits))


@pytest.mark.parametrize("name", LOSSES)
def test_low_precision_logits_computed_in_float32(name: str) -> None:
    torch.manual_seed(3)
    logits, target = torch.randn(2, 4, 8, 8), torch.randint(0, 4, (2, 8, 8))
    loss_fn = build_loss(name, 4, ohem_min_kept=16)
    reference = loss_fn(logits, target)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = loss_fn(logits.bfloat16(), target)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert loss.item() == pytest.approx(reference.item(), rel=0.05)


def test_bad_arguments_raise_config_error() -> None:
    with pytest.raises(ConfigError, match=r"unknown loss 'focal'; valid: \['ce', 'ohem', 'dice', 'lovasz', 'ce\+dice'"):
        build_loss("focal")
    with pytest.raises(ConfigError, match="num_classes=19 values, got 3"):
        build_loss("ce", class_weights=[1.0, 2.0, 3.0])
    with pytest.raises(ConfigError, match="must be finite, >= 0"):
        build_loss("ce", num_classes=2, class_weights=[1.0, -1.0])
    with pytest.raises(ConfigError, match=r"logits must be \(B, 19, H, W\)"):
        build_loss("ce")(torch.zeros(1, 3, 4, 4), torch.zeros(1, 4, 4, dtype=torch.int64))
    with pytest.raises(ConfigError, match=r"target must be \(B, H, W\)"):
        build_loss("dice", 3)(torch.zeros(1, 3, 4, 4), torch.zeros(1, 4, 5, dtype=torch.int64))


def test_default_ohem_mines_a_small_cpu_batch_instead_of_keeping_every_pixel() -> None:
    torch.manual_seed(0)
    target = torch.randint(0, 19, (8, 64, 128))  # cpu-quick's batch: 65,536 pixels < 100,000
    logits = torch.randn(8, 19, 64, 128) + 6 * F.one_hot(target, 19).permute(0, 3, 1, 2)  # mostly right
    ohem, ce = build_loss("ohem", 19), build_loss("ce", 19)
    kept = ohem.hard_mask(logits, target)
    p_true = F.softmax(logits, 1).gather(1, target[:, None])[:, 0]
    assert int((p_true < 0.7).sum()) < int(kept.sum()) < 65_536
    assert int(kept.sum()) < 65_536 and ohem(logits, target) > 2 * ce(logits, target)
    big = torch.zeros(2, 19, 512, 1024), torch.zeros(2, 512, 1024, dtype=torch.long)
    assert int(ohem.hard_mask(*big).sum()) == 1_048_576  # p = 1/19 < 0.7 everywhere: all kept
    easy = torch.zeros(4, 2, 512, 1024)
    easy[:, 0] = 3 + torch.rand(4, 512, 1024)  # p(true) 0.95..0.98, all different: nothing below 0.7
    labels = torch.zeros(4, 512, 1024, dtype=torch.long)
    # ties at the k-th probability (float32) are kept too, hence "at least, and a few more"
    assert 100_000 <= OhemCrossEntropyLoss().hard_mask(easy, labels).sum() < 100_100  # a GPU batch: HRNet's floor
    assert 32_768 <= OhemCrossEntropyLoss().hard_mask(easy[:1], labels[:1]).sum() < 32_868  # a small one: 1/16
