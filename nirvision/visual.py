"""Pictures people would rather see than read: labelled image grids (input | prediction | truth)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def save_grid(path: str | Path, columns: list[np.ndarray], labels: list[str], pad: int = 4) -> Path:
    """Rows of images, one column per list (each uint8 N x H x W x 3, RGB), with column labels."""
    path = Path(path)
    n, h, w = columns[0].shape[:3]
    head = 22
    canvas = np.full((head + n * (h + pad) + pad, len(columns) * (w + pad) + pad, 3), 255, np.uint8)
    for c, (imgs, label) in enumerate(zip(columns, labels)):
        x = pad + c * (w + pad)
        cv2.putText(canvas, label, (x + 2, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        for r in range(n):
            y = head + pad + r * (h + pad)
            img = imgs[r]
            canvas[y: y + h, x: x + w] = img if img.ndim == 3 else img[..., None]
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR)):
        raise OSError(f"{path}: could not write the image")
    return path
