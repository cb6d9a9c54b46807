"""Fine-tuning settings: the encoder's own learning rate (0 = frozen) and its BatchNorm kept as pretrained."""

from __future__ import annotations

import pytest
import torch

from segkit.config import TrainConfig
from segkit.engine.finetune import prepare
from segkit.engine.setup import build_optimizer
from segkit.errors import ConfigError
from segkit.models import create_model

ENCODER = "tu-tf_efficientnet_lite0"


def model(**changes) -> tuple[torch.nn.Module, TrainConfig]:
    cfg = TrainConfig(model="unet", encoder=ENCODER, encoder_weights="none", lr=1e-2, **changes)
    torch.manual_seed(0)
    net = create_model("unet", 19, encoder=ENCODER, encoder_weights="none")
    prepare(net, cfg.encoder_lr_scale, cfg.freeze_encoder_bn)
    return net, cfg


def one_step(net: torch.nn.Module, cfg: TrainConfig) -> None:
    optimizer = build_optimizer(cfg, net)
    net.train()
    x, y = torch.randn(2, 3, 64, 64), torch.randint(0, 19, (2, 64, 64))
    torch.nn.functional.cross_entropy(net(x), y).backward()
    optimizer.step()


def bn_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every BatchNorm tensor (statistics, scale, shift) in `module`, copied."""
    return {
        f"{name}.{k}": v.clone()
        for name, m in module.named_modules()
        if isinstance(m, torch.nn.BatchNorm2d)
        for k, v in m.state_dict().items()
    }


def test_frozen_encoder_batchnorm_keeps_its_statistics_and_weights_while_the_decoder_trains() -> None:
    net, cfg = model(freeze_encoder_bn=True, encoder_lr_scale=0.1)
    encoder_before, decoder_before = bn_state(net.encoder), bn_state(net.decoder)
    one_step(net, cfg)
    encoder_after, decoder_after = bn_state(net.encoder), bn_state(net.decoder)
    assert len(encoder_before) > 100
    assert all(torch.equal(encoder_before[k], encoder_after[k]) for k in encoder_before)
    assert any(not torch.equal(decoder_before[k], decoder_after[k]) for k in decoder_before)  # trains as usual
    assert all(not m.training for m in net.encoder.modules() if isinstance(m, torch.nn.BatchNorm2d))
    conv = net.encoder.model.conv_stem.weight
    assert conv.requires_grad and conv.grad is not None  # only BatchNorm is frozen


def test_same_step_without_freezing_moves_the_encoder_batchnorm() -> None:
    net, cfg = model()
    before = bn_state(net.encoder)
    one_step(net, cfg)
    after = bn_state(net.encoder)
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the check above can fail


def test_encoder_lr_scale_gives_the_encoder_its_share_of_lr() -> None:
    net, cfg = model(encoder_lr_scale=0.1)
    groups = build_optimizer(cfg, net).param_groups
    encoder = {id(p) for p in net.encoder.parameters()}
    rates = {(all(id(p) in encoder for p in g["params"]), g["weight_decay"] > 0): g["lr"] for g in groups}
    assert rates == {
        (False, True): 1e-2,
        (False, False): 1e-2,
        (True, True): pytest.approx(1e-3),
        (True, False): pytest.approx(1e-3),
    }
    assert sum(len(g["params"]) for g in groups) == len(list(net.parameters()))


def test_encoder_lr_scale_zero_freezes_the_encoder() -> None:
    net, cfg = model(encoder_lr_scale=0.0)
    before = {k: v.clone() for k, v in net.encoder.state_dict().items()}
    one_step(net, cfg)
    assert all(torch.equal(before[k], v) for k, v in net.encoder.state_dict().items())
    optimized = {id(p) for g in build_optimizer(cfg, net).param_groups for p in g["params"]}
    assert not optimized & {id(p) for p in net.encoder.parameters()}
    assert optimized == {id(p) for p in net.parameters() if p not in set(net.encoder.parameters())}


def test_fine_tuning_settings_without_an_encoder_are_refused() -> None:
    with pytest.raises(ConfigError, match="own U-Net.*has none"):
        TrainConfig(freeze_encoder_bn=True)
    with pytest.raises(ConfigError, match="encoder_lr_scale must be >= 0"):
        TrainConfig(encoder=ENCODER, encoder_lr_scale=-1)
