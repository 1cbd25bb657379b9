"""A folder or glob of images, in natural order of their paths; each frame keeps its name for the sinks.

A frame's name is its path relative to the folder (for a glob: to the deepest folder all the
matched files share), so ``cam1/0001.png`` and ``cam2/0001.png`` from ``'*/0*.png'`` stay
apart. Any image OpenCV reads (PNG, JPEG, TIFF, BMP; uint8, uint16 or float in [0, 1]; gray or
colour) is reduced to one NIR channel (with ``color_frames="pass"`` a colour picture goes out as it is). A file that fails to decode or holds another pixel type
(a signed-integer TIFF, floats outside [0, 1]) is skipped and counted in ``decode_errors``.
"""
from __future__ import annotations

import glob
import logging
import os
import re
import time
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from ..errors import InputError
from ..runtime.frames import SampleDepth, to_nir
from .base import Frame, Source, SourceInfo
from .color_frames import ColorFrames, pick_array

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".pgm", ".ppm", ".webp"}
GLOB_CHARS = re.compile(r"[*?\[]")


def is_glob(spec: str) -> bool:
    return bool(GLOB_CHARS.search(spec))


def _natural_key(path: Path):
    """Folder by folder, numbers by value: ``cam2/img10`` after ``cam2/img9``, after all of ``cam1``."""
    return [[int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", part)] for part in path.parts]


def list_images(spec: str) -> list[Path]:
    """The image files a folder or glob names, sorted naturally by path."""
    if is_glob(spec):
        paths = [Path(p) for p in glob.glob(spec, recursive=True)]  # ** spans subfolders
        what = f"glob {spec!r}"
        if not paths:
            raise InputError(f"{what}: matches no files; expected a pattern matching images (or videos, for a batch)")
    else:
        folder = Path(spec)
        if not folder.is_dir():
            raise InputError(f"image folder {spec}: not found")
        paths = list(folder.iterdir())
        what = f"image folder {spec}"
    images = sorted((p for p in paths if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key)
    from .file_source import VIDEO_INPUTS

    videos = [p for p in paths if p.is_file() and p.suffix.lower() in VIDEO_INPUTS]
    if images and videos:
        raise mixed_media(spec, videos, images)
    if not images:
        raise InputError(f"{what}: holds no images; expected files ending in {', '.join(sorted(IMAGE_SUFFIXES))} "
                         "(or video files: nirvision colorize takes a folder or glob of videos as a batch)")
    return images


def mixed_media(spec: str, videos: list[Path], images: list[Path]) -> InputError:
    """The error for a folder or glob that holds videos and images both (an NVR export with its
    snapshots): which of them was meant cannot be told, and reading either kind alone would
    leave the other out with exit status 0 (the images alone: a night's videos not done), so it
    is refused before anything runs, naming the globs that pick one kind."""
    what = f"glob {spec!r}" if is_glob(spec) and not Path(spec).is_dir() else f"folder {spec}"

    def kinds(paths: list[Path]) -> list[str]:  # their suffixes as written (globs match case), most files first
        counts: dict[str, int] = {}
        for p in paths:
            counts[p.suffix] = counts.get(p.suffix, 0) + 1
        return sorted(counts, key=lambda s: (-counts[s], s))

    def pick(suffix: str) -> str:
        if is_glob(spec) and not Path(spec).is_dir():
            base = spec if Path(spec).name.endswith("*") else str(Path(spec).parent / "*")  # nvr/**/* -> nvr/**/*.mp4
        else:
            base = str(Path(spec) / "*")
        return f'"{base}{suffix}"'

    def count(n: int, one: str, many: str) -> str:
        return f"{n} {one if n == 1 else many}"

    v, i = kinds(videos), kinds(images)
    return InputError(f"{what}: holds {count(len(videos), 'video file', 'video files')} ({', '.join(v)}) and "
                      f"{count(len(images), 'image', 'images')} ({', '.join(i)}); expected one kind: give {' '.join(map(pick, v))} "
                      f"for the videos (a batch), or {' or '.join(map(pick, i))} for the images")


def relative_names(paths: list[Path]) -> list[str]:
    """Each path relative to the deepest folder they all share (POSIX separators)."""
    if not paths:
        return []
    base = os.path.commonpath([os.path.abspath(p.parent) for p in paths])
    return [Path(os.path.relpath(os.path.abspath(p), base)).as_posix() for p in paths]


def read_image(path: Path, depth: SampleDepth | None = None) -> np.ndarray | None:
    """The image as uint8 NIR (H x W), or None when the file does not decode; a ValueError
    (from ``to_nir``) when its pixels are of a type it does not take.

    OpenCV gives colour as BGR; ``to_nir`` averages the channels, so the order does not matter.
    """
    img = decode_image(path)
    return None if img is None else to_nir(img, name=str(path), depth=depth)


def decode_image(path: Path) -> np.ndarray | None:
    """The image's pixels as OpenCV decodes them (BGR for colour, any depth), or None. Of a
    TIFF of several pages the first, which is said."""
    data = np.fromfile(str(path), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is not None and Path(path).suffix.lower() in (".tif", ".tiff"):
        try:
            pages = cv2.imcount(str(path))
        except cv2.error:
            pages = 1
        if pages > 1:
            log.warning("%s: a TIFF of %d pages; only its first is read (one picture a file: split it into files to colorize every page)",
                        path, pages)
    return img


class ImageSource(Source):
    """Frames from image files; ``fps`` sets the timestamps a video sink gives them."""

    def __init__(self, spec: str, fps: float | None = None, max_frames: int | None = None, input_bits: int | str | None = None,
                 color_frames: str = "colorize", **_ignored):
        super().__init__()
        self.depth = SampleDepth(input_bits, name=spec)  # 16-bit images: one depth for the sequence
        self.colors = ColorFrames(color_frames, name=spec, continuous=False)  # each picture on its own
        self.paths = list_images(spec)
        if max_frames is not None:
            self.paths = self.paths[:max_frames]
        self.names = relative_names(self.paths)
        rate = Fraction(fps).limit_denominator(1001) if fps else Fraction(25)
        self._closed = False
        self.info = SourceInfo(kind="images", description=spec, live=False, fps=rate, time_base=1 / rate, frames=len(self.paths),
                               names=tuple(self.names), files=tuple(self.paths), color_frames=self.colors.mode)

    def __iter__(self) -> Iterator[Frame]:
        for path, name in zip(self.paths, self.names):
            if self._closed:
                return
            raw = decode_image(path)
            try:
                img = None if raw is None else to_nir(raw, name=str(path), depth=self.depth)
                why = f"{path}: not a readable image"
            except ValueError as exc:  # it decodes, to pixels of a type to_nir does not take
                img, why = None, str(exc)
            if img is None:
                self.decode_errors += 1
                log.warning("%s; skipped (%d so far)", why, self.decode_errors)
                continue
            color = pick_array(self.colors, lambda: raw, self.depth.fixed, what=str(path))  # by its own depth: each judged alone
            self.frames_read += 1
            i = self.frames_read - 1
            yield Frame(img, index=i, pts=i, time_base=self.info.time_base, name=name, t_read=time.perf_counter(), color=color)
        if self.frames_read == 0 and not self._closed:
            raise InputError(f"image source {self.info.description}: none of its {len(self.paths)} files is a readable image")

    def close(self) -> None:
        self._closed = True
