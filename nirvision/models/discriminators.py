"""Discriminators: the 70x70 PatchGAN of pix2pix/CycleGAN, for images and for F_G's RGB output."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass
class PatchGANConfig:
    """With ``layers`` = 3 and 4x4 kernels the receptive field is 70x70 (Isola et al. 2017)."""

    in_channels: int
    width: int = 64
    layers: int = 3

    def validate(self) -> None:
        if self.in_channels < 1 or self.width < 1 or self.layers < 1:
            raise ValueError("in_channels, width and layers must be positive integers")


class PatchDiscriminator(nn.Module):
    """conv(s2)+LReLU, then ``layers``-1 x [conv(s2)+IN+LReLU], conv(s1)+IN+LReLU, conv(s1) -> 1 map."""

    def __init__(self, config: PatchGANConfig):
        super().__init__()
        self.config = config
        w = config.width
        layers: list[nn.Module] = [nn.Conv2d(config.in_channels, w, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, config.layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < config.layers else 1
            layers += [
                nn.Conv2d(w * prev, w * mult, 4, stride, 1),
                nn.InstanceNorm2d(w * mult, affine=True),
                nn.LeakyReLU(0.2, True),
            ]
        layers.append(nn.Conv2d(w * mult, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)
