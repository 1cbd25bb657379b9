"""Coordinate attention and the residual coordinate attention block (paper Fig. 2b).

Coordinate attention follows Hou et al., "Coordinate Attention for Efficient Mobile
Network Design" (CVPR 2021); RCAB follows RCAN's residual channel attention block with
the channel attention replaced by coordinate attention, as MPFNet section II-A describes.
"""
from __future__ import annotations

import torch
from torch import nn


class CoordinateAttention(nn.Module):
    """Re-weights features by two attention maps, one along H and one along W (Hou et al. 2021)."""

    def __init__(self, channels: int, reduction: int = 8, min_hidden: int = 4):
        super().__init__()
        hidden = max(min_hidden, channels // reduction)
        self.shared = nn.Sequential(
            nn.Conv2d(channels, hidden, 1),
            nn.BatchNorm2d(hidden),
            nn.Hardswish(),
        )
        self.to_h = nn.Conv2d(hidden, channels, 1)
        self.to_w = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward_concat(x) if self.training else self._forward_pointwise(x)

    def _forward_concat(self, x: torch.Tensor) -> torch.Tensor:
        """Hou et al.'s form: both pooled maps through ``shared`` as one tensor."""
        h, w = x.shape[-2], x.shape[-1]
        pooled_h = x.mean(dim=3, keepdim=True)  # N, C, H, 1: average along W
        pooled_w = x.mean(dim=2, keepdim=True).transpose(2, 3)  # N, C, W, 1: average along H
        y = self.shared(torch.cat([pooled_h, pooled_w], dim=2))
        y_h, y_w = torch.split(y, [h, w], dim=2)
        attn_h = torch.sigmoid(self.to_h(y_h))  # N, C, H, 1
        attn_w = torch.sigmoid(self.to_w(y_w.transpose(2, 3)))  # N, C, 1, W
        return x * attn_h * attn_w

    def _forward_pointwise(self, x: torch.Tensor) -> torch.Tensor:
        """The same function without the concatenation, split and transposes (inference only).

        Everything ``shared`` does is per position (1x1 conv, batch norm with its running
        statistics, Hardswish), so it can run on the H-pooled (N, C, H, 1) and the W-pooled
        (N, C, 1, W) maps separately. In training, batch norm's statistics span both maps,
        which is why ``forward`` keeps the concatenated form there. Exported graphs lose two
        transposes, a concat and a split per block (36 of the lite chain's 42 transposes).
        """
        attn_h = torch.sigmoid(self.to_h(self.shared(x.mean(dim=3, keepdim=True))))  # N, C, H, 1
        attn_w = torch.sigmoid(self.to_w(self.shared(x.mean(dim=2, keepdim=True))))  # N, C, 1, W
        return x * attn_h * attn_w


class RCAB(nn.Module):
    """Residual coordinate attention block: conv3x3 -> ReLU -> conv3x3 -> CA, plus the input."""

    def __init__(self, channels: int, reduction: int = 8):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1),
            CoordinateAttention(channels, reduction),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)
