"""Pictures of training: a sample grid (input | prediction | truth) and loss / metric curves.

Drawn with OpenCV and numpy only, so training needs no plotting library.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch


def to_uint8_rgb(x: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) in [-1, 1], C = 1 or 3 -> uint8 (N, H, W, 3)."""
    x = x.detach().float().cpu()
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75), (227, 119, 194), (127, 127, 127)]


def value_range(values: list[float]) -> tuple[float, float]:
    """The y axis of a panel: the values' span; for one epoch (or a flat series) a band of 5%
    around the value (at least 0.001), not +-0.5 (an SSIM of 0.12 on an axis from -0.38 to 0.62)."""
    lo, hi = min(values), max(values)
    if hi - lo < 1e-12:
        pad = max(abs(lo) * 0.05, 1e-3)
        lo, hi = lo - pad, hi + pad
    return lo, hi


def _panel(series: dict[str, list[float]], title: str, size=(420, 300), empty: str = "no values") -> np.ndarray:
    w, h = size
    img = np.full((h, w, 3), 255, np.uint8)
    left, right, top, bottom = 50, 10, 24, 28
    cv2.putText(img, title, (left, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    values = [v for s in series.values() for v in s if np.isfinite(v)]
    if not values:
        cv2.putText(img, empty, (left, h // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (96, 96, 96), 1, cv2.LINE_AA)
        return img
    lo, hi = value_range(values)
    n = max(len(s) for s in series.values())
    cv2.rectangle(img, (left, top), (w - right, h - bottom), (0, 0, 0), 1)
    for frac, val in ((0, hi), (1, lo)):
        y = int(top + frac * (h - top - bottom))
        cv2.putText(img, f"{val:.3g}", (2, y + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, f"epoch 1..{n}" if n > 1 else "epoch 1", (left, h - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1, cv2.LINE_AA)

    def x_of(j: int) -> int:  # a single epoch in the middle of the axis, not on its left edge
        return int(left + (j / (n - 1) if n > 1 else 0.5) * (w - left - right))

    for i, (name, s) in enumerate(series.items()):
        colour = _COLOURS[i % len(_COLOURS)][::-1]
        pts = [(x_of(j), int(top + (hi - v) / (hi - lo) * (h - top - bottom))) for j, v in enumerate(s) if np.isfinite(v)]
        if len(pts) > 1:
            cv2.polylines(img, [np.array(pts, np.int32)], False, colour, 1, cv2.LINE_AA)
        elif pts:
            cv2.circle(img, pts[0], 3, colour, -1)
            if n == 1:  # the value itself, which the band's two ticks only bracket
                cv2.putText(img, f"{s[0]:.4g}", (pts[0][0] + 6, pts[0][1] - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.35, colour, 1, cv2.LINE_AA)
        cv2.putText(img, name, (w - right - 110, top + 14 + 13 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.35, colour, 1, cv2.LINE_AA)
    return img


def save_curves(path: Path, history: list[dict]) -> Path:
    """One panel per group: losses, and each validation metric, over epochs."""
    losses = sorted({k for rec in history for k in rec.get("train", {})})
    panels = [_panel({k: [rec["train"].get(k, np.nan) for rec in history] for k in losses}, "training losses (epoch means)")]
    live = any("val_live" in rec for rec in history)  # with ema: the averaged weights (val) and the live ones
    for metric in ("psnr", "ssim", "ae"):
        series = {f"val {metric}" + (" (average)" if live else ""): [rec.get("val", {}).get(metric, np.nan) for rec in history]}
        if live:
            series[f"val {metric} (live)"] = [rec.get("val_live", {}).get(metric, np.nan) for rec in history]
        panels.append(_panel(series, f"validation {metric.upper()}", empty="not measured in this stage" if metric == "ae" else "no values"))
    grid = np.vstack([np.hstack(panels[:2]), np.hstack(panels[2:])])
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), grid)
    return path
