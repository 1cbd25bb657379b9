"""Calibration frames: NIR images from a folder, a glob or a video, and paired nir/ + rgb/ folders."""
from __future__ import annotations

import glob
import logging
from pathlib import Path

import cv2
import numpy as np

from nirvision.errors import InputError
from nirvision.runtime.frames import to_nir

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".ts")


class FramesError(InputError):
    """A calibration source that cannot be read; the message names it."""


def parse_size(text: str) -> tuple[int, int]:
    """``WIDTHxHEIGHT`` -> (width, height)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise FramesError(f"size {text!r}: expected WIDTHxHEIGHT, e.g. 640x480") from None
    if w < 1 or h < 1:
        raise FramesError(f"size {text!r}: width and height must be positive")
    return w, h


def parse_sizes(text: str) -> list[tuple[str, tuple[int, int]]]:
    """``--sizes``: comma-separated ``WIDTHxHEIGHT`` -> [(text, (width, height))], every entry
    checked (an empty one included) before any work starts."""
    out = []
    for i, part in enumerate(text.split(","), 1):
        part = part.strip()
        if not part:
            raise FramesError(f"--sizes {text!r}: entry {i} is empty; expected comma-separated WIDTHxHEIGHT, e.g. 256x256,640x480")
        size = parse_size(part)
        if any(size == s for _, s in out):
            raise FramesError(f"--sizes {text!r}: {part} is given twice; expected each size once")
        out.append((part, size))
    if not out:
        raise FramesError(f"--sizes {text!r}: expected comma-separated WIDTHxHEIGHT, e.g. 256x256,640x480")
    return out


def image_paths(source: str | Path) -> list[Path]:
    """Images in a folder (sorted by name) or matching a glob."""
    p = Path(source)
    if p.is_dir():
        paths = sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES)
    else:
        paths = sorted(Path(q) for q in glob.glob(str(source)) if Path(q).suffix.lower() in IMAGE_SUFFIXES)
    return paths


def spread(items: list, limit: int | None) -> list:
    """``limit`` items evenly spaced over ``items`` (a folder sorted by name groups similar scenes)."""
    if limit is None or len(items) <= limit:
        return list(items)
    step = len(items) / limit
    return [items[int(i * step)] for i in range(limit)]


def _resize(img: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    if size is None or (img.shape[1], img.shape[0]) == size:
        return img
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)


def read_image(path: Path, color: bool = False) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR if color else cv2.IMREAD_UNCHANGED)
    if img is None:
        raise FramesError(f"image {path}: cannot be read as an image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if color else img


def _spread_video(cap: cv2.VideoCapture, path: Path, size: tuple[int, int] | None, limit: int | None) -> list[np.ndarray]:
    """Up to ``limit`` frames spread evenly over the whole video, in one pass that needs no frame
    count (containers often give none, or a wrong one): every ``stride``-th frame is kept, and
    when more than ``4 * limit`` are kept, every other one is dropped and the stride doubles."""
    kept: list[np.ndarray] = []
    stride, index = 1, 0
    while True:
        if index % stride:
            if not cap.grab():  # skipped frames are not converted
                break
        else:
            ok, frame = cap.read()
            if not ok:
                break
            kept.append(_resize(to_nir(frame, name=f"{path} frame {index}"), size))
            if limit is not None and len(kept) > 4 * limit:
                kept, stride = kept[::2], stride * 2
        index += 1
    return spread(kept, limit)


def load_nir_frames(source: str | Path, size: tuple[int, int] | None = None, limit: int | None = None, exclude: set[str] = frozenset()) -> np.ndarray:
    """Up to ``limit`` NIR frames (N, H, W) uint8 from a folder, glob or video, resized to ``size`` (W, H).

    ``exclude``: image file stems to leave out (the frames a report evaluates on)."""
    p = Path(source)
    frames: list[np.ndarray] = []
    if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES:
        cap = cv2.VideoCapture(str(p))
        if not cap.isOpened():
            raise FramesError(f"video {p}: cannot be opened")
        try:
            frames = _spread_video(cap, p, size, limit)
        finally:
            cap.release()
    else:
        found = image_paths(source)
        paths = [q for q in found if q.stem not in exclude]
        if not found:
            raise FramesError(f"calibration frames {source}: expected a video file, a folder of images or a glob; found no images")
        if not paths:
            raise FramesError(f"calibration frames {source}: all {len(found)} images are report frames (held out of calibration); "
                              f"lower --eval below {len(found)} to leave some to calibrate on, or give other --frames")
        for path in spread(paths, limit):
            frames.append(_resize(to_nir(read_image(path), name=str(path)), size))
    if not frames:
        raise FramesError(f"calibration frames {source}: no frames could be read")
    shapes = {f.shape for f in frames}
    if len(shapes) > 1:
        raise FramesError(f"calibration frames {source}: frames differ in size {sorted(shapes)}; pass --size WxH")
    log.info("read %d calibration frames from %s", len(frames), source)
    return np.stack(frames)


def load_paired(folder: str | Path, size: tuple[int, int] | None = None, limit: int | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """NIR (N, H, W) and RGB ground truth (N, H, W, 3) of up to ``limit`` pairs spread over
    ``folder/nir`` and ``folder/rgb``, resized to ``size`` (W, H).

    Paired as ``nirvision evaluate`` pairs them (``nirvision.datasets.load_paired``): an image
    without its partner anywhere in the folder, or a picked pair whose NIR and RGB differ in size,
    is an error naming it (InputError), found before any image is scored."""
    from nirvision.datasets import load_paired as read_pairs

    root = Path(folder)
    nir_dir = root / "nir"
    stems = sorted({q.stem for q in image_paths(nir_dir)}) if nir_dir.is_dir() else []
    data = read_pairs(root, names=spread(stems, limit))  # checks the folders and the pairing first
    nirs = [_resize(n, size) for n in data.nir]
    rgbs = [_resize(r, size) for r in data.rgb]
    shapes = sorted({n.shape for n in nirs})
    if len(shapes) > 1:
        raise FramesError(f"paired folder {root}: images differ in size {shapes}; give a size to resize them to")
    return np.stack(nirs), np.stack(rgbs), list(data.names)
