"""Export-time layer swaps (nirvision.models.inference): the same function, other operators."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nirvision.models.inference import ConvPixelUnshuffle, for_export
from tests.helpers import tiny_chain


def test_conv_pixel_unshuffle_copies_every_pixel_exactly():
    x = torch.randn(2, 3, 8, 12)
    for r in (2, 4):
        assert torch.equal(ConvPixelUnshuffle(3, r)(x), F.pixel_unshuffle(x, r))


def test_for_export_swaps_the_stems_and_keeps_the_function():
    torch.manual_seed(0)
    net = tiny_chain().eval()
    stems = [m for m in net.modules() if isinstance(m, nn.PixelUnshuffle)]
    assert stems, "the test needs a chain with a pixel-unshuffle stem"
    out = for_export(net)
    assert not any(isinstance(m, nn.PixelUnshuffle) for m in out.modules())
    assert sum(isinstance(m, ConvPixelUnshuffle) for m in out.modules()) == len(stems)
    assert any(isinstance(m, nn.PixelUnshuffle) for m in net.modules())  # the original is untouched
    assert set(out.state_dict()) == set(net.state_dict())  # no new checkpoint entries
    x = torch.rand(1, 1, 70, 90) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(out(x), net(x), rtol=0, atol=1e-5)
