"""An OpenCV preview window, where a display exists; elsewhere a warning and nothing else."""
from __future__ import annotations

import logging
import os

import cv2
import numpy as np

from .base import Frame, Sink

log = logging.getLogger(__name__)

WINDOW = "nirvision"


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class PreviewSink(Sink):
    """Shows each frame; closing the window or pressing q or Esc asks the engine to stop."""

    def __init__(self, side_by_side: bool = True):
        self.side_by_side = side_by_side
        self.enabled = has_display()
        self.stop_requested = False
        self.description = "preview window"
        if not self.enabled:
            self.description = "preview window (disabled: no display)"
            log.warning("preview: no display here (DISPLAY and WAYLAND_DISPLAY are unset); preview disabled")

    def write(self, frame: Frame, image: np.ndarray) -> None:
        if not self.enabled:
            return
        try:
            cv2.imshow(WINDOW, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            key = cv2.waitKey(1) & 0xFF
        except cv2.error as exc:
            log.warning("preview: the window cannot be shown (%s); preview disabled", str(exc).strip().splitlines()[-1])
            self.enabled = False
            self.description = "preview window (disabled: it could not be shown)"
            return
        if key in (ord("q"), 27):
            self.stop_requested = True

    def close(self) -> None:
        if self.enabled:
            try:
                cv2.destroyWindow(WINDOW)
                cv2.waitKey(1)
            except cv2.error:
                pass
