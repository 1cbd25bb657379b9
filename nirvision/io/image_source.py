"""A folder or glob of images, in natural order of their paths; each frame keeps its name for the sinks.

A frame's name is its path relative to the folder (for a glob: to the deepest folder all the
matched files share), so ``cam1/0001.png`` and ``cam2/0001.png`` from ``'*/0*.png'`` stay
apart. Any image OpenCV reads (PNG, JPEG, TIFF, BMP; uint8, uint16 or float in [0, 1]; gray or
colour) is reduced to one NIR channel (with ``color_frames="pass"`` a colour picture goes out as it is). A file that fails to decode or holds another pixel type
(a signed-integer TIFF, floats outside [0, 1]) is skipped and counted in ``decode_errors``, as is
one whose header gives more than ``MAX_PIXELS`` (a small file can unpack to gigabytes: a 875 KB
PNG of 30000x30000 took 22 GB), read from the header before anything is decoded.
"""
from __future__ import annotations

import glob
import logging
import os
import re
import struct
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
from .redact import printable

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".pgm", ".ppm", ".webp"}
GLOB_CHARS = re.compile(r"[*?\[]")
MAX_PIXELS = 8192 * 8192  # a frame's pixels at most (67 Mpixels): a 4000x4000 frame took 1.7 GB through the lite model


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


def read_image(path: Path, depth: SampleDepth | None = None, max_pixels: int = MAX_PIXELS) -> np.ndarray | None:
    """The image as uint8 NIR (H x W), or None when the file does not decode; a ValueError
    (from ``to_nir``) when its pixels are of a type it does not take, or (``decode_image``)
    when it holds more than ``max_pixels``.

    OpenCV gives colour as BGR; ``to_nir`` averages the channels, so the order does not matter.
    """
    img = decode_image(path, max_pixels)
    return None if img is None else to_nir(img, name=str(path), depth=depth)


def decode_image(path: Path, max_pixels: int = MAX_PIXELS) -> np.ndarray | None:
    """The image's pixels as OpenCV decodes them (BGR for colour, any depth), or None (also for
    a file whose header gives no size: not one of the types an image source takes). A ValueError
    naming the file, its size and the limit when its header gives more than ``max_pixels``, said
    before anything is decoded. Of a TIFF of several pages the first, which is said."""
    data = np.fromfile(str(path), dtype=np.uint8)
    size = image_size(memoryview(data)) if data.size else None
    if size is None:
        return None
    check_pixels(size[0], size[1], str(path), max_pixels)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is not None and img.shape[0] * img.shape[1] > max_pixels:  # a header that lied
        check_pixels(img.shape[1], img.shape[0], str(path), max_pixels)
    if img is not None and Path(path).suffix.lower() in (".tif", ".tiff"):
        try:
            pages = cv2.imcount(str(path))
        except cv2.error:
            pages = 1
        if pages > 1:
            log.warning("%s: a TIFF of %d pages; only its first is read (one picture a file: split it into files to colorize every page)",
                        printable(path), pages)
    return img


def check_pixels(width: int, height: int, what: str, max_pixels: int = MAX_PIXELS) -> None:
    """A ValueError naming ``what`` for a frame of more than ``max_pixels``."""
    if width * height > max_pixels:
        raise ValueError(f"{printable(what)}: {width}x{height} pixels ({width * height / 1e6:.0f} Mpixels), over the limit of "
                         f"{max_pixels / 1e6:.0f} Mpixels a frame; expected a smaller picture")


def image_size(data: bytes | memoryview) -> tuple[int, int] | None:
    """(width, height) from the header of a PNG, JPEG, TIFF (BigTIFF too), BMP, WebP or PNM
    (PGM, PPM, PBM, PAM) image, the types an image source takes; None for anything else, or a
    header cut short. OpenCV decodes whatever it recognises, sizes included, without saying
    the size first: this is read before it is given the file."""
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n":
            return struct.unpack(">II", data[16:24]) if data[12:16] == b"IHDR" else None
        if data[:2] == b"\xff\xd8":
            return _jpeg_size(data)
        if data[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):
            return _tiff_size(data)
        if data[:2] == b"BM":
            if struct.unpack("<I", data[14:18])[0] == 12:  # OS/2's BITMAPCOREHEADER
                return struct.unpack("<HH", data[18:22])
            w, h = struct.unpack("<ii", data[18:26])
            return abs(w), abs(h)  # a negative height: stored top down
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp_size(data)
        if data[:1] == b"P" and data[1:2] in b"1234567":
            return _pnm_size(data)
    except (struct.error, ValueError, IndexError):
        pass
    return None


# JPEG markers that start a frame (its size): SOF0-SOF15 but DHT (C4), JPG (C8) and DAC (CC)
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # no length
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # the end, or the scan before any frame header
            return None
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker in _SOF:
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return w, h
        i += 2 + length
    return None


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    """The first page's size (the one read)."""
    e = "<" if data[:2] == b"II" else ">"
    big = struct.unpack(e + "H", data[2:4])[0] == 43
    offset = struct.unpack(e + "Q", data[8:16])[0] if big else struct.unpack(e + "I", data[4:8])[0]
    count_fmt, entry, count_size = ("Q", 20, 8) if big else ("H", 12, 2)
    count = struct.unpack(e + count_fmt, data[offset:offset + count_size])[0]
    found = {}
    for k in range(min(count, 4096)):
        at = offset + count_size + k * entry
        tag, kind = struct.unpack(e + "HH", data[at:at + 4])
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT, LONG or (BigTIFF) LONG8
            value = at + (12 if big else 8)
            fmt = {3: "H", 4: "I", 16: "Q"}.get(kind)
            if fmt is None:
                return None
            found[tag] = struct.unpack(e + fmt, data[value:value + struct.calcsize(fmt)])[0]
    return (found[256], found[257]) if len(found) == 2 else None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X":  # extended: the canvas, 24 bits each, less one
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    if chunk == b"VP8L" and data[20] == 0x2F:  # lossless: 14 bits each, less one
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":  # lossy: 14 bits each (2 of scaling)
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    return None


def _pnm_size(data: bytes) -> tuple[int, int] | None:
    head = bytes(data[:4096])
    if head[1:2] == b"7":  # PAM: WIDTH and HEIGHT lines
        w, h = re.search(rb"\sWIDTH\s+(\d+)", head), re.search(rb"\sHEIGHT\s+(\d+)", head)
        return (int(w[1]), int(h[1])) if w and h else None
    words = re.sub(rb"#[^\n]*", b" ", head[2:]).split()  # comments may come between the numbers
    return int(words[0]), int(words[1])


class ImageSource(Source):
    """Frames from image files; ``fps`` sets the timestamps a video sink gives them."""

    def __init__(self, spec: str, fps: float | None = None, max_frames: int | None = None, input_bits: int | str | None = None,
                 color_frames: str = "colorize", max_pixels: int = MAX_PIXELS, **_ignored):
        super().__init__()
        self.max_pixels = max_pixels  # a frame's pixels at most: a larger picture is skipped and counted
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
            raw = None
            try:
                raw = decode_image(path, self.max_pixels)
                img = None if raw is None else to_nir(raw, name=str(path), depth=self.depth)
                why = f"{printable(path)}: not a readable image"
            except ValueError as exc:  # too large, or it decodes to pixels of a type to_nir does not take
                img, why = None, printable(exc)
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
