"""Every parameter of every network is trained: a loss on all outputs reaches all of them."""
from __future__ import annotations

import re

import pytest
import torch

from nirvision.models import NIRColorizerNet

# Biases that feed straight into a normalisation over the same statistics, which removes them
# (their gradient is exactly zero up to rounding). They follow the references: the shared 1x1
# conv + BatchNorm of coordinate attention (Hou et al.) and the conv + InstanceNorm steps of
# the PatchGAN (CycleGAN). Every other parameter must get a non-zero gradient.
NORMALISED_BIAS = {
    "mpfnet": re.compile(r".*\.shared\.0\.bias$"),
    "patchgan": re.compile(r"^net\.(2|5|8)\.bias$"),
}


def backprop(net, x):
    out = net(x)
    outs = out if isinstance(out, (list, tuple)) else [out]
    loss = sum(o.square().mean() + o.mean() for o in outs)
    loss.backward()
    return outs


@pytest.mark.parametrize("role", ["nir_to_gray", "colorizer", "gray_to_nir", "image_discriminator", "feature_discriminator"])
def test_every_parameter_gets_a_gradient(lite, role):
    spec = lite.networks[role]
    net = lite.build(role).train()
    size = 256 if spec.type == "mpfnet" else 96  # 256: the lite translators' smallest training size
    x = torch.rand(2, spec.config.in_channels, size, size) * 2 - 1
    outs = backprop(net, x)
    if spec.type == "mpfnet":
        assert len(outs) == 3
    skipped = []
    for name, p in net.named_parameters():
        assert p.grad is not None, f"{role}.{name} gets no gradient"
        assert torch.isfinite(p.grad).all(), f"{role}.{name} has a non-finite gradient"
        if NORMALISED_BIAS[spec.type].match(name):
            skipped.append(name)
            continue
        assert p.grad.abs().max() > 0, f"{role}.{name} gets a zero gradient"
    # The exemption covers only what it says: at most one bias per attention / norm step.
    if spec.type == "patchgan":
        assert len(skipped) == spec.config.layers
    else:
        assert len(skipped) == 2 * spec.config.depth * spec.config.scales


def test_the_chain_trains_end_to_end(tiny_config):
    """Through the chain, a loss on the RGB output reaches the translator too (fine-tuning stage)."""
    from nirvision.models import MPFNet

    chain = NIRColorizerNet(MPFNet(tiny_config(out_channels=1)), MPFNet(tiny_config(out_channels=3))).train()
    out = chain(torch.rand(2, 1, 50, 70) * 2 - 1)
    assert out.shape == (2, 3, 50, 70)
    out.mean().backward()
    head = chain.nir_to_gray.sccms[-1].to_image.weight
    assert head.grad is not None and head.grad.abs().max() > 0
