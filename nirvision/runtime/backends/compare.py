"""How far one backend's output is from another's (or from ground truth), on uint8 RGB batches.

Per image with ``nirvision.metrics`` (the challenge's PSNR and AE), then averaged. Identical
images have infinite PSNR; ``psnr_per_image`` caps each at ``PSNR_CAP`` dB so averages stay finite.
"""
from __future__ import annotations

import numpy as np

from ...metrics import angular_error, psnr

PSNR_CAP = 100.0


def _check(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"images to compare differ in shape: {a.shape} vs {b.shape}")
    if a.ndim != 4 or a.shape[-1] != 3:
        raise ValueError(f"expected uint8 RGB batches (N, H, W, 3), got shape {a.shape}")


def psnr_per_image(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """PSNR in dB of each image pair of two uint8 RGB batches (N, H, W, 3), capped at PSNR_CAP."""
    _check(a, b)
    return np.array([min(psnr(x, y), PSNR_CAP) for x, y in zip(a, b)])


def mean_psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(psnr_per_image(a, b).mean())


def mean_angular_error(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over images of the per-pixel angle in degrees between RGB vectors (N, H, W, 3)."""
    _check(a, b)
    return float(np.mean([angular_error(x, y) for x, y in zip(a, b)]))
