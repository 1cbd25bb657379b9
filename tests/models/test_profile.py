"""Parameter and FLOP counting (used for the issue's closing numbers and tools/model_stats.py)."""
from __future__ import annotations

import torch
from torch import nn

from nirvision.models import CoordinateAttention
from nirvision.models.profile import count_flops, count_parameters


def test_counts_follow_the_formulas():
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),             # 2 * (8*16*16) * (3*3*3)
        nn.ConvTranspose2d(8, 4, 4, 2, padding=1),  # 2 * (8*16*16) * (4*4*4)
        nn.Conv2d(4, 4, 1, groups=2),               # 2 * (4*32*32) * (2*1*1)
        nn.Flatten(), nn.Linear(4 * 32 * 32, 10),   # 2 * 10 * 4096
    )
    expect = 2 * (8 * 256 * 27 + 8 * 256 * 64 + 4 * 1024 * 2 + 10 * 4096)
    assert count_flops(net, (1, 3, 16, 16)) == expect
    assert count_parameters(net) == (3 * 8 * 9 + 8) + (8 * 4 * 16 + 4) + (4 * 2 + 4) + (4096 * 10 + 10)


def test_counting_leaves_the_module_as_it_was():
    ca = CoordinateAttention(8, reduction=2).train()
    ca.shared[1].running_mean.fill_(0.5)
    before = {k: v.clone() for k, v in ca.state_dict().items()}
    count_flops(ca, (2, 8, 6, 6))
    assert ca.training and all(m.training for m in ca.modules())
    after = ca.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not any(len(m._forward_hooks) for m in ca.modules())
