"""Image quality metrics as the VCIP 2020 NIR-to-RGB challenge computes them.

All take uint8 RGB images (H x W x 3) of the same size, as 8-bit files hold them.
- PSNR: -10 log10(MSE) with RGB scaled to [0, 1], per image (then averaged over images).
- SSIM: Wang et al. 2004 with scikit-image's defaults: a 7x7 uniform window, sample
  covariance, K1 = 0.01, K2 = 0.03, data_range = 1, computed per channel over the region
  the window fully covers and averaged over the three channels.
- AE: per pixel, the angle in degrees between predicted and true RGB vectors, averaged.
  A pixel where either vector is black (zero) has no direction; it counts as 0 degrees when
  both are black and 90 degrees when only one is.
LPIPS needs AlexNet weights this package cannot download; see ``lpips_available``.
"""
from __future__ import annotations

import math

import numpy as np


def _as_unit(img: np.ndarray, name: str) -> np.ndarray:
    if img.dtype != np.uint8:
        raise ValueError(f"{name}: expected uint8 pixels, got {img.dtype}")
    return img.astype(np.float64) / 255.0


def _check(pred: np.ndarray, true: np.ndarray) -> None:
    if pred.shape != true.shape:
        raise ValueError(f"prediction {pred.shape} and truth {true.shape} differ in shape")


def psnr(pred: np.ndarray, true: np.ndarray) -> float:
    """PSNR in dB of uint8 images scaled to [0, 1]; ``inf`` for identical images."""
    _check(pred, true)
    mse = float(np.mean((_as_unit(pred, "prediction") - _as_unit(true, "truth")) ** 2))
    return math.inf if mse == 0 else -10.0 * math.log10(mse)


def _window_sums(x: np.ndarray, win: int) -> np.ndarray:
    """Mean over every fully covered win x win window ('valid' region) of a 2-D array."""
    c = np.cumsum(np.cumsum(np.pad(x, ((1, 0), (1, 0))), axis=0), axis=1)
    s = c[win:, win:] - c[:-win, win:] - c[win:, :-win] + c[:-win, :-win]
    return s / (win * win)


def ssim(pred: np.ndarray, true: np.ndarray, win: int = 7) -> float:
    """Mean SSIM over channels (scikit-image ``structural_similarity`` defaults, data_range 1)."""
    _check(pred, true)
    x, y = _as_unit(pred, "prediction"), _as_unit(true, "truth")
    if x.ndim == 2:
        x, y = x[..., None], y[..., None]
    if min(x.shape[:2]) < win:
        raise ValueError(f"SSIM needs images of at least {win}x{win}, got {x.shape[1]}x{x.shape[0]}")
    c1, c2 = 0.01**2, 0.03**2
    cov_norm = win * win / (win * win - 1.0)
    values = []
    for ch in range(x.shape[2]):
        a, b = x[..., ch], y[..., ch]
        ua, ub = _window_sums(a, win), _window_sums(b, win)
        uaa, ubb, uab = _window_sums(a * a, win), _window_sums(b * b, win), _window_sums(a * b, win)
        va, vb, vab = cov_norm * (uaa - ua * ua), cov_norm * (ubb - ub * ub), cov_norm * (uab - ua * ub)
        s = ((2 * ua * ub + c1) * (2 * vab + c2)) / ((ua * ua + ub * ub + c1) * (va + vb + c2))
        values.append(s.mean())
    return float(np.mean(values))


def angular_error(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean per-pixel angle in degrees between the RGB vectors of two images."""
    _check(pred, true)
    a = pred.reshape(-1, pred.shape[-1]).astype(np.float64)
    b = true.reshape(-1, true.shape[-1]).astype(np.float64)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    dot = np.einsum("ij,ij->i", a, b)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.clip(dot / (na * nb), -1.0, 1.0)
    angle = np.degrees(np.arccos(cos))
    angle = np.where((na == 0) & (nb == 0), 0.0, np.where((na == 0) | (nb == 0), 90.0, angle))
    return float(angle.mean())


METRICS = {"psnr": psnr, "ssim": ssim, "ae": angular_error}


def evaluate_pairs(preds, trues) -> dict[str, list[float]]:
    """Per-image PSNR, SSIM and AE for aligned lists of uint8 RGB images."""
    out: dict[str, list[float]] = {k: [] for k in METRICS}
    for p, t in zip(preds, trues):
        for k, fn in METRICS.items():
            out[k].append(fn(p, t))
    return out


def mean_metrics(per_image: dict[str, list[float]]) -> dict[str, float]:
    return {k: float(np.mean(v)) if v else float("nan") for k, v in per_image.items()}
