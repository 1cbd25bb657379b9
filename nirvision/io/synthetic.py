"""``synthetic:WIDTHxHEIGHT[@FPS][:FRAMES]``: a generated NIR-like clip for demos, tests and benchmarks.

A panning textured background (bright, foliage-like low-frequency structure, as vegetation
looks in NIR) with a few textured shapes moving across it and a little sensor noise. The
clip is deterministic for a given size, rate and ``seed``. FPS defaults to 25 and FRAMES to
ten seconds of video. With ``live=True`` frames are paced at FPS in real time and the source
counts as live (the engine may drop frames), which stands in for a camera in tests.
"""
from __future__ import annotations

import re
import time
from fractions import Fraction
from typing import Iterator

import cv2
import numpy as np

from ..errors import InputError
from .base import Frame, Source, SourceInfo

SPEC = re.compile(r"^(?i:synthetic):(?P<w>\d+)x(?P<h>\d+)(?:@(?P<fps>\d+(?:\.\d+)?))?(?::(?P<frames>\d+))?$")
MAX_SIDE = 8192


def parse_synthetic(spec: str) -> tuple[int, int, Fraction, int]:
    """``synthetic:640x480@25:250`` -> (640, 480, Fraction(25), 250)."""
    m = SPEC.match(spec.strip())
    if not m:
        raise InputError(f"source {spec!r}: expected synthetic:WIDTHxHEIGHT[@FPS][:FRAMES], e.g. synthetic:640x480@25:250")
    w, h = int(m["w"]), int(m["h"])
    if not (8 <= w <= MAX_SIDE and 8 <= h <= MAX_SIDE):
        raise InputError(f"source {spec!r}: width and height must lie in 8..{MAX_SIDE}, got {w}x{h}")
    fps = Fraction(m["fps"]).limit_denominator(1001) if m["fps"] else Fraction(25)
    if fps <= 0 or fps > 1000:
        raise InputError(f"source {spec!r}: FPS must lie in (0, 1000], got {m['fps']}")
    frames = int(m["frames"]) if m["frames"] is not None else int(round(10 * fps))
    if frames < 1:
        raise InputError(f"source {spec!r}: FRAMES must be at least 1")
    return w, h, fps, frames


def _texture(rng: np.random.Generator, h: int, w: int, cells: int, lo: float, hi: float) -> np.ndarray:
    """Smooth random texture (H x W float32 in [lo, hi]) from upscaled noise plus fine grain."""
    coarse = rng.random((max(2, h // cells), max(2, w // cells)), dtype=np.float32)
    smooth = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    grain = rng.random((h, w), dtype=np.float32)
    tex = 0.8 * smooth + 0.2 * grain
    tex -= tex.min()
    tex /= max(float(tex.max()), 1e-6)
    return lo + (hi - lo) * tex


class SyntheticSource(Source):
    """Moving textured shapes over a panning background; uint8 H x W frames."""

    def __init__(self, spec: str, seed: int = 0, live: bool = False, max_frames: int | None = None, **_ignored):
        super().__init__()
        self.width, self.height, self.fps, frames = parse_synthetic(spec)
        if max_frames is not None:
            frames = min(frames, max_frames)
        self.frames = frames
        self._closed = False
        w, h = self.width, self.height
        rng = np.random.default_rng(seed)
        # background twice as wide so that it can pan; a vertical gradient like sky over ground
        bg = _texture(rng, h, 2 * w, max(4, min(h, w) // 6), 60, 190)
        bg *= np.linspace(1.15, 0.75, h, dtype=np.float32)[:, None]
        self._background = np.clip(bg, 0, 255).astype(np.uint8)
        self._shapes = []
        for k in range(3):
            sh, sw = max(4, int(h * rng.uniform(0.2, 0.4))), max(4, int(w * rng.uniform(0.15, 0.35)))
            yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float32)
            if k % 2 == 0:  # ellipse
                mask = ((yy - sh / 2) / (sh / 2)) ** 2 + ((xx - sw / 2) / (sw / 2)) ** 2 <= 1.0
            else:  # rectangle
                mask = np.ones((sh, sw), bool)
            tex = _texture(rng, sh, sw, max(2, min(sh, sw) // 3), 20 + 70 * k, 120 + 60 * k)
            pos = np.array([rng.uniform(0, h - sh), rng.uniform(0, w - sw)], np.float32)
            vel = rng.uniform(-1, 1, 2).astype(np.float32) * np.float32(max(h, w) / 50)
            self._shapes.append((np.clip(tex, 0, 255).astype(np.uint8), mask, pos, vel))
        self._noise = rng.integers(-3, 4, (8, h, w), dtype=np.int16)
        self.info = SourceInfo(
            kind="synthetic", description=spec, live=live, fps=self.fps, time_base=1 / self.fps,
            frames=self.frames, width=w, height=h,
        )

    def render(self, i: int) -> np.ndarray:
        """Frame ``i`` of the clip (uint8 H x W)."""
        w, h = self.width, self.height
        off = (i * max(1, w // 100)) % w
        img = self._background[:, off:off + w].copy()
        for tex, mask, pos, vel in self._shapes:
            sh, sw = mask.shape
            # bounce inside the frame: a triangle wave on each axis
            y0, x0 = (pos + vel * i).tolist()
            y = int(abs((y0 % (2 * (h - sh) or 1)) - (h - sh))) if h > sh else 0
            x = int(abs((x0 % (2 * (w - sw) or 1)) - (w - sw))) if w > sw else 0
            region = img[y:y + sh, x:x + sw]
            m = mask[:region.shape[0], :region.shape[1]]
            region[m] = tex[:region.shape[0], :region.shape[1]][m]
        noisy = img.astype(np.int16) + self._noise[i % len(self._noise)]
        return np.clip(noisy, 0, 255).astype(np.uint8)

    def __iter__(self) -> Iterator[Frame]:
        start = time.perf_counter()
        for i in range(self.frames):
            if self._closed:
                return
            if self.info.live:
                delay = start + float(i / self.fps) - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            self.frames_read += 1
            yield Frame(self.render(i), index=i, pts=i, time_base=self.info.time_base, t_read=time.perf_counter())

    def close(self) -> None:
        self._closed = True
