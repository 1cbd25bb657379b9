"""A folder of PNG images: one per frame, named after the source image when it has a name."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError
from .base import Frame, Sink

log = logging.getLogger(__name__)


class ImageFolderSink(Sink):
    """``folder/NAME.png`` for frames from image files, ``folder/frame_000123.png`` otherwise."""

    def __init__(self, folder: str | Path, side_by_side: bool = False, compression: int = 1):
        self.folder = Path(folder)
        self.description = str(self.folder)
        self.side_by_side = side_by_side
        self.params = [cv2.IMWRITE_PNG_COMPRESSION, int(compression)]
        if self.folder.exists() and not self.folder.is_dir():
            raise InputError(f"output folder {self.folder}: is a file; expected a folder for PNG output")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"output folder {self.folder}: cannot be created ({exc.strerror or exc}); expected a writable path") from None
        if not os.access(self.folder, os.W_OK | os.X_OK):
            raise InputError(f"output folder {self.folder}: not writable; expected a writable folder")
        self.frames = 0

    def filename(self, frame: Frame) -> str:
        return f"{Path(frame.name).stem}.png" if frame.name else f"frame_{frame.index:06d}.png"

    def write(self, frame: Frame, image: np.ndarray) -> None:
        ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), self.params)
        if not ok:  # pragma: no cover - encoding a valid uint8 image does not fail
            raise RuntimeError(f"output folder {self.folder}: PNG encoding failed for frame {frame.index}")
        path = self.folder / self.filename(frame)
        tmp = path.with_name(path.name + ".part")
        tmp.write_bytes(data.tobytes())
        tmp.replace(path)
        self.frames += 1
