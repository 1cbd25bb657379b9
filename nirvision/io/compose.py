"""Views of a colorized frame: the side-by-side NIR | RGB picture."""
from __future__ import annotations

import cv2
import numpy as np


def side_by_side(nir: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    """uint8 NIR (H x W) and RGB (H x W x 3) -> uint8 RGB (H x 2W x 3), NIR on the left."""
    if nir.shape[:2] != rgb.shape[:2]:
        raise ValueError(f"side_by_side: NIR {nir.shape[:2]} and RGB {rgb.shape[:2]} differ in size")
    return cv2.hconcat([cv2.cvtColor(nir, cv2.COLOR_GRAY2RGB), np.ascontiguousarray(rgb)])
