"""``--flip-average``: each frame colorized as it is and mirrored left to right, the two averaged.

A scene and its mirror image are equally likely, so the network's two answers are two estimates
of one colouring, and their mean has a smaller squared error than either (it cannot be larger
than their average error). On the validation split of the VCIP 2020 training pairs with the
bundled lite weights (session 9): PSNR 16.19 -> 16.29 dB, SSIM 0.565 -> 0.570, AE 4.70 -> 4.67
degrees with ``--levels off``; 16.14 -> 16.28 dB, 0.560 -> 0.566, 4.76 -> 4.71 with the default
``auto`` (21 of the 34 images gain, by -0.53 to +1.45 dB each); mirroring top to bottom as well
made it worse (14.99 dB: skies do not lie below). It
costs a second inference a frame: for recorded videos where colour matters more than speed.
With ``workers`` 2 the two halves run side by side, so a frame takes no longer, but the run
colorizes half as many frames a second.
"""
from __future__ import annotations

import threading

import numpy as np
import torch

from .base import BackendWrapper


def mean_uint8(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The rounded mean of two uint8 arrays (halves rounded up)."""
    return ((a.astype(np.uint16) + b + 1) >> 1).astype(np.uint8)


def _mirror(frames: np.ndarray) -> np.ndarray:
    # a copy, never a view: ascontiguousarray keeps the negative stride of a 1-pixel-wide flip
    # (already "contiguous"), which torch.from_numpy refuses
    return frames[:, :, ::-1].copy()


class FlipAverage(BackendWrapper):
    """``backend``'s output averaged with its output for the mirrored frame, mirrored back."""

    flip_average = True

    def infer_uint8(self, frames) -> np.ndarray:
        frames = np.asarray(frames)
        return mean_uint8(self.inner.infer_uint8(frames), self.inner.infer_uint8(_mirror(frames))[:, :, ::-1])

    def submit(self, frames: np.ndarray) -> "FlipPending":
        frames = np.asarray(frames)
        side_by_side = getattr(self.inner, "workers", 1) > 1  # the halves run at once on two workers
        return FlipPending(self.inner.submit(frames), self.inner.submit(_mirror(frames)), side_by_side)

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        return (self.inner.infer(x) + self.inner.infer(x.flip(-1)).flip(-1)) * 0.5


class FlipPending:
    """The two halves of a submitted frame; ``result()`` averages them."""

    def __init__(self, plain, mirrored, side_by_side: bool = False):
        self.plain, self.mirrored, self.side_by_side = plain, mirrored, side_by_side
        self.seconds = 0.0
        self._value: np.ndarray | None = None

    def done(self) -> bool:
        return self._value is not None or (self.plain.done() and self.mirrored.done())

    def notify(self, callback) -> bool:
        """``callback()`` once both halves are in; False where either cannot tell."""
        left = [2]
        lock = threading.Lock()

        def one_done():
            with lock:
                left[0] -= 1
                last = left[0] == 0
            if last:
                callback()

        for part in (self.plain, self.mirrored):  # both must be able to tell before either is asked
            if not hasattr(part, "notify"):
                return False
        if not self.plain.notify(one_done):
            return False
        if not self.mirrored.notify(one_done):
            return False
        return True

    def result(self) -> np.ndarray:
        if self._value is None:
            a, b = self.plain.result(), self.mirrored.result()
            self._value = mean_uint8(a, b[:, :, ::-1])
            # the frame's inference time: the halves at once on two workers, else one after the other
            halves = (self.plain.seconds, self.mirrored.seconds)
            self.seconds = max(halves) if self.side_by_side else sum(halves)
            self.plain = self.mirrored = None
        return self._value
