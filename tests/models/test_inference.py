"""Export-time layer swaps (nirvision.models.inference): the same function, other operators."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nirvision.models.inference import ConvPixelUnshuffle, StemAvgPool, can_fuse, for_export
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


def test_stem_avg_pool_is_pooling_at_full_resolution():
    torch.manual_seed(1)
    for channels, r in ((1, 4), (3, 2), (2, 1)):
        p = torch.randn(2, channels * r * r, 6, 10)
        want = F.pixel_unshuffle(F.avg_pool2d(F.pixel_shuffle(p, r), 2), r)
        torch.testing.assert_close(StemAvgPool(channels, r)(p), want, rtol=0, atol=1e-6)


def test_fused_uint8_graph_gives_the_unfused_colours():
    """The uint8 graph that stays in the stem's layout between the networks returns exactly the
    colours of translator -> full resolution -> colorizer -> uint8, padding and crop included."""
    from nirvision.runtime.backends.export import FixedShapeChain, Uint8Frames
    from nirvision.runtime.frames import from_model_output, to_model_input

    net = tiny_chain(seed=3, width=6).eval()
    assert can_fuse(net.nir_to_gray, net.colorizer)
    for h, w in ((32, 48), (37, 50)):
        frames = torch.randint(0, 256, (2, h, w), dtype=torch.uint8)
        graph = Uint8Frames(FixedShapeChain(for_export(net), h, w)).eval()
        assert graph.fused
        with torch.no_grad():
            got = graph(frames).numpy()
            want = from_model_output(net(to_model_input(frames.numpy())))
        assert got.shape == (2, h, w, 3) and got.dtype == want.dtype
        diff = abs(got.astype(int) - want.astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3  # float summation order only
