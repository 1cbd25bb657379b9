"""Paired NIR/RGB image folders (``DIR/nir/NAME.png`` + ``DIR/rgb/NAME.png``) and their splits.

Used by ``nirvision evaluate`` and by the training module. Problems are reported, never
papered over: a missing folder, a NIR image without its RGB partner (or the reverse), an
unreadable file or a pair of different sizes is an error, or, with ``skip_bad=True``, a
logged and counted skip.
"""
from __future__ import annotations

import logging
import random
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .errors import InputError

log = logging.getLogger(__name__)

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


@dataclass
class PairedSet:
    names: list[str]
    nir: list[np.ndarray]  # H x W uint8
    rgb: list[np.ndarray]  # H x W x 3 uint8, RGB order
    skipped: dict[str, str] = field(default_factory=dict)  # name -> reason

    def __len__(self) -> int:
        return len(self.names)

    def subset(self, names: list[str]) -> "PairedSet":
        index = {n: i for i, n in enumerate(self.names)}
        return PairedSet(list(names), [self.nir[index[n]] for n in names], [self.rgb[index[n]] for n in names])


def _images(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_EXTS}


def read_gray(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InputError(f"{path}: not a readable image")
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    if img.ndim == 3:
        img = cv2.cvtColor(img[:, :, :3], cv2.COLOR_BGR2GRAY) if img.shape[2] >= 3 else img[:, :, 0]
    return img


def read_rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(f"{path}: not a readable image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def load_paired(root: str | Path, size: tuple[int, int] | None = None, skip_bad: bool = False, names: list[str] | None = None) -> PairedSet:
    """Read every pair under ``root``; ``size`` (H, W) demands that size of each image."""
    root = Path(root)
    nir_dir, rgb_dir = root / "nir", root / "rgb"
    for d in (root, nir_dir, rgb_dir):
        if not d.is_dir():
            raise InputError(f"{d}: folder not found (expected DIR/nir/NAME.png and DIR/rgb/NAME.png)")
    nirs, rgbs = _images(nir_dir), _images(rgb_dir)
    only_nir, only_rgb = sorted(set(nirs) - set(rgbs)), sorted(set(rgbs) - set(nirs))
    skipped: dict[str, str] = {}
    if (only_nir or only_rgb) and not skip_bad:
        raise InputError(f"{root}: unpaired images: NIR without RGB: {only_nir[:5]}{'...' if len(only_nir) > 5 else ''}; RGB without NIR: {only_rgb[:5]}{'...' if len(only_rgb) > 5 else ''}")
    for n in only_nir + only_rgb:
        skipped[n] = "no partner image"
    wanted = sorted(set(nirs) & set(rgbs)) if names is None else list(names)
    out = PairedSet([], [], [], skipped)
    for name in wanted:
        if name not in nirs or name not in rgbs:
            raise InputError(f"{root}: no pair named {name!r}")
        try:
            nir, rgb = read_gray(nirs[name]), read_rgb(rgbs[name])
            if nir.shape != rgb.shape[:2]:
                raise InputError(f"{root}: pair {name!r} differs in size: NIR {nir.shape[1]}x{nir.shape[0]}, RGB {rgb.shape[1]}x{rgb.shape[0]}")
            if size is not None and nir.shape != tuple(size):
                raise InputError(f"{root}: pair {name!r} is {nir.shape[1]}x{nir.shape[0]}, expected {size[1]}x{size[0]}")
        except InputError as exc:
            if not skip_bad:
                raise
            skipped[name] = str(exc)
            continue
        out.names.append(name)
        out.nir.append(nir)
        out.rgb.append(rgb)
    for name, why in skipped.items():
        log.warning("skipped %s: %s", name, why)
    if not out.names:
        raise InputError(f"{root}: no usable image pairs")
    return out


_NAME = re.compile(r"^(?P<cat>.*?)[_-]?(?P<num>\d+)$")


def photo_groups(names: list[str], group: int = 4) -> dict[str, list[list[str]]]:
    """Names by category (the prefix before the number), in groups of ``group`` consecutive
    numbers. VCIP crops were cut from larger photos, neighbours often from the same one, so
    a split that keeps each group on one side keeps overlapping crops out of validation."""
    cats: dict[str, dict[int, list[str]]] = defaultdict(lambda: defaultdict(list))
    for n in names:
        m = _NAME.match(n)
        cat, num = (m.group("cat"), int(m.group("num"))) if m else (n, 0)
        cats[cat][num // group].append(n)
    return {c: [sorted(g) for _, g in sorted(groups.items())] for c, groups in cats.items()}


def split_names(names: list[str], val_fraction: float = 0.08, seed: int = 0, group: int = 4) -> tuple[list[str], list[str]]:
    """A seeded per-category split by photo group: about ``val_fraction`` of each category."""
    rng = random.Random(seed)
    train, val = [], []
    for cat, groups in sorted(photo_groups(names, group).items()):
        total = sum(len(g) for g in groups)
        order = list(range(len(groups)))
        rng.shuffle(order)
        taken = 0
        chosen = set()
        for i in order:
            if taken >= val_fraction * total - 1e-9 or len(chosen) == len(groups) - 1:
                break
            chosen.add(i)
            taken += len(groups[i])
        for i, g in enumerate(groups):
            (val if i in chosen else train).extend(g)
    return sorted(train), sorted(val)
