"""Inference at a fraction of the frame's size (``--infer-scale``), for big frames on small machines.

``ScaledInference`` wraps any backend: each NIR frame is reduced (area averaging) to ``scale``
times its width and height, the backend colorizes that, and the colours are brought back to
the frame's size (bilinear) with the frame's own fine detail added:

    rgb = up(model(down(nir))) + DETAIL * (nir - up(down(nir)))   (every colour channel)

The network's cost falls with the square of the scale (a 1920x1080 frame at 0.5 costs what a
960x540 one does), while colours, which vary slowly in these scenes, lose little, and edges
come back from the full-size NIR. On the validation split of the VCIP 2020 training pairs
(256x256, the training images' own scale, so the worst case: objects shrink below the sizes the
network learnt) with the bundled lite weights: full size 16.19 dB PSNR, SSIM 0.565; scale 0.5
15.60 dB / 0.543 without the detail, 15.66 / 0.568 with DETAIL 0.5, 15.63 / 0.558 with 1.0
(session 8). Frames bigger than the training images' scale (a 1080p camera's) lose less in
principle; there is no full-size ground truth here to measure it.
"""
from __future__ import annotations

import time

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ...errors import InputError
from .base import BackendWrapper

DETAIL = 0.5  # share of the NIR's fine detail added back (measured best of 0, 0.5 and 1 above)
MIN_SIDE = 8  # the scaled frame's smallest side in pixels (smaller frames run as they are)
MIN_SCALE = 0.05  # below this the colours would come from a thumbnail


def check_scale(scale) -> float:
    """``scale`` as a float in [MIN_SCALE, 1], or an InputError saying what was expected."""
    try:
        value = float(scale)
    except (TypeError, ValueError):
        value = float("nan")
    if not MIN_SCALE <= value <= 1.0:
        raise InputError(f"infer scale {scale!r}: expected a number from {MIN_SCALE} to 1 (1: the frame's own size)")
    return value


def scaled_size(h: int, w: int, scale: float) -> tuple[int, int]:
    """(height, width) the network runs at for an ``h`` x ``w`` frame."""
    return min(h, max(MIN_SIDE, int(round(h * scale)))), min(w, max(MIN_SIDE, int(round(w * scale))))


class ScaledInference(BackendWrapper):
    """``backend`` run at ``scale`` times each frame's size, outputs at the frame's size."""

    def __init__(self, backend, scale: float):
        scale = check_scale(scale)
        super().__init__(backend)
        self.infer_scale = scale

    # uint8 frames ------------------------------------------------------------------------
    def _down(self, frames: np.ndarray) -> np.ndarray:
        frames = np.asarray(frames)
        if frames.ndim != 3 or frames.dtype != np.uint8:
            raise ValueError(f"scaled inference: expected uint8 frames (N, H, W), got {frames.dtype} {frames.shape}")
        h, w = frames.shape[1:]
        sh, sw = scaled_size(h, w, self.infer_scale)
        if (sh, sw) == (h, w):
            return frames
        return np.stack([cv2.resize(f, (sw, sh), interpolation=cv2.INTER_AREA) for f in frames])

    @staticmethod
    def _up(rgb: np.ndarray, frames: np.ndarray, small: np.ndarray) -> np.ndarray:
        """Colours (N, h, w, 3) at the frames' size (N, H, W), plus DETAIL of the NIR's fine detail
        (rounded to whole levels, then added with saturation: OpenCV's integer kernels; at
        1920x1080 the engine's loop spent 15 ms of CPU a frame on this against 41 with the same
        in float numpy, session 8)."""
        h, w = frames.shape[1:]
        if rgb.shape[1:3] == (h, w):
            return rgb
        out = np.empty((len(frames), h, w, 3), dtype=np.uint8)
        for i, (f, s, c) in enumerate(zip(frames, small, rgb)):
            base = cv2.resize(s, (w, h), interpolation=cv2.INTER_LINEAR)
            detail = cv2.addWeighted(f, DETAIL, base, -DETAIL, 0.0, dtype=cv2.CV_16S)
            up = cv2.resize(c, (w, h), interpolation=cv2.INTER_LINEAR)
            cv2.add(up, cv2.merge([detail, detail, detail]), dst=out[i], dtype=cv2.CV_8U)
        return out

    def infer_uint8(self, frames) -> np.ndarray:
        frames = np.asarray(frames)
        small = self._down(frames)
        return self._up(self.inner.infer_uint8(small), frames, small)

    def submit(self, frames: np.ndarray) -> "ScaledPending":
        frames = np.asarray(frames)
        small = self._down(frames)
        return ScaledPending(self.inner.submit(small), frames, small)

    # float tensors (the reference path) --------------------------------------------------
    def infer(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        sh, sw = scaled_size(h, w, self.infer_scale)
        if (sh, sw) == (h, w):
            return self.inner.infer(x)
        small = F.interpolate(x, size=(sh, sw), mode="area")
        up = F.interpolate(self.inner.infer(small), size=(h, w), mode="bilinear", align_corners=False)
        base = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
        return (up + DETAIL * (x - base)).clamp_(-1.0, 1.0)

    def prepare(self, shape: tuple[int, ...]) -> None:
        n, c, h, w = shape
        super().prepare((n, c, *scaled_size(h, w, self.infer_scale)))


class ScaledPending:
    """A frame submitted at the scaled size; ``result()`` brings it back to the frame's size."""

    def __init__(self, pending, frames: np.ndarray, small: np.ndarray):
        self.inner, self.frames, self.small = pending, frames, small
        self.seconds = 0.0
        self._value: np.ndarray | None = None

    def done(self) -> bool:
        return self._value is not None or self.inner.done()

    def notify(self, callback) -> bool:
        notify = getattr(self.inner, "notify", None)
        return bool(notify and notify(callback))

    def result(self) -> np.ndarray:
        if self._value is None:
            rgb = self.inner.result()
            start = time.perf_counter()
            self._value = ScaledInference._up(rgb, self.frames, self.small)
            self.seconds = self.inner.seconds + time.perf_counter() - start
            self.frames = self.small = None
        return self._value
