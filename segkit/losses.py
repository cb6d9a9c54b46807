"""Segmentation losses: cross-entropy, OHEM cross-entropy, soft Dice, Lovasz-softmax, and their sums.

All losses take logits (B, C, H, W) of any float dtype (they compute in float32, so they are
safe under fp16/bf16 autocast) and targets (B, H, W) int64 trainIds with `ignore_index` (255)
for pixels that do not count. A batch in which every pixel is ignored gives a loss of 0 that
still has a gradient (all zeros), never NaN, so a training step on it is a harmless no-op.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from segkit.config import LOSSES
from segkit.errors import ConfigError
from segkit.labels import NUM_CLASSES


def _check_inputs(logits: torch.Tensor, target: torch.Tensor, num_classes: int) -> None:
    if logits.ndim != 4 or logits.shape[1] != num_classes:
        raise ConfigError(
            f"logits must be (B, {num_classes}, H, W) for a loss built with "
            f"num_classes={num_classes}, got {tuple(logits.shape)}"
        )
    if target.shape != logits.shape[:1] + logits.shape[2:]:
        raise ConfigError(
            f"target must be (B, H, W) = {tuple(logits.shape[:1] + logits.shape[2:])}"
            f" to match the logits, got {tuple(target.shape)}"
        )


def _safe_div(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    # 0 / 0 -> 0 (an all-ignored batch) without a data-dependent branch or a GPU sync.
    return num / torch.where(den > 0, den, torch.ones_like(den))


class CrossEntropyLoss(nn.Module):
    """Pixel-wise cross-entropy; the (class-weighted) mean over pixels that are not ignored.

    Equals `F.cross_entropy(logits, target, weight=class_weights, ignore_index=...)`, except
    that an all-ignored batch gives 0 instead of NaN.
    """

    def __init__(
        self, num_classes: int = NUM_CLASSES, ignore_index: int = 255, class_weights: torch.Tensor | None = None
    ) -> None:
        super().__init__()
        self.num_classes, self.ignore_index = num_classes, ignore_index
        # A buffer so `.to(device)` moves it with the model/loss.
        self.register_buffer("class_weights", class_weights)

    def pixel_losses(self, logits: torch.Tensor, target: torch.Tensor) -> tuple:
        """Return per-pixel weighted CE and per-pixel weights (0 where ignored), both (B, H, W)."""
        _check_inputs(logits, target, self.num_classes)
        # A no-op once the loss was moved with `.to(device)`; spares a device-mismatch error if not.
        weights = None if self.class_weights is None else self.class_weights.to(logits.device)
        losses = F.cross_entropy(
            logits.float(), target, weight=weights, ignore_index=self.ignore_index, reduction="none"
        )
        valid = target != self.ignore_index
        if weights is None:
            return losses, valid.float()
        safe_target = torch.where(valid, target, torch.zeros_like(target))
        return losses, weights[safe_target] * valid  # (B, H, W)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        losses, weights = self.pixel_losses(logits, target)
        return _safe_div(losses.sum(), weights.sum())


class OhemCrossEntropyLoss(CrossEntropyLoss):
    """Online hard example mining CE (as in HRNet / mmsegmentation's OHEM pixel sampler).

    Keeps the pixels whose softmax probability of the true class is below `thresh`, and at
    least the `min_kept` hardest (lowest-probability) pixels of the batch, so a batch the model
    already gets right still trains on its worst pixels. Mean over the kept pixels (weighted by
    class weights if given).

    `min_kept=None` keeps at least min(100,000, 1/16 of the batch's pixels): HRNet's and
    mmsegmentation's 100,000 is ~2-10 % of a GPU batch of Cityscapes crops, but a whole
    8 x 64 x 128 CPU batch (65,536 pixels), where it would keep every pixel and OHEM would be
    plain cross-entropy.
    """

    def __init__(
        self,
        num_classes: int = NUM_CLASSES,
        ignore_index: int = 255,
        class_weights: torch.Tensor | None = None,
        thresh: float = 0.7,
        min_kept: int | None = None,
    ) -> None:
        super().__init__(num_classes, ignore_index, class_weights)
        self.thresh, self.min_kept = thresh, min_kept

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        losses, weights = self.pixel_losses(logits, target)
        keep = self.hard_mask(logits, target)
        return _safe_div((losses * keep).sum(), (weights * keep).sum())

    @torch.no_grad()
    def hard_mask(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Return the (B, H, W) float mask of pixels OHEM keeps."""
        valid = target != self.ignore_index
        safe_target = torch.where(valid, target, torch.zeros_like(target))
        prob = F.softmax(logits.float(), dim=1).gather(1, safe_target.unsqueeze(1)).squeeze(1)
        # Ignored pixels get 2 (> any probability): they sort last and are never kept.
        prob = torch.where(valid, prob, torch.full_like(prob, 2.0))
        keep = prob < self.thresh
        k = min(self.min_kept, prob.numel()) if self.min_kept is not None else min(100_000, prob.numel() // 16)
        if k > 0:
            # The k-th smallest probability; if fewer than k pixels are valid it is 2, and
            # every valid pixel is kept.
            kth = prob.flatten().kthvalue(k).values
            keep |= prob <= kth
        return (keep & valid).float()


class DiceLoss(nn.Module):
    """Soft multi-class Dice loss, 1 - mean Dice over the classes present in the target.

    Per class c, over all non-ignored pixels of the batch: Dice_c = 2 sum(p_c t_c) /
    (sum(p_c) + sum(t_c)) with p the softmax and t the one-hot target. Classes absent from
    the target are left out of the mean (as in the official mIoU, which drops classes absent
    from ground truth and prediction): with soft predictions they always have some predicted
    mass, so their Dice would be 0 however good the model is. Predicted mass on absent classes
    is still penalised, because the softmax takes it from the present classes. A batch with no
    valid pixel gives 0.
    """

    def __init__(self, num_classes: int = NUM_CLASSES, ignore_index: int = 255) -> None:
        super().__init__()
        self.num_classes, self.ignore_index = num_classes, ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_inputs(logits, target, self.num_classes)
        valid = (target != self.ignore_index).unsqueeze(1)  # (B, 1, H, W)
        prob = F.softmax(logits.float(), dim=1) * valid  # (B, C, H, W)
        safe_target = torch.where(valid.squeeze(1), target, torch.zeros_like(target))
        one_hot = F.one_hot(safe_target, self.num_classes).permute(0, 3, 1, 2) * valid
        dims = (0, 2, 3)
        intersection = (prob * one_hot).sum(dims)  # (C,)
        target_mass = one_hot.sum(dims).float()
        dice = _safe_div(2 * intersection, prob.sum(dims) + target_mass)
        present = (target_mass > 0).float()
        return _safe_div(((1 - dice) * present).sum(), present.sum())


class LovaszSoftmaxLoss(nn.Module):
    """Lovasz-softmax (Berman, Triki & Blaschko, CVPR 2018): a convex surrogate of 1 - IoU, per class.

    Per class c present in the target, over all non-ignored pixels of the batch: the errors
    e_i = |[y_i = c] - p_c(i)| sorted in decreasing order, dotted with the gradient of the
    Jaccard loss along that order (the Lovasz extension of 1 - IoU_c); the mean over the present
    classes. Like the official mIoU, every class counts the same however few its pixels are,
    which is why it is used for thin classes (pole, sign) that cross-entropy's pixel mean drowns.
    Classes absent from the target are left out (as DiceLoss does). A batch with no valid pixel
    gives 0. Sorts the batch's pixels once per class: on 2 CPU cores, at a batch of 8 x 128x256 and
    11 classes, a quarter of a training step (cpu-pretrained's recipe made 1,158 steps in 15 minutes
    with it, 1,702 with Dice); cheap on a GPU.
    """

    def __init__(self, num_classes: int = NUM_CLASSES, ignore_index: int = 255) -> None:
        super().__init__()
        self.num_classes, self.ignore_index = num_classes, ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_inputs(logits, target, self.num_classes)
        valid = (target != self.ignore_index).flatten()
        prob = F.softmax(logits.float(), dim=1).permute(0, 2, 3, 1).reshape(-1, self.num_classes)[valid]
        labels = target.flatten()[valid]
        one_hot = F.one_hot(labels, self.num_classes).float()  # (P, C)
        errors, order = (one_hot - prob).abs().sort(dim=0, descending=True)
        truth = one_hot.gather(0, order)  # each class's 0/1 truth in its own error order
        # The Jaccard loss after the first k pixels of the order are predicted as c, k = 1..P;
        # its increments are the weights of the sorted errors.
        gts = truth.sum(0)
        intersection = gts - truth.cumsum(0)
        union = gts + (1 - truth).cumsum(0)  # >= 1: the first pixel is in the truth or in the prediction
        jaccard = 1 - intersection / union
        weights = torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])
        present = (gts > 0).float()
        per_class = (errors * weights).sum(0)
        return _safe_div((per_class * present).sum(), present.sum())


class SumLoss(nn.Module):
    """`first(logits, target) + weight * second(logits, target)`."""

    def __init__(self, first: nn.Module, second: nn.Module, weight: float = 1.0) -> None:
        super().__init__()
        self.first, self.second, self.weight = first, second, weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.first(logits, target) + self.weight * self.second(logits, target)


def _class_weights(class_weights: torch.Tensor | np.ndarray | None, num_classes: int) -> torch.Tensor | None:
    if class_weights is None:
        return None
    weights = torch.as_tensor(np.asarray(class_weights, dtype=np.float32)).flatten()
    if weights.numel() != num_classes:
        raise ConfigError(f"class_weights must have num_classes={num_classes} values, got {weights.numel()}")
    if not torch.isfinite(weights).all() or (weights < 0).any() or weights.sum() <= 0:
        raise ConfigError(f"class_weights must be finite, >= 0 and not all 0, got {weights.tolist()}")
    return weights


def build_loss(
    name: str = "ce",
    num_classes: int = NUM_CLASSES,
    ignore_index: int = 255,
    class_weights: torch.Tensor | np.ndarray | None = None,
    ohem_thresh: float = 0.7,
    ohem_min_kept: int | None = None,
    region_weight: float = 1.0,
) -> nn.Module:
    """Build a loss module by name.

    Args:
        name: One of `segkit.config.LOSSES`: a pixel loss ("ce", "ohem"), a region loss ("dice",
            "lovasz"), or "PIXEL+REGION", their sum.
        num_classes: Number of classes (channels of the logits).
        ignore_index: Target value of pixels that do not count.
        class_weights: Optional (num_classes,) per-class CE weights (not used by the region losses).
        ohem_thresh: OHEM keeps pixels whose true-class probability is below this.
        ohem_min_kept: OHEM keeps at least this many hardest pixels per batch; None = min(100,000,
            1/16 of the batch's pixels).
        region_weight: Factor on the region term of a sum ("ohem+dice", "ce+lovasz", ...).

    Returns:
        A module called as `loss(logits, target)` -> scalar float32 tensor.

    Shape:
        logits (B, num_classes, H, W), target (B, H, W) int64.
    """
    if name not in LOSSES:
        raise ConfigError(f"unknown loss {name!r}; valid: {list(LOSSES)}")
    if not 0.0 < ohem_thresh <= 1.0 or (ohem_min_kept is not None and ohem_min_kept < 0):
        raise ConfigError(f"need 0 < ohem_thresh <= 1 and ohem_min_kept >= 0, got {ohem_thresh} and {ohem_min_kept}")
    weights = _class_weights(class_weights, num_classes)
    pixel = {  # keys: config.PIXEL_LOSSES (a test builds every name of LOSSES)
        "ce": lambda: CrossEntropyLoss(num_classes, ignore_index, weights),
        "ohem": lambda: OhemCrossEntropyLoss(num_classes, ignore_index, weights, ohem_thresh, ohem_min_kept),
    }
    region = {  # keys: config.REGION_LOSSES
        "dice": lambda: DiceLoss(num_classes, ignore_index),
        "lovasz": lambda: LovaszSoftmaxLoss(num_classes, ignore_index),
    }
    first, _, second = name.partition("+")
    if not second:
        return {**pixel, **region}[first]()
    return SumLoss(pixel[first](), region[second](), region_weight)
