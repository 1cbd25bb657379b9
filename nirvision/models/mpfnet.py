"""MPFNet: the multi-scale progressive feature embedding network (paper section II-A, Fig. 2a)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .feb import FEB
from .sccm import SCCM


@dataclass
class MPFNetConfig:
    """Sizes of one MPFNet; the same backbone serves as colorizer (1->3) and translators (1->1)."""

    in_channels: int
    out_channels: int
    width: int
    depth: int
    scales: int = 3
    max_width_mult: int = 8
    ca_reduction: int = 8
    stem: int = 1  # pixel-unshuffle factor: the network body runs at 1/stem resolution

    def validate(self) -> None:
        for name in ("in_channels", "out_channels", "width", "depth", "scales", "max_width_mult", "ca_reduction", "stem"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.in_channels != 1 and self.in_channels != self.out_channels:
            raise ValueError("in_channels must be 1 or equal to out_channels (the SCCM adds the input)")

    @property
    def multiple(self) -> int:
        """What the input's height and width must be a multiple of."""
        return self.stem * 2 ** (self.scales - 1 + self.depth)


class MPFNet(nn.Module):
    """S scales from coarse (1/2**(S-1)) to full size; each runs FEB -> SCCM.

    Each scale after the coarsest receives the previous scale's SCCM features, upsampled x2
    (cross-scale skip). ``forward`` returns the S predictions coarse to fine; the last one is
    the network's output. Input H and W must be multiples of ``multiple``.

    With ``stem`` r > 1 (our addition for real-time configs, not in the paper) every scale's
    image is pixel-unshuffled into r*r channels, the body works at 1/r resolution, and each
    prediction is pixel-shuffled back: the SCCM's residual still adds the full-resolution
    input exactly, so fine detail passes through while the body predicts at low resolution.
    """

    def __init__(self, config: MPFNetConfig):
        super().__init__()
        self.config = config
        c = config.width
        r2 = config.stem * config.stem
        self.multiple = config.multiple
        # parameter-free, so checkpoints do not see them; modules so that export can swap them
        self.unshuffle = nn.PixelUnshuffle(config.stem) if config.stem > 1 else nn.Identity()
        self.shuffle = nn.PixelShuffle(config.stem) if config.stem > 1 else nn.Identity()
        self.heads = nn.ModuleList(nn.Conv2d(config.in_channels * r2, c, 3, padding=1) for _ in range(config.scales))
        self.merges = nn.ModuleList(nn.Conv2d(2 * c, c, 1) for _ in range(config.scales - 1))
        self.febs = nn.ModuleList(
            FEB(c, config.depth, config.max_width_mult, config.ca_reduction) for _ in range(config.scales)
        )
        # The finest scale's SCCM only predicts: its features feed no further scale.
        self.sccms = nn.ModuleList(
            SCCM(c, config.out_channels * r2, config.in_channels * r2, carry_features=s < config.scales - 1)
            for s in range(config.scales)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.shuffle(p) for p in self.predict(self.images(x))]

    def images(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The input at each scale, coarse to fine, pixel-unshuffled by the stem."""
        pyramid = [x]
        for _ in range(self.config.scales - 1):
            pyramid.insert(0, F.avg_pool2d(pyramid[0], 2))
        return [self.unshuffle(image) for image in pyramid]

    def predict(self, images: list[torch.Tensor]) -> list[torch.Tensor]:
        """The S predictions from ``images()``, coarse to fine, still in the stem's layout
        (``forward`` pixel-shuffles them back to full resolution)."""
        predictions = []
        carried = None
        for s, image in enumerate(images):
            feats = self.heads[s](image)
            if carried is not None:
                up = F.interpolate(carried, scale_factor=2.0, mode="bilinear", align_corners=False)
                feats = self.merges[s - 1](torch.cat([feats, up], dim=1))
            feats = self.febs[s](feats)
            carried, prediction = self.sccms[s](feats, image)
            predictions.append(prediction)
        return predictions


def image_pyramid(x: torch.Tensor, scales: int) -> list[torch.Tensor]:
    """Targets for the S predictions of ``MPFNet``: x average-pooled to each scale, coarse to fine."""
    out = [x]
    for _ in range(scales - 1):
        out.insert(0, F.avg_pool2d(out[0], 2))
    return out
