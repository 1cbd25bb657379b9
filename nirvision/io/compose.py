"""Views of a colorized frame: the side-by-side NIR | RGB picture, and a picture as displayed."""
from __future__ import annotations

import cv2
import numpy as np


def side_by_side(nir: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    """uint8 NIR (H x W) and RGB (H x W x 3) -> uint8 RGB (H x 2W x 3), NIR on the left."""
    if nir.shape[:2] != rgb.shape[:2]:
        raise ValueError(f"side_by_side: NIR {nir.shape[:2]} and RGB {rgb.shape[:2]} differ in size")
    return cv2.hconcat([cv2.cvtColor(nir, cv2.COLOR_GRAY2RGB), np.ascontiguousarray(rgb)])


def as_displayed(image: np.ndarray, sample_aspect_ratio=None) -> np.ndarray:
    """``image`` at the shape a player shows it: width times the pixel aspect ratio (a 720x576
    PAL frame at 16:15 is shown 768x576); unchanged for square pixels."""
    if not sample_aspect_ratio or sample_aspect_ratio == 1:
        return image
    h, w = image.shape[:2]
    width = max(1, round(w * float(sample_aspect_ratio)))
    return cv2.resize(image, (width, h), interpolation=cv2.INTER_AREA if width < w else cv2.INTER_LINEAR)
