"""The feature embedding block: a UNet of encoder/decoder steps with RCABs (paper Fig. 2c)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from nirvision.models import FEB, RCAB


def run_with_hooks(feb: FEB, x: torch.Tensor):
    """Forward ``x``; return the output and every step's input and output, captured by hooks."""
    seen: dict[str, tuple] = {}

    def keep(name):
        return lambda m, i, o: seen.__setitem__(name, (i[0], o))

    mods = {f"enc{i}": m for i, m in enumerate(feb.encoders)}
    mods.update({f"dec{i}": m for i, m in enumerate(feb.decoders)})
    mods.update(bottleneck=feb.bottleneck, fuse=feb.fuse)
    hooks = [m.register_forward_hook(keep(name)) for name, m in mods.items()]
    try:
        with torch.no_grad():
            out = feb(x)
    finally:
        for h in hooks:
            h.remove()
    return out, seen


@pytest.mark.parametrize("width,depth,max_mult,size", [(4, 3, 4, (32, 48)), (6, 2, 8, (16, 8))])
def test_steps_halve_then_double_resolution(width, depth, max_mult, size):
    feb = FEB(width, depth, max_mult=max_mult, reduction=2).eval()
    x = torch.randn(2, width, *size)
    out, seen = run_with_hooks(feb, x)
    h, w = size
    widths = [width * min(2**i, max_mult) for i in range(depth + 1)]
    assert out.shape == x.shape
    for i in range(depth):
        # encoder i: level i -> level i+1, half the size
        assert seen[f"enc{i}"][0].shape[-2:] == (h >> i, w >> i)
        assert seen[f"enc{i}"][1].shape == (2, widths[i + 1], h >> (i + 1), w >> (i + 1))
        # decoder i: level i+1 -> level i, double the size
        assert seen[f"dec{i}"][0].shape[-2:] == (h >> (i + 1), w >> (i + 1))
        assert seen[f"dec{i}"][1].shape == (2, widths[i], h >> i, w >> i)
    b_in, b_out = seen["bottleneck"]
    assert b_in.shape == b_out.shape == (2, widths[depth], h >> depth, w >> depth)


def test_step_layers_follow_the_paper():
    feb = FEB(4, 3, max_mult=4, reduction=2)
    for enc in feb.encoders:
        act, conv, rcab, norm = list(enc)
        assert isinstance(act, nn.LeakyReLU) and act.negative_slope == pytest.approx(0.2)
        assert type(conv) is nn.Conv2d and conv.kernel_size == (4, 4) and conv.stride == (2, 2)
        assert isinstance(rcab, RCAB)
        assert isinstance(norm, nn.InstanceNorm2d)
    for dec in feb.decoders:
        act, conv, rcab, norm = list(dec)
        assert type(act) is nn.ReLU
        assert isinstance(conv, nn.ConvTranspose2d) and conv.kernel_size == (4, 4) and conv.stride == (2, 2)
        assert isinstance(rcab, RCAB)
        assert isinstance(norm, nn.InstanceNorm2d)


def test_bottleneck_is_one_3x3_conv_without_rcab():
    feb = FEB(4, 3, max_mult=4, reduction=2)
    assert type(feb.bottleneck) is nn.Conv2d
    assert feb.bottleneck.kernel_size == (3, 3) and feb.bottleneck.stride == (1, 1)
    assert feb.bottleneck.in_channels == feb.bottleneck.out_channels == 16
    assert not any(isinstance(m, RCAB) for m in feb.bottleneck.modules())
    # One RCAB per encoder and decoder step, none elsewhere.
    assert sum(isinstance(m, RCAB) for m in feb.modules()) == 2 * feb.depth


def test_skips_are_concatenations_of_the_encoder_features():
    depth = 3
    feb = FEB(4, depth, max_mult=4, reduction=2).eval()
    x = torch.randn(1, 4, 32, 32)
    _, seen = run_with_hooks(feb, x)
    # The innermost decoder takes the bottleneck; each outer one takes [decoder below, encoder skip].
    assert torch.equal(seen[f"dec{depth - 1}"][0], seen["bottleneck"][1])
    for i in range(depth - 1):
        expect = torch.cat([seen[f"dec{i + 1}"][1], seen[f"enc{i}"][1]], dim=1)
        assert torch.equal(seen[f"dec{i}"][0], expect)
        assert feb.decoders[i][1].in_channels == expect.shape[1]
    # The block ends by fusing the top decoder with its own input.
    assert torch.equal(seen["fuse"][0], torch.cat([seen["dec0"][1], x], dim=1))


def test_output_depends_on_every_encoder_level():
    """Perturbing one encoder's RCAB changes the output: no level is bypassed."""
    feb = FEB(4, 3, max_mult=4, reduction=2).eval()
    x = torch.randn(1, 4, 32, 32)
    with torch.no_grad():
        ref = feb(x)
        for enc in feb.encoders:
            saved = enc[2].body[0].weight.clone()
            enc[2].body[0].weight.add_(0.5)
            assert (feb(x) - ref).abs().max() > 1e-4
            enc[2].body[0].weight.copy_(saved)
