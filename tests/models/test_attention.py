"""Coordinate attention (Hou et al. 2021) and RCAB (paper Fig. 2b)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from nirvision.models import RCAB, CoordinateAttention

C, H, W = 4, 12, 16


def measurable_attention() -> CoordinateAttention:
    """CA with identity 1x1 convs (x3 gain on the per-axis convs), eval mode: the maps follow the pooled input."""
    ca = CoordinateAttention(C, reduction=1)
    hidden = ca.to_h.in_channels
    assert hidden == C
    with torch.no_grad():
        ca.shared[0].weight.copy_(torch.eye(C).view(C, C, 1, 1))
        ca.shared[0].bias.zero_()
        for conv in (ca.to_h, ca.to_w):
            conv.weight.copy_(3.0 * torch.eye(C).view(C, C, 1, 1))
            conv.bias.zero_()
    return ca.eval()


def attention_maps(ca: CoordinateAttention, x: torch.Tensor):
    """Run ``ca`` on ``x``; return the output and the two sigmoid maps, captured by hooks."""
    seen = {}
    hooks = [
        ca.to_h.register_forward_hook(lambda m, i, o: seen.__setitem__("h", torch.sigmoid(o))),
        ca.to_w.register_forward_hook(lambda m, i, o: seen.__setitem__("w", torch.sigmoid(o))),
    ]
    try:
        with torch.no_grad():
            out = ca(x)
    finally:
        for h in hooks:
            h.remove()
    return out, seen["h"], seen["w"]


def spread(t: torch.Tensor, dim: int) -> float:
    return float((t.amax(dim=dim) - t.amin(dim=dim)).max())


def along_h() -> torch.Tensor:
    ramp = torch.linspace(-2.0, 2.0, H).view(1, 1, H, 1)
    return ramp.expand(2, C, H, W).clone() + torch.arange(C).view(1, C, 1, 1) * 0.1


def along_w() -> torch.Tensor:
    ramp = torch.linspace(-2.0, 2.0, W).view(1, 1, 1, W)
    return ramp.expand(2, C, H, W).clone() + torch.arange(C).view(1, C, 1, 1) * 0.1


def test_maps_have_one_axis_each_and_multiply_the_input():
    ca = CoordinateAttention(C, reduction=2).eval()
    x = torch.randn(2, C, H, W)
    out, a_h, a_w = attention_maps(ca, x)
    assert a_h.shape == (2, C, H, 1)  # one weight per row: constant along W
    assert a_w.shape == (2, C, 1, W)  # one weight per column: constant along H
    torch.testing.assert_close(out, x * a_h * a_w, rtol=0, atol=1e-6)


def test_input_varying_along_h_moves_only_the_h_map():
    ca = measurable_attention()
    x = along_h()
    flat = x.mean(dim=(2, 3), keepdim=True).expand_as(x)  # same mean, no variation
    _, a_h, a_w = attention_maps(ca, x)
    _, flat_h, flat_w = attention_maps(ca, flat)
    assert spread(a_h, dim=2) > 0.2, "the H map must follow a change along H"
    assert spread(a_w, dim=3) < 1e-6, "the W map must not see a change along H"
    torch.testing.assert_close(a_w, flat_w, rtol=0, atol=1e-6)
    assert spread(flat_h, dim=2) < 1e-6
    assert (a_h - flat_h).abs().max() > 0.2


def test_input_varying_along_w_moves_only_the_w_map():
    ca = measurable_attention()
    x = along_w()
    flat = x.mean(dim=(2, 3), keepdim=True).expand_as(x)
    _, a_h, a_w = attention_maps(ca, x)
    _, flat_h, flat_w = attention_maps(ca, flat)
    assert spread(a_w, dim=3) > 0.2, "the W map must follow a change along W"
    assert spread(a_h, dim=2) < 1e-6, "the H map must not see a change along W"
    torch.testing.assert_close(a_h, flat_h, rtol=0, atol=1e-6)
    assert (a_w - flat_w).abs().max() > 0.2


def test_h_map_is_the_pooled_row_profile():
    """With the identity set-up, a_h = sigmoid(3 * hardswish(BN(mean over W))) row by row."""
    ca = measurable_attention()
    x = torch.randn(1, C, H, W)
    _, a_h, a_w = attention_maps(ca, x)
    bn = ca.shared[1]
    scale = 1.0 / torch.sqrt(bn.running_var + bn.eps).view(1, C, 1, 1)
    expect_h = torch.sigmoid(3.0 * nn.functional.hardswish(x.mean(dim=3, keepdim=True) * scale))
    expect_w = torch.sigmoid(3.0 * nn.functional.hardswish(x.mean(dim=2, keepdim=True) * scale))
    torch.testing.assert_close(a_h, expect_h, rtol=0, atol=1e-6)
    torch.testing.assert_close(a_w, expect_w, rtol=0, atol=1e-6)


def test_rcab_body_is_conv_relu_conv_attention():
    block = RCAB(8, reduction=2)
    kinds = [type(m) for m in block.body]
    assert kinds == [nn.Conv2d, nn.ReLU, nn.Conv2d, CoordinateAttention]
    for conv in (block.body[0], block.body[2]):
        assert conv.kernel_size == (3, 3) and conv.in_channels == conv.out_channels == 8


def test_rcab_adds_its_body_to_the_input():
    block = RCAB(8, reduction=2).eval()
    x = torch.randn(2, 8, 10, 14)
    with torch.no_grad():
        out = block(x)
        body = block.body(x)
    assert body.abs().max() > 1e-3  # the body does something, so the check below has teeth
    torch.testing.assert_close(out - x, body, rtol=0, atol=1e-6)


@pytest.mark.parametrize("zeroed", ["last_conv", "attention"])
def test_rcab_with_silent_body_is_identity(zeroed):
    block = RCAB(8, reduction=2).eval()
    with torch.no_grad():
        if zeroed == "last_conv":
            block.body[2].weight.zero_()
            block.body[2].bias.zero_()
        else:  # sigmoid(-inf) = 0: both attention maps shut
            for conv in (block.body[3].to_h, block.body[3].to_w):
                conv.weight.zero_()
                conv.bias.fill_(-1e4)
    x = torch.randn(2, 8, 10, 14)
    with torch.no_grad():
        assert torch.equal(block(x), x)


def test_inference_form_equals_the_concatenated_form():
    """Eval mode skips the concat/split/transposes; with batch norm's running statistics the
    two forms are the same function (training keeps the concatenated form for its batch stats)."""
    torch.manual_seed(0)
    ca = CoordinateAttention(8, reduction=2)
    for _ in range(3):  # move the running statistics away from 0 / 1
        ca(torch.randn(4, 8, 9, 13) * 2 + 1)
    ca.eval()
    x = torch.randn(2, 8, 9, 13)
    with torch.no_grad():
        fast, slow = ca(x), ca._forward_concat(x)
    assert (fast - x).abs().max() > 1e-3
    torch.testing.assert_close(fast, slow, rtol=0, atol=1e-6)
    ca.train()
    with torch.no_grad():
        torch.testing.assert_close(ca(x), ca._forward_concat(x), rtol=0, atol=0)
