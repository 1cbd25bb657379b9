"""Pictures people would rather see than read: labelled image grids (input | prediction | truth)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def save_grid(path: str | Path, columns: list[np.ndarray], labels: list[str], pad: int = 4) -> Path:
    """Rows of images, one column per list (each a sequence of uint8 H x W x 3 RGB images, the
    first image's size for all), with column labels."""
    path = Path(path)
    n = len(columns[0])
    h, w = columns[0][0].shape[:2]
    head = 22
    canvas = np.full((head + n * (h + pad) + pad, len(columns) * (w + pad) + pad, 3), 255, np.uint8)
    for c, (imgs, label) in enumerate(zip(columns, labels)):
        x = pad + c * (w + pad)
        cv2.putText(canvas, label, (x + 2, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        for r in range(n):
            y = head + pad + r * (h + pad)
            img = imgs[r]
            if img.shape[:2] != (h, w):  # images of other sizes are fitted to the first one's tile
                img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
            canvas[y: y + h, x: x + w] = img if img.ndim == 3 else img[..., None]
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR)):
        raise OSError(f"{path}: could not write the image")
    return path


BARE_BGR = (180, 119, 31)  # a backend alone: blue
ENGINE_BGR = (14, 127, 255)  # the whole engine (decode, colorize, encode): orange


def save_bench_chart(path: str | Path, records: list, title: str = "") -> Path:
    """``nirvision bench`` as a picture: for each size, one bar a row, its length the FPS (one
    scale per size), labelled with the row and its speed-up over eager fp32 or its share of the
    bare backend; bare backends blue, whole-engine rows orange. Skipped rows are left out."""
    path = Path(path)
    rows = [r for r in records if not r.skipped and r.fps]
    sizes = list(dict.fromkeys(r.size for r in rows))
    width, label_w, row_h, head_h, gap = 980, 300, 22, 26, 14
    bar_max = width - label_w - 190
    height = 30 + sum(head_h + row_h * sum(r.size == s for r in rows) + gap for s in sizes) + 10
    img = np.full((max(height, 60), width, 3), 255, np.uint8)
    cv2.putText(img, title or "nirvision bench: frames per second", (10, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    y = 30
    for size in sizes:
        group = [r for r in rows if r.size == size]
        top = max(r.fps for r in group)
        cv2.putText(img, size, (10, y + 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        y += head_h
        for r in group:
            engine = r.engine_over_bare is not None
            name = r.backend + (f" x{r.workers}" if r.workers > 1 else "") + f" {r.precision}" + (" (no 2-buf)" if r.double_buffer is False else "")
            length = max(1, int(round(bar_max * r.fps / top)))
            cv2.putText(img, name[:40], (10, y + 15), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
            cv2.rectangle(img, (label_w, y + 3), (label_w + length - 1, y + row_h - 4), ENGINE_BGR if engine else BARE_BGR, -1)
            note = f"{r.fps:.1f} FPS"
            if engine:
                note += f" ({r.engine_over_bare:.2f} of bare)"
            elif r.speedup_vs_eager_fp32:
                note += f" ({r.speedup_vs_eager_fp32:.2f}x eager)"
            cv2.putText(img, note, (label_w + length + 6, y + 15), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
            y += row_h
        y += gap
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), img):
        raise OSError(f"{path}: could not write the image")
    return path
