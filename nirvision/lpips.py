"""LPIPS with AlexNet (Zhang et al. 2018), computed only from weights the user supplies.

Two files are needed, neither of which nirvision can download: torchvision's ImageNet
AlexNet state dict (keys ``features.N.weight``/``bias``) and LPIPS v0.1's linear layers for
AlexNet (keys ``linK.model.1.weight``). Both are read with ``weights_only=True``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import InputError

# AlexNet's convolutional trunk: (out, in, kernel, stride, padding) and whether a max-pool precedes it.
_CONVS = [(64, 3, 11, 4, 2, False), (192, 64, 5, 1, 2, True), (384, 192, 3, 1, 1, True), (256, 384, 3, 1, 1, False), (256, 256, 3, 1, 1, False)]
_TORCHVISION_INDEX = [0, 3, 6, 8, 10]
_SHIFT = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
_SCALE = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)


class LPIPS(nn.Module):
    def __init__(self):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(i, o, k, s, p) for o, i, k, s, p, _ in _CONVS)
        self.lins = nn.ModuleList(nn.Conv2d(o, 1, 1, bias=False) for o, *_ in _CONVS)

    @classmethod
    def load(cls, alexnet: str | Path, lin: str | Path) -> "LPIPS":
        model = cls()
        sd_a, sd_l = _read(alexnet, "--lpips-alexnet"), _read(lin, "--lpips-lin")
        wanted = [(sd_a, "--lpips-alexnet", alexnet, f"features.{idx}.{part}", getattr(conv, part))
                  for conv, idx in zip(model.convs, _TORCHVISION_INDEX) for part in ("weight", "bias")]
        wanted += [(sd_l, "--lpips-lin", lin, f"lin{k}.model.1.weight", lin_conv.weight) for k, lin_conv in enumerate(model.lins)]
        for sd, option, path, key, param in wanted:  # exact shapes: copy_ would broadcast a scalar into a whole layer
            value = sd.get(key)
            if not isinstance(value, torch.Tensor) or tuple(value.shape) != tuple(param.shape) or not value.is_floating_point():
                got = f"shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else ("missing" if value is None else type(value).__name__)
                raise InputError(f"{option} {path}: {key} is {got}, expected a float tensor of shape {tuple(param.shape)} "
                                 "(torchvision's alexnet state dict and LPIPS v0.1's alex.pth)")
            param.data.copy_(value)
        return model.eval()

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1], (N, 3, H, W) -> distance per image."""
        x, y = (x - _SHIFT) / _SCALE, (y - _SHIFT) / _SCALE
        total = 0.0
        for conv, lin, (*_, pool) in zip(self.convs, self.lins, _CONVS):
            if pool:
                x, y = F.max_pool2d(x, 3, 2), F.max_pool2d(y, 3, 2)
            x, y = F.relu(conv(x)), F.relu(conv(y))
            nx = x / (x.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            ny = y / (y.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            total = total + lin((nx - ny) ** 2).mean(dim=(2, 3))
        return total.view(-1)

    @torch.no_grad()
    def distance(self, pred: np.ndarray, true: np.ndarray) -> float:
        """uint8 RGB images (H x W x 3) -> LPIPS distance."""
        def t(a):
            return torch.from_numpy(a).permute(2, 0, 1)[None].float() / 127.5 - 1
        return float(self(t(pred), t(true))[0])


def _read(path: str | Path, option: str) -> dict:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{option} {path}: file not found")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"{option} {path}: not a readable weights file ({type(exc).__name__})") from None
    if not isinstance(sd, dict):
        raise InputError(f"{option} {path}: expected a state dict")
    return sd
