"""Paired augmentation (paper III-A): random scaling, random-size crop, mirroring, contrast.

Geometry is one affine resampling of the NIR and RGB images stacked together, so both
images of a pair get exactly the same transform; the contrast factor is also shared.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .config import DataConfig


def _uniform(gen: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def augment(images: torch.Tensor, cfg: DataConfig, out_size: int, gen: torch.Generator, channels_split: int | None = None) -> torch.Tensor:
    """images: (N, C, H, W) float in [-1, 1], pairs stacked on C -> (N, C, out, out).

    Each sample: scale s in [scale_min, scale_max]; crop a square of side
    f * min(H, W) / s (f in [crop_min, crop_max]) at a random place; mirror with p = 0.5; resample
    to ``out_size``; then contrast c around each image's mean, where the images are the
    channel groups [:channels_split] and [channels_split:].
    """
    n, c, h, w = images.shape
    scale = _uniform(gen, n, cfg.scale_min, cfg.scale_max)
    frac = _uniform(gen, n, cfg.crop_min, cfg.crop_max)
    # Half-extent of the crop in normalised coordinates ([-1, 1] spans the image).
    half = (frac / scale).clamp(max=1.0)
    side = min(h, w)
    half_x, half_y = half * side / w, half * side / h
    cx = _uniform(gen, n, 0, 1) * 2 * (1 - half_x) - (1 - half_x)
    cy = _uniform(gen, n, 0, 1) * 2 * (1 - half_y) - (1 - half_y)
    flip = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0) if cfg.hflip else torch.ones(n)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = half_x * flip
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = half_y
    theta[:, 1, 2] = cy
    grid = F.affine_grid(theta, (n, c, out_size, out_size), align_corners=False)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if cfg.contrast > 0:
        factor = _uniform(gen, n, 1 - cfg.contrast, 1 + cfg.contrast).view(n, 1, 1, 1)
        groups = [out] if channels_split is None else [out[:, :channels_split], out[:, channels_split:]]
        adjusted = [(g - g.mean(dim=(1, 2, 3), keepdim=True)) * factor + g.mean(dim=(1, 2, 3), keepdim=True) for g in groups]
        out = torch.cat(adjusted, dim=1).clamp(-1, 1)
    return out
