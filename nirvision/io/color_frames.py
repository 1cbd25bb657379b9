"""Frames that are already in colour: a day/night camera's day mode.

Surveillance cameras switch between colour by day and NIR (their IR-cut filter out, the picture
black and white) by night. By default every frame is reduced to one NIR channel and colorized,
as the model expects. With ``--color-frames pass`` a frame that is in colour goes to the outputs
as the camera delivered it, without inference: the day keeps its real colours and costs no
inference, the night is colorized.

A frame is in colour when at least ``ENTER_SHARE`` of a thumbnail's pixels are coloured. The
thumbnail is ``THUMB_WIDTH`` pixels wide; a pixel is coloured when its R, G and B differ from
their mean by ``PIXEL_CHROMA`` 8-bit levels or more (root mean square), and so are the pixels
around it (a 3 x 3 minimum: thin lines and text do not count). Along a stream, colour ends when
fewer than ``LEAVE_SHARE`` are coloured, so that a dull day does not flip back and forth.

Measured through H.264 (crf 23, PyAV): the VCIP 2020 RGB photographs (364) 25-100% coloured
(median 83%, 4 under a third), 35% the least at crf 40; their NIR images 0%, also where the
encoder leaves the chroma one code off neutral (OpenCV's ``VideoWriter``, mp4v: 1.4-1.9 levels
in every pixel); two codes off (126 or 130) is a tint, colour. A night picture with a coloured
clock, logo, band or an NVR's detection boxes on it (twelve green 2-pixel boxes on 1280x720:
7-9%) stays NIR. A camera whose night picture is tinted (no black-and-white mode: the IR light
seen through its colour filters) is colour in every pixel: colorize its frames with the default
``colorize``.

Along a video, stream or camera a verdict also holds until ``HOLD_S`` seconds of frames in a
row say otherwise (a camera switching its filter at dusk shows a few frames of each), and each
switch is logged; pictures of a folder are each judged alone.
"""
from __future__ import annotations

import functools
import logging
from typing import Callable

import cv2
import numpy as np

from ..errors import InputError
from ..runtime.frames import SampleDepth, bits_for

log = logging.getLogger(__name__)

COLOR_FRAMES = ("colorize", "pass")
THUMB_WIDTH = 128
PIXEL_CHROMA = 2.0  # 8-bit levels (RMS of R, G, B about their mean) from which a thumbnail's pixel is coloured
ENTER_SHARE = 0.2  # the share of coloured pixels from which a frame is in colour (measured figures above)
LEAVE_SHARE = 0.1  # along a stream in colour: the share under which a frame is NIR again
GRAY_FORMATS = ("gray", "ya", "mono", "y400")  # PyAV pixel formats without colour (pal8's palette may hold colour)
HOLD_S = 0.2  # seconds of frames in a row that must disagree before a stream switches between colour and NIR
HINT_EVERY = 25  # with colorize: frames between looks for colour (said once, with the option that keeps it)


def check_color_frames(value, what: str = "color_frames") -> str:
    if value is None:
        return "colorize"
    if value not in COLOR_FRAMES:
        raise InputError(f"{what} {value!r}: expected one of {', '.join(COLOR_FRAMES)} (pass: frames already in colour, "
                         "a day/night camera's day mode, go to the outputs unchanged)")
    return value


def color_share(thumb: np.ndarray | None) -> float:
    """The share of a thumbnail's pixels that are coloured, with the pixels around them
    (``PIXEL_CHROMA``, a 3 x 3 minimum); 0 for None (a format without colour)."""
    if thumb is None:
        return 0.0
    r, g, b = (thumb[:, :, c].astype(np.int32) for c in range(3))  # channel by channel: numpy sums a last axis of 3 slowly
    total = r + g + b
    spread = np.square(3 * r - total) + np.square(3 * g - total) + np.square(3 * b - total)  # 9 x the squares about the mean
    coloured = (spread >= 27 * PIXEL_CHROMA ** 2).astype(np.uint8)  # RMS over the 3 channels >= PIXEL_CHROMA
    if min(coloured.shape) >= 3:
        coloured = cv2.erode(coloured, np.ones((3, 3), np.uint8))
    return float(np.count_nonzero(coloured)) / coloured.size


def color_bits(img: np.ndarray, fixed: int | None, seen: int | None = None) -> int | None:
    """The bits that hold a 16-bit colour picture: ``fixed`` (--input-bits) where given, else the
    fewest of 10, 12, 14 and 16 that hold its brightest channel (its NIR depth comes from the
    channels' mean), and at least ``seen`` (what the stream needed so far)."""
    if img.dtype != np.uint16 or img.ndim != 3:
        return None
    if fixed is not None:
        return fixed
    return max(bits_for(int(img[:, :, :3].max()) if img.size else 0), seen or 0)


def thumb_size(width: int, height: int) -> tuple[int, int]:
    """(w, h) of a thumbnail ``THUMB_WIDTH`` wide (or the frame's own size, when smaller)."""
    w = min(THUMB_WIDTH, width)
    return w, max(1, min(height, round(height * w / width)))


def av_thumbnail(vf) -> np.ndarray | None:
    """A small RGB copy of a PyAV frame, or None for formats without colour (gray, gray16, ya8)."""
    if vf.format.name.startswith(GRAY_FORMATS):
        return None
    w, h = thumb_size(vf.width, vf.height)
    return vf.reformat(width=w, height=h, format="rgb24").to_ndarray()


def to_rgb8(img: np.ndarray, bits: int | None = None) -> np.ndarray:
    """An OpenCV colour image (BGR or BGRA; uint8, uint16 holding ``bits`` bits, or float in
    [0, 1]) as uint8 RGB."""
    img = img[:, :, :3]
    if img.dtype == np.uint16:
        img = SampleDepth(bits or 16, quiet=True).to_uint8(img)
    elif img.dtype != np.uint8:
        img = np.round(np.clip(img, 0, 1) * 255)
    return cv2.cvtColor(np.ascontiguousarray(img.astype(np.uint8, copy=False)), cv2.COLOR_BGR2RGB)


def array_thumbnail(img: np.ndarray, bits: int | None = None) -> np.ndarray | None:
    """``av_thumbnail`` for an OpenCV image: None when it has one channel."""
    if img.ndim != 3 or img.shape[2] < 3:
        return None
    w, h = thumb_size(img.shape[1], img.shape[0])
    small = img[:, :, :3]
    if small.dtype not in (np.uint8, np.uint16, np.float32):
        small = small.astype(np.float32)
    if small.shape[1] > 2 * w:  # every few pixels first, then 2 x 2 averages: a 1080p frame's INTER_AREA alone took 3-9 ms
        small = cv2.resize(small, (2 * w, 2 * h), interpolation=cv2.INTER_NEAREST)
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
        # a rate FFmpeg could not tell (90000, an AVI's 1000) would hold a verdict for minutes
        self.hold = max(1, round(HOLD_S * float(fps))) if fps and 1 <= fps <= 120 else 5
        self.in_color: bool | None = None  # the stream's verdict so far
        self._against = 0  # frames in a row that disagree with it
        self._seen = 0
        self._hinted = False

    def pick(self, thumbnail: Callable[[], np.ndarray | None], rgb: Callable[[], np.ndarray], what: str | None = None) -> np.ndarray | None:
        """The frame as uint8 RGB when it passes through unchanged, else None (it is colorized).
        ``thumbnail()`` gives a small RGB copy (None: no colour in its format), ``rgb()`` the
        whole frame; each is called only when needed. ``what``: the frame in messages (a
        picture's file; default: its number)."""
        index, self._seen = self._seen, self._seen + 1
        if self.mode == "colorize":
            if not self._hinted and (index % HINT_EVERY == 0 or not self.continuous):
                share = color_share(thumbnail())
                if share >= ENTER_SHARE:
                    self._hinted = True
                    log.warning("%s: %s is in colour (%.0f%% of its pixels): it is reduced to NIR and colorized; "
                                "--color-frames pass (Python: color_frames=\"pass\") keeps frames in colour as they are "
                                "(a day/night camera's day mode)", self.name, what or f"frame {index}", 100 * share)
            return None
        share = color_share(thumbnail())
        colour = share >= (LEAVE_SHARE if self.in_color else ENTER_SHARE)
        if not self.continuous:
            return rgb() if colour else None
        if self.in_color is None:
            self.in_color = colour
            log.info("%s: frames %s at frame %d", self.name, self._says(colour), index)
        elif colour != self.in_color:
            self._against += 1
            if self._against >= self.hold:
                self.in_color = colour
                self._against = 0
                log.info("%s: frames %s from frame %d", self.name, self._says(colour), index)
        else:
            self._against = 0
        return rgb() if self.in_color else None

    @staticmethod
    def _says(colour: bool) -> str:
        return "in colour, passed through unchanged" if colour else "in NIR, colorized"


def pick_array(colors: ColorFrames, pixels: Callable[[], np.ndarray], fixed: int | None, seen: int | None = None,
               finish: Callable[[np.ndarray], np.ndarray] = lambda x: x, what: str | None = None) -> np.ndarray | None:
    """``colors.pick`` for an OpenCV-style image (BGR, 8 or 16 bits, float) that ``pixels()``
    gives when first needed (once); 16-bit colour by its own depth (``color_bits``); ``finish``
    turns the RGB upright."""
    @functools.cache
    def image() -> tuple[np.ndarray, int | None]:
        img = pixels()
        return img, color_bits(img, fixed, seen)

    return colors.pick(lambda: array_thumbnail(*image()), lambda: finish(to_rgb8(*image())), what)
