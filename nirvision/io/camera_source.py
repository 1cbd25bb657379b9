"""A V4L2 camera through OpenCV: ``0`` or ``/dev/video0``. Live; timestamps from the wall clock.

A failed read is a disconnect: the camera is reopened by the ``ReconnectPolicy``.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from fractions import Fraction
from glob import glob
from pathlib import Path
from typing import Iterator

import cv2

from ..errors import InputError
from ..runtime.frames import SampleDepth, to_nir
from .base import Frame, Source, SourceInfo
from .color_frames import ColorFrames, pick_array
from .reconnect import ReconnectPolicy, StreamLost

log = logging.getLogger(__name__)

TIME_BASE = Fraction(1, 1000)


def camera_device(spec: str) -> Path:
    """``0`` -> /dev/video0; ``/dev/videoN`` as is."""
    return Path(f"/dev/video{spec}") if spec.isdigit() else Path(spec)


class CameraSource(Source):
    """Frames from a camera; ``width``, ``height`` and ``fps`` ask the driver for a mode."""

    def __init__(self, spec: str, policy: ReconnectPolicy | None = None, width: int | None = None, height: int | None = None, fps: float | None = None, max_frames: int | None = None,
                 input_bits: int | str | None = None, color_frames: str = "colorize", **_ignored):
        super().__init__()
        self.depth = SampleDepth(input_bits, name=str(spec))
        self.device = camera_device(spec)
        self.policy = policy or ReconnectPolicy()
        self.mode = (width, height, fps)
        self.max_frames = max_frames
        self._stop = threading.Event()
        if not self.device.exists():
            found = ", ".join(sorted(glob("/dev/video*"))) or "none"
            raise InputError(f"camera {spec}: {self.device} does not exist (cameras here: {found}); expected a V4L2 camera index or /dev/videoN")
        self.cap = self._open()
        if self.cap is None:
            raise InputError(f"camera {spec}: {self.device} cannot be opened as a V4L2 capture device")
        w = int(self.cap.get(cv2.CAP_PROP_FRAME_WIDTH)) or None
        h = int(self.cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) or None
        rate = self.cap.get(cv2.CAP_PROP_FPS)
        self.info = SourceInfo(kind="camera", description=str(self.device), live=True, fps=Fraction(rate).limit_denominator(1001) if rate and rate > 0 else None, time_base=TIME_BASE, width=w, height=h)
        self.colors = ColorFrames(color_frames, name=str(spec), fps=self.info.fps)
        self.info.color_frames = self.colors.mode

    def _open(self):
        if not os.access(self.device, os.R_OK):
            return None
        cap = cv2.VideoCapture(str(self.device), cv2.CAP_V4L2)
        if not cap.isOpened():
            cap.release()
            return None
        w, h, fps = self.mode
        if w:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, w)
        if h:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, h)
        if fps:
            cap.set(cv2.CAP_PROP_FPS, fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        return cap

    def _reopen(self, delays):
        """Reopen the camera; ``delays`` is the attempt budget, renewed only once frames flow again."""
        for delay in delays:
            log.warning("camera %s: read failed; reopening in %.1f s", self.device, delay)
            if self._stop.wait(delay):
                return None
            cap = self._open()
            if cap is not None:
                self.reconnects += 1
                return cap
        raise StreamLost(f"camera {self.device}: lost, and reopening failed {self.policy.describe()}")

    def __iter__(self) -> Iterator[Frame]:
        start = time.perf_counter()
        last = -1
        delays = None  # the reconnection budget of the current outage
        try:
            while not self._stop.is_set():
                ok, img = self.cap.read() if self.cap is not None else (False, None)
                if not ok or img is None:
                    if self.cap is not None:
                        self.cap.release()
                    delays = delays or self.policy.delays()
                    self.cap = self._reopen(delays)
                    if self.cap is None:
                        return
                    continue
                delays = None
                pts = max(int((time.perf_counter() - start) * 1000), last + 1)
                last = pts
                nir = to_nir(img, name=str(self.device), depth=self.depth)
                color = pick_array(self.colors, lambda: img, self.depth.fixed, self.depth.bits)
                self.frames_read += 1
                yield Frame(nir, index=self.frames_read - 1, pts=pts, time_base=TIME_BASE, t_read=time.perf_counter(), color=color)
                if self.max_frames is not None and self.frames_read >= self.max_frames:
                    return
        finally:
            if self.cap is not None:
                self.cap.release()
                self.cap = None

    def close(self) -> None:
        self._stop.set()
