"""Classic U-Net (Ronneberger et al. 2015), in the small-parts style of milesial/Pytorch-UNet.

`UNet(base_channels=64, depth=4, upsample="transpose")` is the seed's model: the same blocks
and parameter count as milesial's `UNet(bilinear=False)` (31,037,698 parameters for 2 classes).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from segkit.checks import check_image_size
from segkit.errors import ConfigError
from segkit.labels import NUM_CLASSES

UPSAMPLE_MODES = ("transpose", "bilinear")


def _check_forward_input(x: torch.Tensor, divisor: int, model_name: str) -> None:
    # Eager mode only: under torch.compile / torch.export / ONNX tracing the shapes may be
    # symbolic, and a Python check would add guards or graph breaks.
    if torch.compiler.is_compiling() or torch.jit.is_tracing():
        return
    check_image_size((x.shape[-2], x.shape[-1]), multiple=divisor, minimum=1, model=model_name)


class DoubleConv(nn.Module):
    """(3x3 conv -> BatchNorm -> ReLU) x 2; the conv has no bias because BN adds one."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.double_conv = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.double_conv(x)


class Down(nn.Module):
    """Halve the resolution with 2x2 max pooling, then DoubleConv."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.maxpool_conv = nn.Sequential(nn.MaxPool2d(2), DoubleConv(in_channels, out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool_conv(x)


class BilinearUpConv(nn.Module):
    """Bilinear x2 upsampling followed by a 1x1 conv that halves the channels ("up-conv")."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # align_corners=False exports to ONNX Resize as-is and matches OpenCV's resize.
        x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        return self.conv(x)


class Up(nn.Module):
    """Double the resolution, concatenate the encoder skip, then DoubleConv."""

    def __init__(self, in_channels: int, out_channels: int, upsample: str = "transpose") -> None:
        super().__init__()
        # Both modes give `in_channels // 2` channels, so the skip concat is the same width.
        if upsample == "transpose":
            self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)
        else:
            self.up = BilinearUpConv(in_channels, in_channels // 2)
        self.conv = DoubleConv(in_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        # No padding as in milesial: inputs are multiples of `size_divisor`, so sizes match.
        return self.conv(torch.cat([skip, self.up(x)], dim=1))


class OutConv(nn.Module):
    """1x1 conv from features to per-class logits."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class UNet(nn.Module):
    """U-Net with `depth` down/up stages and channels `base_channels * 2**i`.

    Args:
        num_classes: Output channels (logits per class).
        base_channels: Channels of the first stage; doubled at every downsampling.
        depth: Number of 2x downsamplings; input H and W must be multiples of `2**depth`.
        upsample: "transpose" (learned 2x2 transposed conv, the seed's choice) or "bilinear"
            (bilinear x2 then a 1x1 conv; fewer parameters, no checkerboard artefacts).
        dropout: Channel dropout probability at the bottleneck (0 disables it).
        in_channels: Input image channels.

    Shape:
        (B, in_channels, H, W) -> logits (B, num_classes, H, W).
    """

    def __init__(
        self,
        num_classes: int = NUM_CLASSES,
        base_channels: int = 64,
        depth: int = 4,
        upsample: str = "transpose",
        dropout: float = 0.0,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        _validate_unet(base_channels, depth, upsample, dropout)
        channels = [base_channels * 2**i for i in range(depth + 1)]
        self.size_divisor = 2**depth
        self.inc = DoubleConv(in_channels, channels[0])
        self.downs = nn.ModuleList(Down(channels[i], channels[i + 1]) for i in range(depth))
        # Identity when off, so the state_dict is the same with and without dropout.
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.ups = nn.ModuleList(Up(channels[i + 1], channels[i], upsample) for i in reversed(range(depth)))
        self.outc = OutConv(channels[0], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_forward_input(x, self.size_divisor, "unet")
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        x = self.dropout(skips.pop())
        for up in self.ups:
            x = up(x, skips.pop())
        return self.outc(x)


def _validate_unet(base_channels: int, depth: int, upsample: str, dropout: float) -> None:
    if upsample not in UPSAMPLE_MODES:
        raise ConfigError(f"upsample must be one of {UPSAMPLE_MODES}, got {upsample!r}")
    if not isinstance(depth, int) or not 1 <= depth <= 7:
        raise ConfigError(f"depth (number of downsamplings) must be an int in 1..7, got {depth!r}")
    if not isinstance(base_channels, int) or base_channels < 2 or base_channels % 2:
        raise ConfigError(f"base_channels must be an even int >= 2, got {base_channels!r}; 64 is the classic U-Net")
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"dropout must be in [0, 1), got {dropout!r}")
