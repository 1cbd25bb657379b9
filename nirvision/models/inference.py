"""Graph-friendly equivalents of layers, for exported inference graphs.

``for_export(net)`` returns an eval-mode copy of a network in which each pixel unshuffle (the
MPFNet stem) is a stride-r convolution with one-hot kernels: the same function (every pixel
copied as x * 1 plus zeros), but one operator that ONNX Runtime's CPU provider runs in its
blocked NCHWc layout instead of a reshape -> 6-D transpose -> reshape. Measured on the lite
chain at 640x480, one thread: 46.8 -> 42.8 ms a frame. (Rewriting the FEB's transposed
convolutions as 3x3 convolutions + pixel shuffle was measured too and was slower, 51.1 ms; so
was, in session 8 on an AVX2 EPYC, one 2x2 convolution giving the four output phases, cropped
and interleaved with a pixel shuffle: the same multiply-adds as the transposed convolution, but
51.8 against 48.7 ms, the crops and the interleave costing more than the col2im they save.)
Outputs agree with the original to float rounding (tests/models/test_inference.py).

Between the translator and the colorizer, exported uint8 graphs skip full resolution
(``fused_predict``): the translator's finest prediction, still pixel-unshuffled, is exactly the
colorizer's finest input, and the coarser inputs are pooled in the unshuffled layout
(``StemAvgPool``); the colorizer's output is converted to uint8 before the pixel shuffle, which
then moves a quarter of the bytes together with the move to channels last (``stem_to_image``).
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn


class ConvPixelUnshuffle(nn.Module):
    """``PixelUnshuffle(r)`` as a convolution: output channel c*r*r + i*r + j holds input
    channel c at offset (i, j) of each r x r block, PyTorch's order."""

    def __init__(self, channels: int, factor: int):
        super().__init__()
        r = factor
        kernel = torch.zeros(channels * r * r, 1, r, r)
        for c in range(channels):
            for i in range(r):
                for j in range(r):
                    kernel[c * r * r + i * r + j, 0, i, j] = 1.0
        self.factor, self.channels = r, channels
        self.register_buffer("kernel", kernel, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.kernel.to(x.dtype), stride=self.factor, groups=self.channels)


class StemAvgPool(nn.Module):
    """``unshuffle(avg_pool2d(shuffle(p), 2))`` for ``p`` in a stem of ``factor`` r: the next
    coarser level of an image pyramid, computed in the stem's layout as one 2x2 stride-2
    convolution with weights 1/4 (grouped per image channel). Input channel c*r*r + a*r + b at
    block (Y, X) is pixel (Y*r + a, X*r + b); output sub-pixel (i, j) averages full-resolution
    rows 2i, 2i+1 and columns 2j, 2j+1 of its 2r x 2r block, which lie in kernel row
    (2i + dy) // r at sub-row (2i + dy) % r, and likewise for columns."""

    def __init__(self, channels: int, factor: int):
        super().__init__()
        r = factor
        kernel = torch.zeros(channels * r * r, r * r, 2, 2)
        for c in range(channels):
            for i in range(r):
                for j in range(r):
                    for dy in range(2):
                        for dx in range(2):
                            a, b = 2 * i + dy, 2 * j + dx
                            kernel[c * r * r + i * r + j, (a % r) * r + b % r, a // r, b // r] = 0.25
        self.channels = channels
        self.register_buffer("kernel", kernel, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.kernel.to(x.dtype), stride=2, groups=self.channels)


def stem_to_image(p: torch.Tensor, factor: int) -> torch.Tensor:
    """(N, C*r*r, h, w) in the stem's layout -> (N, h*r, w*r, C) channels last."""
    return F.pixel_shuffle(p, factor).permute(0, 2, 3, 1)


def can_fuse(nir_to_gray: nn.Module, colorizer: nn.Module) -> bool:
    """Whether the translator's last prediction can feed the colorizer in the stem's layout:
    one gray channel out, one in, and the same stem (then unshuffle(shuffle(p)) is p)."""
    t, c = nir_to_gray.config, colorizer.config
    return t.out_channels == 1 and c.in_channels == 1 and t.stem == c.stem


def fused_predict(nir_to_gray: nn.Module, colorizer: nn.Module, x: torch.Tensor, pool: StemAvgPool) -> torch.Tensor:
    """The chain's RGB prediction in the stem's layout (N, 3*r*r, H/r, W/r), with no trip
    through full resolution between the two networks: the translator's finest prediction is
    the colorizer's finest input as it stands, and the coarser inputs come from ``pool``."""
    gray = nir_to_gray.predict(nir_to_gray.images(x))[-1]
    images = [gray]
    for _ in range(colorizer.config.scales - 1):
        images.insert(0, pool(images[0]))
    return colorizer.predict(images)[-1]


def for_export(net: nn.Module) -> nn.Module:
    """An eval-mode copy of ``net`` with the swap above (the input network is untouched)."""
    from .mpfnet import MPFNet

    out = copy.deepcopy(net).eval()
    for m in out.modules():
        if isinstance(m, MPFNet) and isinstance(m.unshuffle, nn.PixelUnshuffle):
            m.unshuffle = ConvPixelUnshuffle(m.config.in_channels, m.config.stem)
    return out
