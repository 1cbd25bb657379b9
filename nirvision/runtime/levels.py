"""NIR levels: frames exposed unlike the training images are brought to their levels first.

The network maps NIR intensity to colour and brightness, so it depends on exposure: a camera
with another gain, or an IR illuminator of another strength, gives frames it never saw. On the
validation split of the VCIP 2020 training pairs with the bundled lite weights (session 8; mean
PSNR in dB against the true colours, the NIR scaled or bent before colorizing):

    NIR given          as it is   x 0.3   x 0.6   x 0.8   x 1.3   gamma 0.7   gamma 1.4
    levels off           16.19    11.28   13.73   15.69   15.62     15.51       16.23
    levels auto          16.14    16.14   16.05   15.97   15.66     15.53       16.23
    levels stretch       16.09    16.08   16.10   16.09   16.00     16.06       16.03

A frame's levels are its 1st and 99th percentiles (``frame_levels``). The training images'
levels spread over a band (``LevelsBand``: the middle half, 25th to 75th percentile, over the
training images of each, and their means), which the checkpoint records (``nir_levels`` in its
meta; weights without it use ``VCIP_BAND``, measured on the VCIP 2020 training split). ``auto``
leaves a frame whose levels lie in the band as it is and maps the others linearly onto the
nearest levels inside it; ``stretch`` maps every frame's levels onto the band's means, the most
robust to exposure and 0.1 dB below on frames like the training images. (A band of the 10th to
90th percentiles made auto 16.21 dB as it is but only 15.71 / 15.72 at x 0.3 / x 0.6.)
In a stream the map follows the frames smoothly (``LevelsTracker``), so that a headlight
crossing the picture does not make the whole colour image pump.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import cv2
import numpy as np

log = logging.getLogger(__name__)

MODES = ("off", "auto", "stretch")
LOW, HIGH = 1.0, 99.0  # the percentiles a frame's levels are
BAND_QUANTILES = (0.25, 0.75)  # the band: this share of the training images' levels
MAX_GAIN = 4.0  # the most a frame's contrast is raised (or lowered: 1 / MAX_GAIN)
MIN_SPREAD = 16.0  # frames whose 1st to 99th percentiles span less are left as they are


def frame_levels(nir: np.ndarray) -> tuple[float, float]:
    """The 1st and 99th percentiles of a uint8 frame (H, W), from its histogram (a millisecond at 1080p)."""
    hist = cv2.calcHist([np.ascontiguousarray(nir)], [0], None, [256], [0, 256]).ravel()
    cdf = np.cumsum(hist)
    total = cdf[-1]
    lo = int(np.searchsorted(cdf, total * LOW / 100.0))
    hi = int(np.searchsorted(cdf, total * HIGH / 100.0))
    return float(lo), float(max(hi, lo))


@dataclass(frozen=True)
class LevelsBand:
    """Where the training images' levels lie: ``low`` and ``high`` ranges of their 1st and 99th
    percentiles (``BAND_QUANTILES`` over the images), and the means of each."""

    low: tuple[float, float]
    high: tuple[float, float]
    low_mean: float
    high_mean: float
    images: int = 0

    @classmethod
    def from_images(cls, images) -> "LevelsBand":
        levels = np.array([frame_levels(np.asarray(im, dtype=np.uint8)) for im in images], dtype=np.float64)
        if len(levels) == 0:
            raise ValueError("LevelsBand.from_images: no images")
        lo, hi = levels[:, 0], levels[:, 1]
        q = lambda v: tuple(float(x) for x in np.quantile(v, BAND_QUANTILES))  # noqa: E731
        return cls(q(lo), q(hi), float(lo.mean()), float(hi.mean()), len(levels))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "LevelsBand":
        try:
            band = cls(tuple(map(float, d["low"])), tuple(map(float, d["high"])), float(d["low_mean"]), float(d["high_mean"]), int(d.get("images", 0)))
            if len(band.low) != 2 or len(band.high) != 2:
                raise ValueError("low and high need two numbers each")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"nir_levels: expected low, high (two numbers each), low_mean and high_mean; got {d!r} ({exc})") from None
        if not (0 <= band.low[0] <= band.low[1] <= 255 and 0 <= band.high[0] <= band.high[1] <= 255 and band.low_mean < band.high_mean):
            raise ValueError(f"nir_levels: levels out of order or outside 0..255: {d!r}")
        return band


# The VCIP 2020 training split (330 images, seed 0) that the bundled weights were trained on.
VCIP_BAND = LevelsBand(low=(49.0, 83.0), high=(201.0, 240.0), low_mean=66.53, high_mean=218.53, images=330)


def band_of(meta: dict | None) -> LevelsBand:
    """The band a checkpoint recorded, else VCIP_BAND (said once in the log); a CheckpointError
    naming the weights when what they recorded is not a band."""
    d = (meta or {}).get("nir_levels")
    if d:
        try:
            return LevelsBand.from_dict(d)
        except ValueError as exc:
            from ..models.checkpoint import CheckpointError

            raise CheckpointError(f"weights {(meta or {}).get('weights') or ''}: {exc}") from None
    log.info("levels: the weights record no NIR levels of their training images; using those of the VCIP 2020 training split")
    return VCIP_BAND


def target_levels(lo: float, hi: float, band: LevelsBand, mode: str) -> tuple[float, float]:
    """Where a frame's levels (lo, hi) go: unchanged, clamped into the band, or the band's means."""
    if mode == "stretch":
        return band.low_mean, band.high_mean
    if mode == "auto":
        return float(np.clip(lo, *band.low)), float(np.clip(hi, *band.high))
    return lo, hi


def affine(lo: float, hi: float, to_lo: float, to_hi: float) -> tuple[float, float]:
    """(gain, offset) taking ``lo`` to ``to_lo`` and ``hi`` to ``to_hi``, the gain held within
    1 / MAX_GAIN .. MAX_GAIN (about the middle of the levels). A frame whose levels span less than
    MIN_SPREAD (black, a lens cap, fog) is left as it is: its noise is all there is to stretch."""
    if hi - lo < MIN_SPREAD:
        return 1.0, 0.0
    gain = float(np.clip((to_hi - to_lo) / (hi - lo), 1.0 / MAX_GAIN, MAX_GAIN))
    return gain, (to_lo + to_hi) / 2.0 - gain * (lo + hi) / 2.0


def level_map(lo: float, hi: float, band: LevelsBand, mode: str) -> tuple[float, float]:
    """(gain, offset) that ``mode`` applies to a frame whose levels are (lo, hi)."""
    return affine(lo, hi, *target_levels(lo, hi, band, mode))


def apply(nir: np.ndarray, gain: float, offset: float) -> np.ndarray:
    """``nir`` * gain + offset, rounded and clipped to uint8, through a lookup table."""
    if gain == 1.0 and offset == 0.0:
        return nir
    lut = np.clip(np.rint(np.arange(256, dtype=np.float64) * gain + offset), 0, 255).astype(np.uint8)
    return cv2.LUT(np.ascontiguousarray(nir), lut)


def normalize(nir: np.ndarray, band: LevelsBand, mode: str) -> np.ndarray:
    """One frame on its own (images: no smoothing)."""
    if mode == "off":
        return nir
    return apply(nir, *level_map(*frame_levels(nir), band, mode))


class LevelsTracker:
    """Levels for a stream: each frame's percentiles are smoothed over about ``1 / rate`` frames
    before the map is made; ``reset()`` (a new stream) and a new frame size start afresh."""

    def __init__(self, band: LevelsBand, mode: str, rate: float = 0.2):
        self.band, self.mode, self.rate = band, mode, rate
        self.reset()

    def reset(self) -> None:
        self.levels: tuple[float, float] | None = None
        self.shape: tuple[int, ...] | None = None

    def __call__(self, nir: np.ndarray) -> np.ndarray:
        if self.mode == "off":
            return nir
        lo, hi = frame_levels(nir)
        if self.levels is None or nir.shape != self.shape:
            self.levels, self.shape = (lo, hi), nir.shape
        else:
            a = self.rate
            self.levels = (self.levels[0] + a * (lo - self.levels[0]), self.levels[1] + a * (hi - self.levels[1]))
        return apply(nir, *level_map(*self.levels, self.band, self.mode))
