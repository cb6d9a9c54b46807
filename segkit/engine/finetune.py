"""Fine-tuning a pretrained encoder: its own learning rate, and BatchNorm kept as pretrained.

Small batches (a CPU's 8 crops, a GPU's 2) give BatchNorm noisy batch statistics, which overwrite
the ImageNet running statistics the encoder's weights were trained with. mmsegmentation's
`norm_eval` and detectron2's FrozenBatchNorm answer this the same way, and so does `freeze_encoder_bn`
here: the encoder's BatchNorm layers normalise with their pretrained statistics (eval mode, even
while the model trains) and their scale and shift are not trained. `encoder_lr_scale` gives the
encoder a share of the decoder's learning rate, so a high lr for the new decoder does not wash out
the pretrained features.
"""

from __future__ import annotations

from typing import Any

from torch import nn


def encoder_of(model: nn.Module) -> nn.Module | None:
    """The pretrained part of a segkit model: smp's `model.encoder`; None for segkit's own U-Net."""
    encoder = getattr(model, "encoder", None)
    return encoder if isinstance(encoder, nn.Module) else None


def prepare(model: nn.Module, encoder_lr_scale: float, freeze_encoder_bn: bool) -> None:
    """Freeze what the config asks of `model`'s encoder: all of it (`encoder_lr_scale` 0) or its BatchNorm.

    A frozen encoder also stays in eval mode and takes no gradient: training then runs its forward
    pass only, which is much cheaper than forward and backward.
    """
    encoder = encoder_of(model)
    if encoder is None or (encoder_lr_scale > 0 and not freeze_encoder_bn):
        return
    if encoder_lr_scale == 0:
        encoder.requires_grad_(False)
        for layer in encoder.modules():  # dropout and BatchNorm as at inference
            layer.eval()
            layer.register_forward_pre_hook(_stay_in_eval)
        return
    freeze_batchnorm(encoder)


def freeze_batchnorm(module: nn.Module) -> int:
    """Keep every BatchNorm in `module` in eval mode with its affine weights fixed; returns how many.

    The modules stay BatchNorm (checkpoints keep their keys); a forward pre-hook turns each back to
    eval mode on every call, because `model.train()` at the start of each epoch would turn it on.
    """
    count = 0
    for layer in module.modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm):
            layer.requires_grad_(False)
            layer.eval()
            layer.register_forward_pre_hook(_stay_in_eval)
            count += 1
    return count


def _stay_in_eval(layer: nn.Module, _: Any) -> None:
    layer.training = False


def parameter_groups(model: nn.Module, weight_decay: float, lr: float, encoder_lr_scale: float) -> list[dict]:
    """Optimizer groups: (decoder | encoder) x (decayed | norms and biases, no decay).

    Args:
        model: the plain model (not DDP-wrapped).
        weight_decay: for weights with 2+ dimensions; norms and biases only rescale, so none.
        lr: the decoder's (and head's) peak learning rate.
        encoder_lr_scale: the encoder's peak learning rate as a share of `lr`.

    Returns:
        Non-empty groups with "params", "weight_decay" and "lr"; frozen parameters left out.
    """
    encoder = encoder_of(model)
    in_encoder = {id(p) for p in encoder.parameters()} if encoder is not None else set()
    groups: dict[tuple[bool, bool], list] = {}
    for p in model.parameters():
        if p.requires_grad:
            groups.setdefault((id(p) in in_encoder, p.ndim <= 1), []).append(p)
    return [
        {
            "params": params,
            "weight_decay": 0.0 if no_decay else weight_decay,
            "lr": lr * (encoder_lr_scale if is_encoder else 1.0),
        }
        for (is_encoder, no_decay), params in sorted(groups.items())
    ]
