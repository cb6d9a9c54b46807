"""ResNet encoder + U-Net decoder, in plain PyTorch (torchvision is not a dependency).

The encoder's parameter and buffer names are exactly torchvision's `resnet18/34/50` names
(minus `fc`), so torchvision's ImageNet files load with `encoder_weights=PATH`. Nothing is ever
downloaded: on Kaggle, attach the .pth file as a dataset and pass its path.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from segkit.errors import CheckpointError, ConfigError
from segkit.models.unet import _check_forward_input

# depth -> (block type, blocks per stage, torchvision's ImageNet weights file, IMAGENET1K_V1)
RESNET_SPECS: dict[int, tuple[str, tuple[int, int, int, int], str]] = {
    18: ("basic", (2, 2, 2, 2), "resnet18-f37072fd.pth"),
    34: ("basic", (3, 4, 6, 3), "resnet34-b627a593.pth"),
    50: ("bottleneck", (3, 4, 6, 3), "resnet50-0676ba61.pth"),
}
WEIGHTS_URL = "https://download.pytorch.org/models/"


def _conv_bn(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> tuple:
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=False)
    return conv, nn.BatchNorm2d(out_channels)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 conv-BN) shortcut; ResNet-18/34."""

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(in_channels, channels, 3, stride)
        self.relu = nn.ReLU(inplace=True)
        self.conv2, self.bn2 = _conv_bn(channels, channels, 3)
        self.downsample = _shortcut(in_channels, channels * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided, as torchvision's "v1.5"), 1x1 expand x4; ResNet-50."""

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(in_channels, channels, 1)
        self.conv2, self.bn2 = _conv_bn(channels, channels, 3, stride)
        self.conv3, self.bn3 = _conv_bn(channels, channels * self.expansion, 1)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_channels, channels * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


def _shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Sequential | None:
    if stride == 1 and in_channels == out_channels:
        return None
    # A Sequential so the names are torchvision's `downsample.0` (conv) and `downsample.1` (BN).
    return nn.Sequential(*_conv_bn(in_channels, out_channels, 1, stride))


class ResNetEncoder(nn.Module):
    """torchvision-compatible ResNet trunk returning features at strides 2, 4, 8, 16, 32.

    Shape:
        (B, 3, H, W) -> [(B, 64, H/2, W/2), (B, c1, H/4, W/4), ..., (B, c4, H/32, W/32)]
        with c1..c4 = 64, 128, 256, 512 (x4 for ResNet-50).
    """

    def __init__(self, depth: int = 18) -> None:
        super().__init__()
        kind, layers, _ = RESNET_SPECS[depth]
        block = BasicBlock if kind == "basic" else Bottleneck
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        in_channels, stages = 64, []
        for i, num_blocks in enumerate(layers):
            channels, stride = 64 * 2**i, 1 if i == 0 else 2
            blocks = [block(in_channels, channels, stride)]
            in_channels = channels * block.expansion
            blocks += [block(in_channels, channels) for _ in range(num_blocks - 1)]
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.out_channels = (64, *(64 * 2**i * block.expansion for i in range(4)))
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's initialisation, so training from scratch behaves like torchvision's.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        stem = self.relu(self.bn1(self.conv1(x)))  # (B, 64, H/2, W/2)
        f1 = self.layer1(self.maxpool(stem))
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        return [stem, f1, f2, f3, self.layer4(f3)]


def load_encoder_weights(encoder: ResNetEncoder, path: str | Path, depth: int) -> None:
    """Load torchvision's ImageNet ResNet file into `encoder`, dropping `fc.*`.

    Args:
        encoder: The encoder to fill in place.
        path: A torchvision state_dict file such as `resnet18-f37072fd.pth`.
        depth: 18, 34 or 50; only used to name the expected file in errors.

    Raises:
        CheckpointError: The file is missing, unreadable, or its keys or shapes differ.
    """
    expected = RESNET_SPECS[depth][2]
    hint = (f"expected torchvision's resnet{depth} ImageNet file {expected} "
            f"({WEIGHTS_URL}{expected}; on Kaggle attach it as a dataset and pass its path)")
    from segkit.checkpoint import safe_load

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"encoder weights file {path} not found; {hint}")
    try:
        state = safe_load(path, "cpu", what="an encoder weights file")
    except CheckpointError as exc:
        raise CheckpointError(f"cannot read encoder weights: {exc} {hint}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, not a state_dict; {hint}")
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    problems = _state_mismatch(encoder.state_dict(), state)
    if problems:
        raise CheckpointError(f"encoder weights {path} do not match resnet{depth}: "
                              f"{'; '.join(problems)}; {hint}")
    encoder.load_state_dict(state, strict=True)


def _state_mismatch(own: dict, loaded: dict) -> list[str]:
    def listed(keys: list[str]) -> str:
        more = f" and {len(keys) - 5} more" if len(keys) > 5 else ""
        return ", ".join(keys[:5]) + more

    missing = [k for k in own if k not in loaded]
    unexpected = [k for k in loaded if k not in own]
    shapes = [f"{k} {tuple(loaded[k].shape)} (model has {tuple(v.shape)})"
              for k, v in own.items() if k in loaded and loaded[k].shape != v.shape]
    return [f"{label} {listed(keys)}" for label, keys in
            (("missing keys", missing), ("unexpected keys", unexpected),
             ("shape mismatch", shapes)) if keys]


class DecoderBlock(nn.Module):
    """Bilinear x2 upsampling, concat the skip (if any), then (3x3 conv-BN-ReLU) x 2."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(*_conv_bn(in_channels + skip_channels, out_channels, 3),
                                   nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(*_conv_bn(out_channels, out_channels, 3), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.conv2(self.conv1(x))


class ResNetUNet(nn.Module):
    """ResNet encoder with a U-Net decoder (skips at strides 16, 8, 4, 2; last block to 1).

    Args:
        num_classes: Output channels (logits per class).
        depth: ResNet depth, 18, 34 or 50.
        decoder_channels: Output channels of the five decoder blocks, deepest first.
        encoder_weights: Path to torchvision's ImageNet file for this depth, or None for
            random initialisation. Pretrained weights expect ImageNet-normalised input.

    Shape:
        (B, 3, H, W) -> logits (B, num_classes, H, W), H and W multiples of 32.
    """

    size_divisor = 32

    def __init__(
        self,
        num_classes: int = 19,
        depth: int = 18,
        decoder_channels: tuple[int, ...] = (256, 128, 64, 32, 16),
        encoder_weights: str | Path | None = None,
    ) -> None:
        super().__init__()
        if len(decoder_channels) != 5:
            raise ConfigError(
                f"decoder_channels needs 5 values (one per stride 16, 8, 4, 2, 1), got "
                f"{tuple(decoder_channels)}; e.g. (256, 128, 64, 32, 16)")
        self.name = f"resnet{depth}-unet"
        self.encoder = ResNetEncoder(depth)
        if encoder_weights is not None:
            load_encoder_weights(self.encoder, encoder_weights, depth)
        skips = self.encoder.out_channels[-2::-1] + (0,)  # strides 16, 8, 4, 2, then none
        in_channels = (self.encoder.out_channels[-1], *decoder_channels[:-1])
        self.decoder = nn.ModuleList(
            DecoderBlock(i, s, o) for i, s, o in zip(in_channels, skips, decoder_channels)
        )
        self.head = nn.Conv2d(decoder_channels[-1], num_classes, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_forward_input(x, self.size_divisor, self.name)
        features = self.encoder(x)
        x, skips = features[-1], features[-2::-1] + [None]
        for block, skip in zip(self.decoder, skips):
            x = block(x, skip)
        return self.head(x)
