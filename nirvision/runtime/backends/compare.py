"""How far one backend's output is from another's (or from ground truth), as the challenge measures.

PSNR = -10 log10(MSE) on RGB scaled to [0, 1] from 8 bits, per image, then averaged; AE = the
angle in degrees between RGB vectors per pixel, averaged (DESIGN.md, Metrics). Identical images
have infinite PSNR; ``mean_psnr`` caps each image at ``PSNR_CAP`` dB so averages stay finite.
"""
from __future__ import annotations

import numpy as np

PSNR_CAP = 100.0


def _check(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"images to compare differ in shape: {a.shape} vs {b.shape}")
    if a.ndim != 4 or a.shape[-1] != 3:
        raise ValueError(f"expected uint8 RGB batches (N, H, W, 3), got shape {a.shape}")


def psnr_per_image(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """PSNR in dB of each image pair of two uint8 RGB batches (N, H, W, 3), capped at PSNR_CAP."""
    _check(a, b)
    diff = (a.astype(np.float64) - b.astype(np.float64)) / 255.0
    mse = (diff**2).reshape(len(a), -1).mean(axis=1)
    with np.errstate(divide="ignore"):
        out = -10.0 * np.log10(mse)
    return np.minimum(out, PSNR_CAP)


def mean_psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(psnr_per_image(a, b).mean())


def mean_angular_error(a: np.ndarray, b: np.ndarray, eps: float = 1e-8) -> float:
    """Mean angle in degrees between the RGB vectors of two uint8 batches (N, H, W, 3)."""
    _check(a, b)
    x = a.astype(np.float64) / 255.0
    y = b.astype(np.float64) / 255.0
    dot = (x * y).sum(-1)
    norm = np.linalg.norm(x, axis=-1) * np.linalg.norm(y, axis=-1)
    cos = np.clip(dot / np.maximum(norm, eps), -1.0, 1.0)
    angle = np.degrees(np.arccos(cos))
    angle[norm < eps] = 0.0  # black against anything: no direction to compare
    return float(angle.mean())
