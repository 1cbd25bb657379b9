"""The inference chain of the paper: G_N2G (NIR -> gray) then F_G (gray -> RGB), as one module."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .mpfnet import MPFNet


def padded_size(size: int, multiple: int) -> int:
    """The size the network runs at: a multiple, and at least two multiples, so that the
    deepest UNet level keeps more than one pixel for InstanceNorm."""
    return max(-(-size // multiple) * multiple, 2 * multiple)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad H and W at the bottom/right up to ``padded_size`` (reflect, or replicate where too small)."""
    h, w = x.shape[-2], x.shape[-1]
    ph, pw = padded_size(h, multiple) - h, padded_size(w, multiple) - w
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


class NIRColorizerNet(nn.Module):
    """NIR in [-1, 1] (N, 1, H, W), any H and W -> RGB in [-1, 1] (N, 3, H, W)."""

    def __init__(self, nir_to_gray: MPFNet, colorizer: MPFNet):
        super().__init__()
        self.nir_to_gray = nir_to_gray
        self.colorizer = colorizer
        self.multiple = math.lcm(nir_to_gray.multiple, colorizer.multiple)  # both must divide the padded size

    def forward(self, nir: torch.Tensor) -> torch.Tensor:
        h, w = nir.shape[-2], nir.shape[-1]
        x = pad_to_multiple(nir, self.multiple)
        gray = self.nir_to_gray(x)[-1]
        rgb = self.colorizer(gray)[-1]
        return rgb[..., :h, :w]
