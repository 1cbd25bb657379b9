"""Frames that are already in colour: a day/night camera's day mode.

Surveillance cameras switch between colour by day and NIR (their IR-cut filter out, the picture
black and white) by night. By default every frame is reduced to one NIR channel and colorized,
as the model expects. With ``--color-frames pass`` a frame that is in colour goes to the outputs
as the camera delivered it, without inference: the day keeps its real colours and costs no
inference, the night is colorized.

A frame is in colour when at least ``COLOUR_SHARE`` of the pixels of a thumbnail ``THUMB_WIDTH``
pixels wide are coloured: their R, G and B differ from their mean by ``PIXEL_CHROMA`` 8-bit levels
or more (root mean square). Measured on the VCIP 2020 training pairs (364 each): no pixel of
the NIR images, and 61-99% of their RGB photographs' pixels (1% of the photographs under 68%,
the dullest a dark forest; through H.264 at crf 40, 54% the least of 61 of them); a
black-and-white picture through H.264 or JPEG stays gray. So a
night picture with a coloured clock, logo or lamp in it (a camera's on-screen text) stays NIR
unless those cover a third of it. A camera whose night picture is tinted (no black-and-white
mode: the IR light seen through its colour filters) is colour in every pixel: colorize its
frames with the default ``colorize``.

Along a video, stream or camera the verdict holds until ``HOLD_S`` seconds of frames in a row
say otherwise (a camera switching its filter at dusk shows a few frames of each), and each
switch is logged; pictures of a folder are each judged alone.
"""
from __future__ import annotations

import logging
from typing import Callable

import cv2
import numpy as np

from ..errors import InputError

log = logging.getLogger(__name__)

COLOR_FRAMES = ("colorize", "pass")
THUMB_WIDTH = 64
PIXEL_CHROMA = 1.5  # 8-bit levels (RMS of R, G, B about their mean) from which a thumbnail's pixel is coloured
COLOUR_SHARE = 1 / 3  # the share of coloured pixels from which a frame is in colour (measured figures above)
HOLD_S = 0.2  # seconds of frames in a row that must disagree before a stream switches between colour and NIR
HINT_EVERY = 25  # with colorize: frames between looks for colour (said once, with the option that keeps it)


def check_color_frames(value, what: str = "color_frames") -> str:
    if value is None:
        return "colorize"
    if value not in COLOR_FRAMES:
        raise InputError(f"{what} {value!r}: expected one of {', '.join(COLOR_FRAMES)} (pass: frames already in colour, "
                         "a day/night camera's day mode, go to the outputs unchanged)")
    return value


def colour_share(thumb: np.ndarray | None) -> float:
    """The share of a thumbnail's pixels that are coloured (``PIXEL_CHROMA``); 0 for None (gray)."""
    if thumb is None:
        return 0.0
    x = thumb.reshape(-1, thumb.shape[-1])[:, :3].astype(np.float32)
    chroma = np.sqrt(np.mean(np.square(x - x.mean(axis=1, keepdims=True)), axis=1))
    return float(np.count_nonzero(chroma >= PIXEL_CHROMA)) / len(chroma)


def thumb_size(width: int, height: int) -> tuple[int, int]:
    """(w, h) of a thumbnail ``THUMB_WIDTH`` wide (or the frame's own size, when smaller)."""
    w = min(THUMB_WIDTH, width)
    return w, max(1, min(height, round(height * w / width)))


def av_thumbnail(vf) -> np.ndarray | None:
    """A small RGB copy of a PyAV frame, or None for formats without colour (gray, gray16)."""
    if len(vf.format.components) < 3:
        return None
    w, h = thumb_size(vf.width, vf.height)
    return vf.reformat(width=w, height=h, format="rgb24").to_ndarray()


def to_rgb8(img: np.ndarray, bits: int | None = None) -> np.ndarray:
    """An OpenCV colour image (BGR or BGRA; uint8, uint16 holding ``bits`` bits, or float in
    [0, 1]) as uint8 RGB."""
    img = img[:, :, :3]
    if img.dtype == np.uint16:
        img = np.minimum(img, (1 << (bits or 16)) - 1) >> ((bits or 16) - 8)
    elif img.dtype != np.uint8:
        img = np.round(np.clip(img, 0, 1) * 255)
    return cv2.cvtColor(np.ascontiguousarray(img.astype(np.uint8, copy=False)), cv2.COLOR_BGR2RGB)


def array_thumbnail(img: np.ndarray, bits: int | None = None) -> np.ndarray | None:
    """``av_thumbnail`` for an OpenCV image: None when it has one channel."""
    if img.ndim != 3 or img.shape[2] < 3:
        return None
    step = max(1, img.shape[1] // (4 * THUMB_WIDTH))  # every step-th pixel first: a 1080p frame's resize alone took 9 ms
    small = img[::step, ::step, :3]
    w, h = thumb_size(small.shape[1], small.shape[0])
    if small.dtype not in (np.uint8, np.uint16, np.float32):
        small = small.astype(np.float32)
    return to_rgb8(cv2.resize(small, (w, h), interpolation=cv2.INTER_AREA), bits)


class ColorFrames:
    """One stream's verdicts: which frames go out as they came (``pick``).

    ``mode``: colorize (every frame is colorized; colour is looked for now and then only to say
    once that ``--color-frames pass`` would keep it) or pass. ``continuous``: frames of one scene
    going on (hold the verdict for ``HOLD_S``), not unrelated pictures."""

    def __init__(self, mode: str = "colorize", name: str = "frames", continuous: bool = True, fps: float | None = None):
        self.mode = check_color_frames(mode)
        self.name = name
        self.continuous = continuous
        self.hold = max(1, round(HOLD_S * float(fps))) if fps else 5
        self.colour: bool | None = None  # the stream's verdict so far
        self._against = 0  # frames in a row that disagree with it
        self._seen = 0
        self._hinted = False

    def pick(self, thumbnail: Callable[[], np.ndarray | None], rgb: Callable[[], np.ndarray]) -> np.ndarray | None:
        """The frame as uint8 RGB when it passes through unchanged, else None (it is colorized).
        ``thumbnail()`` gives a small RGB copy (None: no colour in its format), ``rgb()`` the
        whole frame; each is called only when needed."""
        index, self._seen = self._seen, self._seen + 1
        if self.mode == "colorize":
            if not self._hinted and (index % HINT_EVERY == 0 or not self.continuous):
                share = colour_share(thumbnail())
                if share >= COLOUR_SHARE:
                    self._hinted = True
                    log.warning("%s: frame %d is in colour (%.0f%% of its pixels): it is reduced to NIR and colorized; "
                                "--color-frames pass keeps frames in colour as they are (a day/night camera's day mode)",
                                self.name, index, 100 * share)
            return None
        colour = colour_share(thumbnail()) >= COLOUR_SHARE
        if not self.continuous:
            return rgb() if colour else None
        if self.colour is None:
            self.colour = colour
            log.info("%s: frames %s at frame %d", self.name, self._says(colour), index)
        elif colour != self.colour:
            self._against += 1
            if self._against >= self.hold:
                self.colour = colour
                self._against = 0
                log.info("%s: frames %s from frame %d", self.name, self._says(colour), index)
        else:
            self._against = 0
        return rgb() if self.colour else None

    @staticmethod
    def _says(colour: bool) -> str:
        return "in colour, passed through unchanged" if colour else "in NIR, colorized"
