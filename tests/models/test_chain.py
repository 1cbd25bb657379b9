"""The inference chain G_N2G -> F_G: any H and W in, the same H and W out."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nirvision.models import MPFNet, NIRColorizerNet, pad_to_multiple
from nirvision.models.chain import padded_size


@pytest.fixture(scope="module")
def lite_chain(lite):
    torch.manual_seed(1)
    return NIRColorizerNet(lite.build("nir_to_gray"), lite.build("colorizer")).eval()


def test_padded_size_is_a_multiple_and_at_least_two():
    assert padded_size(250, 128) == 256
    assert padded_size(333, 128) == 384
    assert padded_size(256, 128) == 256
    assert padded_size(1, 128) == 256
    assert padded_size(129, 64) == 192


def test_pad_reflects_at_bottom_right_and_keeps_the_image_top_left():
    x = torch.randn(1, 1, 250, 333)
    y = pad_to_multiple(x, 128)
    assert y.shape == (1, 1, 256, 384)
    assert torch.equal(y[..., :250, :333], x)
    assert torch.equal(y, F.pad(x, (0, 51, 0, 6), mode="reflect"))


@pytest.mark.parametrize("hw", [(1, 1), (7, 5), (3, 300)])
def test_pad_of_tiny_sizes_replicates(hw):
    x = torch.randn(1, 1, *hw)
    y = pad_to_multiple(x, 64)
    assert y.shape[-2:] == (padded_size(hw[0], 64), padded_size(hw[1], 64))
    assert torch.equal(y[..., : hw[0], : hw[1]], x)
    assert torch.equal(y, F.pad(x, (0, y.shape[-1] - hw[1], 0, y.shape[-2] - hw[0]), mode="replicate"))


def test_odd_size_comes_back_at_its_size(lite_chain):
    x = torch.rand(1, 1, 250, 333) * 2 - 1
    with torch.no_grad():
        out = lite_chain(x)
        # The same computation by hand: reflect-pad bottom/right, translate, colorize, crop.
        hp, wp = padded_size(250, lite_chain.multiple), padded_size(333, lite_chain.multiple)
        assert hp > 250 and wp > 333 and hp % lite_chain.multiple == 0 and wp % lite_chain.multiple == 0
        padded = F.pad(x, (0, wp - 333, 0, hp - 250), mode="reflect")
        gray = lite_chain.nir_to_gray(padded)[-1]
        expect = lite_chain.colorizer(gray)[-1][..., :250, :333]
    assert out.shape == (1, 3, 250, 333)
    assert torch.equal(out, expect)
    assert out.abs().max() <= 1.0


@pytest.mark.parametrize("hw", [(1, 1), (7, 5)])
def test_tiny_sizes_work(lite_chain, hw):
    with torch.no_grad():
        out = lite_chain(torch.rand(2, 1, *hw) * 2 - 1)
    assert out.shape == (2, 3, *hw)
    assert torch.isfinite(out).all()


def test_chain_multiple_fits_both_networks(tiny_config):
    """Networks of different multiples: the chain pads to a size both accept (their lcm)."""
    a = MPFNet(tiny_config(out_channels=1, stem=3))  # multiple 48
    b = MPFNet(tiny_config(out_channels=3, stem=4))  # multiple 64
    chain = NIRColorizerNet(a, b).eval()
    assert chain.multiple % a.multiple == 0 and chain.multiple % b.multiple == 0
    assert chain.multiple == 192  # lcm(48, 64): the smallest size both accept, not their product (3072)
    with torch.no_grad():
        out = chain(torch.rand(1, 1, 50, 70) * 2 - 1)
    assert out.shape == (1, 3, 50, 70)
