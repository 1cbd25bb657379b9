"""Calibration frames: NIR images from a folder, a glob or a video, and paired nir/ + rgb/ folders."""
from __future__ import annotations

import glob
import logging
from pathlib import Path

import cv2
import numpy as np

from nirvision.runtime.frames import to_nir

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".ts")


class FramesError(ValueError):
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
            while limit is None or len(frames) < limit:
                ok, frame = cap.read()
                if not ok:
                    break
                frames.append(_resize(to_nir(frame, name=f"{p} frame {len(frames)}"), size))
        finally:
            cap.release()
    else:
        paths = [q for q in image_paths(source) if q.stem not in exclude]
        if not paths:
            raise FramesError(f"calibration frames {source}: expected a video file, a folder of images or a glob; found no images")
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
    """NIR (N, H, W) and RGB ground truth (N, H, W, 3) from ``folder/nir`` and ``folder/rgb``, matched by file stem."""
    root = Path(folder)
    nir_dir, rgb_dir = root / "nir", root / "rgb"
    if not nir_dir.is_dir() or not rgb_dir.is_dir():
        raise FramesError(f"paired folder {root}: expected sub-folders nir/ and rgb/")
    rgb_by_stem = {q.stem: q for q in image_paths(rgb_dir)}
    pairs = [(q, rgb_by_stem[q.stem]) for q in image_paths(nir_dir) if q.stem in rgb_by_stem]
    if not pairs:
        raise FramesError(f"paired folder {root}: no nir/ image has an rgb/ image of the same name")
    pairs = spread(pairs, limit)
    nirs = np.stack([_resize(to_nir(read_image(n), name=str(n)), size) for n, _ in pairs])
    rgbs = np.stack([_resize(read_image(r, color=True), size) for _, r in pairs])
    return nirs, rgbs, [n.stem for n, _ in pairs]
