from pathlib import Path

import cv2
import numpy as np
import pytest

from nirvision.config import load_dataclass
from train.config import TrainConfig


def make_paired_folder(root: Path, count: int = 12, size: int = 128, seed: int = 0) -> Path:
    """Synthetic NIR/RGB pairs: smooth random fields, RGB a fixed colour mapping of them."""
    rng = np.random.default_rng(seed)
    (root / "nir").mkdir(parents=True)
    (root / "rgb").mkdir(parents=True)
    for i in range(count):
        field = cv2.resize(rng.random((8, 8)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
        nir = np.clip(field * 255, 0, 255).astype(np.uint8)
        rgb = np.stack([nir, (nir * 0.7).astype(np.uint8), 255 - nir], axis=2)
        cat = ("field", "forest")[i % 2]
        cv2.imwrite(str(root / "nir" / f"{cat}_{i:04d}.png"), nir)
        cv2.imwrite(str(root / "rgb" / f"{cat}_{i:04d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return root


def tiny_config(data_root: Path, out: Path, epochs: int = 1, iters: int = 1, **stage) -> TrainConfig:
    st = {"epochs": epochs, "lr": 2e-4, "batch_size": 2, "iters_per_epoch": iters, **stage}
    return load_dataclass(TrainConfig, {
        "name": "t", "model": "lite", "seed": 3, "output": str(out), "threads": 1, "pool_size": 4, "sample_count": 2,
        "data": {"root": str(data_root), "image_size": 128, "crop": 128, "val_fraction": 0.2, "crop_min": 0.8},
        "translate": st, "pretrain": st, "finetune": st,
    }, source="test")


@pytest.fixture(scope="session")
def paired_dir(tmp_path_factory) -> Path:
    return make_paired_folder(tmp_path_factory.mktemp("pairs"))
