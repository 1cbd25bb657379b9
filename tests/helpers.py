"""Small builders shared by several test packages."""
from __future__ import annotations

import numpy as np
import torch

from nirvision.models import MPFNet, MPFNetConfig, NIRColorizerNet


def tiny_chain(seed: int = 0, width: int = 4) -> NIRColorizerNet:
    """A 2-scale, 2-level chain with a stem of 2: every block of MPFNet, quick to run and compile."""
    torch.manual_seed(seed)
    g = MPFNet(MPFNetConfig(1, 1, width=width, depth=2, scales=2, max_width_mult=2, ca_reduction=4, stem=2))
    c = MPFNet(MPFNetConfig(1, 3, width=width, depth=2, scales=2, max_width_mult=2, ca_reduction=4, stem=2))
    return NIRColorizerNet(g, c).eval()


def nir_frames(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth NIR-like frames with edges (gradients plus a bright disc), uint8 (N, H, W)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = []
    for _ in range(n):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(5, max(h, w) / 2)
        img = 60 + 80 * (xx / w) + 40 * (yy / h) + 100 * (((xx - cx) ** 2 + (yy - cy) ** 2) < r * r)
        out.append(np.clip(img + rng.normal(0, 4, (h, w)), 0, 255).astype(np.uint8))
    return np.stack(out)


def block_import(monkeypatch, package: str) -> None:
    """Make ``import package`` (and its submodules) fail as if it were not installed."""
    import builtins

    real_import = builtins.__import__

    def guarded(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0 and (name == package or name.startswith(package + ".")):  # not relative imports of our own modules
            raise ImportError(f"No module named {package!r}")
        return real_import(name, globals, locals, fromlist, level)

    monkeypatch.setattr(builtins, "__import__", guarded)
