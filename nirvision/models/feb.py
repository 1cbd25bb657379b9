"""Feature embedding block: a UNet whose steps carry an RCAB (MPFNet section II-A, Fig. 2c)."""
from __future__ import annotations

import torch
from torch import nn

from .attention import RCAB


def level_widths(width: int, depth: int, max_mult: int) -> list[int]:
    """Channels at each UNet level 0..depth: width, 2*width, ... capped at width*max_mult."""
    return [width * min(2**i, max_mult) for i in range(depth + 1)]


class EncoderStep(nn.Sequential):
    """LeakyReLU(0.2) -> 4x4 stride-2 conv -> RCAB -> InstanceNorm: halves H and W."""

    def __init__(self, c_in: int, c_out: int, reduction: int):
        super().__init__(
            nn.LeakyReLU(0.2),
            nn.Conv2d(c_in, c_out, 4, stride=2, padding=1),
            RCAB(c_out, reduction),
            nn.InstanceNorm2d(c_out, affine=True),
        )


class DecoderStep(nn.Sequential):
    """ReLU -> 4x4 stride-2 transpose conv -> RCAB -> InstanceNorm: doubles H and W."""

    def __init__(self, c_in: int, c_out: int, reduction: int):
        super().__init__(
            nn.ReLU(),
            nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1),
            RCAB(c_out, reduction),
            nn.InstanceNorm2d(c_out, affine=True),
        )


class FEB(nn.Module):
    """UNet of ``depth`` encoder/decoder steps, a 3x3-conv bottleneck, skips by concatenation.

    Input and output have ``width`` channels and the same H, W (a multiple of 2**depth).
    """

    def __init__(self, width: int, depth: int, max_mult: int = 8, reduction: int = 8):
        super().__init__()
        widths = level_widths(width, depth, max_mult)
        self.depth = depth
        self.encoders = nn.ModuleList(
            EncoderStep(widths[i], widths[i + 1], reduction) for i in range(depth)
        )
        self.bottleneck = nn.Conv2d(widths[depth], widths[depth], 3, padding=1)
        # Decoder step i goes from level i+1 to level i; every step except the innermost
        # receives the concatenation of the step below and the encoder skip of its level.
        self.decoders = nn.ModuleList(
            DecoderStep(widths[i + 1] * (1 if i == depth - 1 else 2), widths[i], reduction)
            for i in range(depth)
        )
        self.fuse = nn.Conv2d(widths[0] * 2, widths[0], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [x]
        y = x
        for enc in self.encoders:
            y = enc(y)
            skips.append(y)
        y = self.bottleneck(y)
        for i in reversed(range(self.depth)):
            if i < self.depth - 1:
                y = torch.cat([y, skips[i + 1]], dim=1)
            y = self.decoders[i](y)
        return self.fuse(torch.cat([y, skips[0]], dim=1))
