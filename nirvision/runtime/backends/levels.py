"""``--levels``: frames brought to the training images' NIR levels before the backend (``runtime.levels``)."""
from __future__ import annotations

import numpy as np
import torch

from ...errors import InputError
from ..levels import MODES, LevelsBand, LevelsTracker, frame_levels, level_map, normalize
from .base import BackendWrapper


def check_levels(mode: str) -> str:
    if mode not in MODES:
        raise InputError(f"levels {mode!r}: expected one of: {', '.join(MODES)}")
    return mode


class LevelsInference(BackendWrapper):
    """``backend`` on frames whose levels ``mode`` (auto, stretch) brings to ``band``'s. Batches
    (``infer_uint8``) and the frames of image folders: each frame on its own. The engine's video
    and live streams (one frame a ``submit``): smoothed from frame to frame, afresh for each run
    (``start_stream``, which the engine calls, gives each run a ``LevelsStream`` of its own, so
    that runs at once through one backend, one camera a thread, do not share their levels)."""

    def __init__(self, backend, mode: str, band: LevelsBand):
        mode = check_levels(mode)
        super().__init__(backend)
        self.levels, self.band = mode, band
        self._stream = LevelsStream(self)  # for callers that ``submit`` to the backend itself

    def start_stream(self, continuous: bool = True) -> "LevelsStream":
        """A new run: the stream to submit its frames to, with levels of its own; ``continuous``
        False (image folders: unrelated pictures) takes each frame on its own. (The backend's own
        ``submit`` starts afresh too, for callers that submit to it.)"""
        super().start_stream(continuous)
        self._stream = LevelsStream(self, continuous)
        return LevelsStream(self, continuous)

    def _each(self, frames: np.ndarray) -> np.ndarray:
        return np.stack([normalize(f, self.band, self.levels) for f in frames])

    def infer_uint8(self, frames) -> np.ndarray:
        return self.inner.infer_uint8(self._each(np.asarray(frames)))

    def submit(self, frames: np.ndarray):
        return self._stream.submit(frames)

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        out = []
        for frame in x:  # (1, H, W) in [-1, 1]: the map is found on the frame's uint8 levels, applied in float
            v = (frame + 1.0) * 127.5
            gain, offset = level_map(*frame_levels(v.round().clamp(0, 255).to(torch.uint8).numpy()[0]), self.band, self.levels)
            out.append(((v * gain + offset).clamp(0, 255) / 127.5 - 1.0))
        return self.inner.infer(torch.stack(out))


class LevelsStream:
    """One run's frames through ``backend`` (a ``LevelsInference``): its own ``LevelsTracker``;
    the rest (name, workers, ...) is the backend's."""

    def __init__(self, backend: LevelsInference, continuous: bool = True):
        self.backend, self.smooth = backend, continuous
        self.tracker = LevelsTracker(backend.band, backend.levels)

    def __getattr__(self, attr):
        if attr == "backend":
            raise AttributeError(attr)
        return getattr(self.backend, attr)

    def submit(self, frames: np.ndarray):
        frames = np.asarray(frames)
        if frames.ndim == 3 and len(frames) == 1 and self.smooth:
            return self.backend.inner.submit(self.tracker(frames[0])[None])
        return self.backend.inner.submit(self.backend._each(frames))
