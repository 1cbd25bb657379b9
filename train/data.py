"""Training data: the paired set in memory, the seeded split, and augmented batches per rank."""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from nirvision.datasets import IMAGE_EXTS, PairedSet, load_paired, read_rgb, size_advice, validation_split
from nirvision.errors import InputError

from .augment import augment
from .config import DataConfig

log = logging.getLogger(__name__)

GRAY_WEIGHTS = torch.tensor([0.299, 0.587, 0.114])  # ITU-R BT.601, as OpenCV's RGB2GRAY


def to_gray(rgb: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) -> (N, 1, H, W), luma of RGB (any value range)."""
    return (rgb * GRAY_WEIGHTS.to(rgb).view(1, 3, 1, 1)).sum(dim=1, keepdim=True)


def _to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    arr = np.stack([im if im.ndim == 3 else im[..., None] for im in images])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()  # uint8 N, C, H, W


def _digest(img: np.ndarray) -> str:
    """The pixels of an image (and its shape): the same picture, whatever its file and name."""
    img = np.ascontiguousarray(img)
    return hashlib.sha256(f"{img.shape}{img.dtype}".encode() + img.tobytes()).hexdigest()


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """uint8 -> float in [-1, 1]."""
    return x.float().mul_(2.0 / 255.0).sub_(1.0)


@dataclass
class Batch:
    nir: torch.Tensor  # N, 1, h, w in [-1, 1]
    rgb: torch.Tensor  # N, 3, h, w
    gray: torch.Tensor  # N, 1, h, w: luma of rgb (the paired gray target)
    gray_domain: torch.Tensor  # N, 1, h, w: gray images drawn independently (CycleGAN's domain B)


class TrainData:
    """The training pairs (plus unpaired extras) in memory as uint8, split once, seeded."""

    def __init__(self, cfg: DataConfig, seed: int):
        self.cfg = cfg
        size = (cfg.image_size, cfg.image_size)
        full = load_paired(cfg.root, size=size, skip_bad=cfg.skip_bad, input_bits=cfg.input_bits, size_from="data.image_size")
        self.skipped = dict(full.skipped)
        train_names, val_names = validation_split(full, cfg.val_fraction, cfg.split_seed, cfg.photo_group, cfg.split_by_content)
        self.train_names, self.val_names = train_names, val_names
        self.val: PairedSet = full.subset(val_names)
        tr = full.subset(train_names)
        self.nir = _to_tensor(tr.nir)
        self.rgb = _to_tensor(tr.rgb)
        extra_rgb, extra_gray = self._load_unpaired(cfg, size, self.val)
        # Pretraining pairs gray -> RGB: the paired RGB plus any unpaired RGB images.
        self.pretrain_rgb = torch.cat([self.rgb] + ([extra_rgb] if extra_rgb is not None else []))
        # CycleGAN's gray domain: luma of every RGB image plus unpaired gray images.
        gray_all = to_gray(self.pretrain_rgb.float()).round().clamp(0, 255).to(torch.uint8)
        self.gray_domain = torch.cat([gray_all] + ([extra_gray] if extra_gray is not None else []))
        log.info("data %s: %d train pairs, %d validation pairs, %d extra RGB, %d gray-domain images, %d skipped",
                 cfg.root, len(train_names), len(val_names), 0 if extra_rgb is None else len(extra_rgb), len(self.gray_domain), len(self.skipped))

    def split_info(self) -> dict:
        """The split as floor.json, the stage outputs and the exported weights record it: counts,
        validation names and the settings that made it (``nirvision evaluate --split val`` reads them)."""
        c = self.cfg
        return {"train": len(self.train_names), "val": len(self.val_names), "val_names": list(self.val_names), "skipped": len(self.skipped),
                "seed": c.split_seed, "val_fraction": c.val_fraction, "photo_group": c.photo_group, "split_by_content": c.split_by_content}

    def _skip(self, path: Path, why: str) -> None:
        self.skipped[str(path)] = why
        log.warning("skipped %s: %s", path, why)  # named, as load_paired names the pairs it skips

    def _load_unpaired(self, cfg: DataConfig, size, val: PairedSet) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Every image of the ``data.unpaired`` folders, less those that are validation images
        (by name, or the same pixels as a validation pair's RGB, its luma or its NIR): trained on,
        they would be scored by validation as if unseen (an unpaired folder of the data's own rgb/)."""
        rgbs, grays = [], []
        held_out = set(val.names)
        pictures = {_digest(im) for pair in zip(val.rgb, val.nir) for im in (pair[0], cv2.cvtColor(pair[0], cv2.COLOR_RGB2GRAY), pair[1])}
        left_out: list[str] = []
        for folder in cfg.unpaired:
            root = Path(folder)
            if not root.is_dir():
                raise InputError(f"data.unpaired: {root}: folder not found")
            for p in sorted(root.iterdir()):
                if p.suffix.lower() not in IMAGE_EXTS:
                    continue
                if p.stem in held_out:
                    left_out.append(str(p))
                    continue
                try:
                    img = read_rgb(p)
                except InputError as exc:
                    if not cfg.skip_bad:
                        raise
                    self._skip(p, str(exc))
                    continue
                is_gray = np.array_equal(img[..., 0], img[..., 1]) and np.array_equal(img[..., 1], img[..., 2])
                if _digest(img[..., 0] if is_gray else img) in pictures:
                    left_out.append(str(p))
                    continue
                if img.shape[:2] != size:
                    why = f"{img.shape[1]}x{img.shape[0]}, expected {size[1]}x{size[0]}" + size_advice(img.shape, size, "data.image_size")
                    if not cfg.skip_bad:
                        raise InputError(f"{p}: {why}")
                    self._skip(p, why)
                    continue
                (grays if is_gray else rgbs).append(img[..., :1] if is_gray else img)
        if left_out:
            log.warning("data.unpaired: left out %d image(s) that are validation images (by name or by their pixels: %s%s), so that "
                        "validation does not score images training saw", len(left_out), ", ".join(os.path.basename(p) for p in left_out[:3]),
                        ", ..." if len(left_out) > 3 else "")
        self.unpaired_left_out = left_out
        return (_to_tensor(rgbs) if rgbs else None), (_to_tensor(grays) if grays else None)

    def steps_per_epoch(self, batch_size: int, world: int, count: int | None = None) -> int:
        n = count if count is not None else len(self.nir)
        return max(1, n // (batch_size * world))

    def batches(self, epoch_gen: torch.Generator, batch_size: int, rank: int, world: int, steps: int, crop: int, pretrain: bool = False,
                aug: DataConfig | None = None):
        """``steps`` augmented batches for this rank; the permutation is shared by all ranks.
        ``aug``: augmentation settings for this stage (default: the data section's)."""
        aug = aug or self.cfg
        src_rgb = self.pretrain_rgb if pretrain else self.rgb
        n = len(src_rgb)
        order = torch.randperm(n, generator=epoch_gen)
        gray_order = torch.randint(len(self.gray_domain), (steps * batch_size * world,), generator=epoch_gen)
        # Augmentation draws from a per-rank generator so ranks differ but stay reproducible.
        aug_gen = torch.Generator().manual_seed(int(torch.randint(2**62, (1,), generator=epoch_gen)) + rank)
        for step in range(steps):
            lo = (step * world + rank) * batch_size
            idx = order[torch.arange(lo, lo + batch_size) % n]
            rgb = to_unit(src_rgb[idx])
            nir = to_unit(self.nir[idx]) if not pretrain else to_gray(rgb)
            stacked = augment(torch.cat([nir, rgb], dim=1), aug, crop, aug_gen, channels_split=1)
            nir, rgb = stacked[:, :1].contiguous(), stacked[:, 1:].contiguous()
            gidx = gray_order[(step * world + rank) * batch_size: (step * world + rank + 1) * batch_size]
            gd = augment(to_unit(self.gray_domain[gidx]), aug, crop, aug_gen)
            yield Batch(nir=nir, rgb=rgb, gray=to_gray(rgb), gray_domain=gd)

    def val_tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        return to_unit(_to_tensor(self.val.nir)), to_unit(_to_tensor(self.val.rgb))
