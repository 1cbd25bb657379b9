"""Small builders shared by several test packages."""
from __future__ import annotations

import torch

from nirvision.models import MPFNet, MPFNetConfig, NIRColorizerNet


def tiny_chain(seed: int = 0) -> NIRColorizerNet:
    """A 2-scale, 2-level chain with a stem of 2: every block of MPFNet, quick to run and compile."""
    torch.manual_seed(seed)
    g = MPFNet(MPFNetConfig(1, 1, width=4, depth=2, scales=2, max_width_mult=2, ca_reduction=4, stem=2))
    c = MPFNet(MPFNetConfig(1, 3, width=4, depth=2, scales=2, max_width_mult=2, ca_reduction=4, stem=2))
    return NIRColorizerNet(g, c).eval()
