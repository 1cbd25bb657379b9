"""A folder of PNG images: one per frame, named after the source image when it has a name.

A frame from ``cam1/0001.jpg`` becomes ``FOLDER/cam1/0001.png``. Names that would meet
(``f1.png`` and ``f1.jpg``) keep their type: ``f1_png.png`` and ``f1_jpg.png``; should that
name be taken too, a number follows (``f1_png_2.png``). The names are worked out from the
source's whole list before the first frame, so they do not depend on which files decode, and
no frame overwrites another. A folder whose names would overwrite a source image is refused.

Frames of a video are numbered as written, ``frame_000000.png`` the first (with ``--start``,
the range's first); each PNG says its frame's time in the recording (s, as a player counts from
the recording's first frame) in a text chunk, ``source_time_s``, so that it maps back to its
frame wherever it is copied.
"""
from __future__ import annotations

import logging
import os
import struct
import zlib
from pathlib import Path, PurePosixPath
from typing import Iterable

import cv2
import numpy as np

from ..errors import InputError
from .output_lock import OutputClaim
from .base import Frame, Sink

log = logging.getLogger(__name__)


def png_names(names: Iterable[str]) -> dict[str, str]:
    """Each source name (a relative POSIX path) -> a distinct relative PNG path.

    Distinct also where case does not count (macOS, Windows): ``A.png`` and ``a.png`` meet.
    """
    names = list(dict.fromkeys(names))
    plain = {n: PurePosixPath(n).with_suffix(".png").as_posix() for n in names}
    count: dict[str, int] = {}
    for p in plain.values():
        count[p.casefold()] = count.get(p.casefold(), 0) + 1
    out = {n: p for n, p in plain.items() if count[p.casefold()] == 1}
    taken = {p.casefold() for p in out.values()}
    for n in names:
        if n in out:
            continue
        path = PurePosixPath(n)
        stem = path.with_name(f"{path.stem}_{path.suffix[1:].lower()}" if path.suffix else path.stem).as_posix()
        candidate, k = f"{stem}.png", 1
        while candidate.casefold() in taken:
            k += 1
            candidate = f"{stem}_{k}.png"
        taken.add(candidate.casefold())
        out[n] = candidate
    return out


TIME_KEY = b"source_time_s"  # the PNG text chunk with a video frame's time in its recording


def with_text(png: bytes, key: bytes, value: str) -> bytes:
    """``png`` with a tEXt chunk ``key`` = ``value`` after its header chunk (IHDR: 8 + 25 bytes)."""
    body = b"tEXt" + key + b"\0" + value.encode("latin-1")
    chunk = struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    return png[:33] + chunk + png[33:]


class ImageFolderSink(Sink):
    """``folder/NAME.png`` for frames from image files, ``folder/frame_000123.png`` otherwise.

    ``names``: every name the source's frames will carry (``SourceInfo.names``), for names
    that never meet; ``files``: the source's own files, which no output may replace; ``zero``:
    a recorded video's time (s, as ``Frame.time``) that players show as 0 (``SourceInfo.created_at``):
    where given, each numbered frame's PNG says its time from it (``TIME_KEY``).
    """

    def __init__(self, folder: str | Path, side_by_side: bool = False, compression: int = 1, names: Iterable[str] = (), files: Iterable[str | Path] = (),
                 zero: float | None = None):
        self.folder = Path(folder)
        self.description = str(self.folder)
        self.side_by_side = side_by_side
        self.params = [cv2.IMWRITE_PNG_COMPRESSION, int(compression)]
        self.names = png_names(names)
        if self.folder.exists() and not self.folder.is_dir():
            raise InputError(f"output folder {self.folder}: is a file; expected a folder for PNG output")
        self._refuse_overwriting(files)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"output folder {self.folder}: cannot be created ({exc.strerror or exc}); expected a writable path") from None
        if not os.access(self.folder, os.W_OK | os.X_OK):
            raise InputError(f"output folder {self.folder}: not writable; expected a writable folder")
        self._claim = OutputClaim(self.folder, "output folder", folder=True)  # OutputBusy while another run writes into it
        self.zero = zero
        self.frames = 0

    def close(self) -> None:
        self._claim.release()

    def _refuse_overwriting(self, files: Iterable[str | Path]) -> None:
        sources = {os.path.realpath(f): f for f in files}
        if not sources:
            return
        for out in self.names.values():
            hit = sources.get(os.path.realpath(self.folder / out))
            if hit is not None:
                raise InputError(f"output folder {self.folder}: would overwrite the source image {hit}; expected another folder")

    def filename(self, frame: Frame) -> str:
        if not frame.name:
            return f"frame_{frame.index:06d}.png"
        return self.names.get(frame.name) or f"{PurePosixPath(frame.name).stem}.png"

    def write(self, frame: Frame, image: np.ndarray) -> None:
        ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), self.params)
        if not ok:  # pragma: no cover - encoding a valid uint8 image does not fail
            raise RuntimeError(f"output folder {self.folder}: PNG encoding failed for frame {frame.index}")
        data = data.tobytes()
        if self.zero is not None and not frame.name and frame.time is not None:
            data = with_text(data, TIME_KEY, f"{frame.time - self.zero:.6f}")
        path = self.folder / self.filename(frame)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        tmp.write_bytes(data)
        tmp.replace(path)
        self.frames += 1
