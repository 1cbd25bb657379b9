"""``--levels``: frames brought to the training images' NIR levels before the backend (``runtime.levels``)."""
from __future__ import annotations

import numpy as np
import torch

from ..levels import MODES, LevelsBand, LevelsTracker, frame_levels, level_map, normalize
from .base import BackendWrapper


def check_levels(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"levels {mode!r}: expected one of: {', '.join(MODES)}")
    return mode


class LevelsInference(BackendWrapper):
    """``backend`` on frames whose levels ``mode`` (auto, stretch) brings to ``band``'s. Batches
    (``infer_uint8``) and the frames of image folders: each frame on its own. The engine's video
    and live streams (one frame a ``submit``): smoothed from frame to frame, afresh for each run
    (``start_stream``, which the engine calls)."""

    def __init__(self, backend, mode: str, band: LevelsBand):
        mode = check_levels(mode)
        super().__init__(backend)
        self.levels, self.band = mode, band
        self._stream = LevelsTracker(band, mode)
        self._smooth = True

    def start_stream(self, continuous: bool = True) -> None:
        """A new run: forget the last one's levels; ``continuous`` False (image folders: unrelated
        pictures) takes each frame on its own."""
        self._stream.reset()
        self._smooth = continuous
        super().start_stream(continuous)

    def _each(self, frames: np.ndarray) -> np.ndarray:
        return np.stack([normalize(f, self.band, self.levels) for f in frames])

    def infer_uint8(self, frames) -> np.ndarray:
        return self.inner.infer_uint8(self._each(np.asarray(frames)))

    def submit(self, frames: np.ndarray):
        frames = np.asarray(frames)
        if frames.ndim == 3 and len(frames) == 1 and self._smooth:
            return self.inner.submit(self._stream(frames[0])[None])
        return self.inner.submit(self._each(frames))

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        out = []
        for frame in x:  # (1, H, W) in [-1, 1]: the map is found on the frame's uint8 levels, applied in float
            v = (frame + 1.0) * 127.5
            gain, offset = level_map(*frame_levels(v.round().clamp(0, 255).to(torch.uint8).numpy()[0]), self.band, self.levels)
            out.append(((v * gain + offset).clamp(0, 255) / 127.5 - 1.0))
        return self.inner.infer(torch.stack(out))
