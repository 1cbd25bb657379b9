"""A folder or glob of images, in name order; each frame keeps its file name for the sinks.

Any image OpenCV reads (PNG, JPEG, TIFF, BMP, 8 or 16 bit, gray or colour) is reduced to one
NIR channel. A file that fails to decode is skipped and counted in ``decode_errors``.
"""
from __future__ import annotations

import glob
import logging
import re
import time
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from ..errors import InputError
from ..runtime.frames import to_nir
from .base import Frame, Source, SourceInfo

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".pgm", ".ppm", ".webp"}
GLOB_CHARS = re.compile(r"[*?\[]")


def is_glob(spec: str) -> bool:
    return bool(GLOB_CHARS.search(spec))


def _natural_key(path: Path):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def list_images(spec: str) -> list[Path]:
    """The image files a folder or glob names, sorted naturally by name."""
    if is_glob(spec):
        paths = [Path(p) for p in glob.glob(spec)]
        what = f"glob {spec!r}"
    else:
        folder = Path(spec)
        if not folder.is_dir():
            raise InputError(f"image folder {spec}: not found")
        paths = list(folder.iterdir())
        what = f"image folder {spec}"
    images = sorted((p for p in paths if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key)
    if not images:
        raise InputError(f"{what}: holds no images; expected files ending in {', '.join(sorted(IMAGE_SUFFIXES))}")
    return images


def read_image(path: Path) -> np.ndarray | None:
    """The image as uint8 NIR (H x W), or None when the file does not decode.

    OpenCV gives colour as BGR; ``to_nir`` averages the channels, so the order does not matter.
    """
    data = np.fromfile(str(path), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        return None
    return to_nir(img, name=str(path))


class ImageSource(Source):
    """Frames from image files; ``fps`` sets the timestamps a video sink gives them."""

    def __init__(self, spec: str, fps: float | None = None, max_frames: int | None = None, **_ignored):
        super().__init__()
        self.paths = list_images(spec)
        if max_frames is not None:
            self.paths = self.paths[:max_frames]
        rate = Fraction(fps).limit_denominator(1001) if fps else Fraction(25)
        self._closed = False
        self.info = SourceInfo(kind="images", description=spec, live=False, fps=rate, time_base=1 / rate, frames=len(self.paths), names=True)

    def __iter__(self) -> Iterator[Frame]:
        for path in self.paths:
            if self._closed:
                return
            img = read_image(path)
            if img is None:
                self.decode_errors += 1
                log.warning("%s: not a readable image; skipped (%d so far)", path, self.decode_errors)
                continue
            self.frames_read += 1
            i = self.frames_read - 1
            yield Frame(img, index=i, pts=i, time_base=self.info.time_base, name=path.name, t_read=time.perf_counter())
        if self.frames_read == 0 and not self._closed:
            raise InputError(f"image source {self.info.description}: none of its {len(self.paths)} files is a readable image")

    def close(self) -> None:
        self._closed = True
