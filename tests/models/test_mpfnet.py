"""MPFNet: three scales coarse to fine, FEB -> SCCM each, cross-scale skips (paper Fig. 2a)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nirvision.models import FEB, MPFNet, SCCM, image_pyramid
from nirvision.models.profile import count_parameters


def shapes(preds):
    return [tuple(p.shape) for p in preds]


@pytest.mark.parametrize("stem", [1, 4])
@pytest.mark.parametrize("out_channels", [1, 3])
def test_three_predictions_at_quarter_half_full(tiny_config, stem, out_channels):
    net = MPFNet(tiny_config(out_channels=out_channels, stem=stem)).eval()
    m = net.multiple
    assert m == stem * 2 ** (2 + 2)
    h, w = 2 * m, 3 * m
    with torch.no_grad():
        preds = net(torch.rand(2, 1, h, w) * 2 - 1)
    assert shapes(preds) == [(2, out_channels, h // 4, w // 4), (2, out_channels, h // 2, w // 2), (2, out_channels, h, w)]


@pytest.mark.parametrize("role", ["nir_to_gray", "colorizer", "gray_to_nir"])
def test_lite_networks_predict_three_scales(lite, role):
    net = lite.build(role).eval()
    cfg = lite.networks[role].config
    assert cfg.stem == 4 and cfg.scales == 3
    with torch.no_grad():
        preds = net(torch.rand(1, 1, 256, 384) * 2 - 1)
    c = cfg.out_channels
    assert shapes(preds) == [(1, c, 64, 96), (1, c, 128, 192), (1, c, 256, 384)]


def test_paper_colorizer_shapes_and_febs(paper):
    """The paper size (stem 1, depth 4, width 32): one forward at 128x128, checked level by level."""
    net = paper.build("colorizer").eval()
    cfg = paper.networks["colorizer"].config
    assert (cfg.width, cfg.depth, cfg.stem, cfg.scales) == (32, 4, 1, 3)
    assert len(net.febs) == 3 and all(isinstance(f, FEB) for f in net.febs)
    seen = {}
    hooks = [enc.register_forward_hook(lambda m, i, o, k=(s, d): seen.__setitem__(k, tuple(o.shape)))
             for s, feb in enumerate(net.febs) for d, enc in enumerate(feb.encoders)]
    try:
        with torch.no_grad():
            preds = net(torch.rand(1, 1, 128, 128) * 2 - 1)
    finally:
        for h in hooks:
            h.remove()
    assert shapes(preds) == [(1, 3, 32, 32), (1, 3, 64, 64), (1, 3, 128, 128)]
    widths = [64, 128, 256, 256]
    for s, size in enumerate((32, 64, 128)):
        for d in range(4):
            assert seen[(s, d)] == (1, widths[d], size >> (d + 1), size >> (d + 1))
    assert all(p.abs().max() <= 1.0 for p in preds)


@pytest.mark.parametrize("stem", [1, 4])
def test_predictions_lie_in_minus_one_one(tiny_config, stem):
    """tanh at the output: even an input far outside [-1, 1] gives predictions inside it."""
    net = MPFNet(tiny_config(stem=stem)).eval()
    x = (torch.rand(1, 1, 2 * net.multiple, 2 * net.multiple) * 2 - 1) * 20
    with torch.no_grad():
        preds = net(x)
    for p in preds:
        assert p.abs().max() <= 1.0
        assert p.abs().max() > 0.99  # saturates, so the bound is tanh's and not a coincidence


@pytest.mark.parametrize("stem", [1, 4])
def test_gray_is_broadcast_to_rgb_in_the_right_place(tiny_config, stem):
    """With the colorizer's image head silenced, each prediction is tanh(input at that scale) in every colour."""
    net = MPFNet(tiny_config(out_channels=3, stem=stem)).eval()
    with torch.no_grad():
        for sccm in net.sccms:
            sccm.to_image.weight.zero_()
            sccm.to_image.bias.zero_()
        x = torch.rand(1, 1, 2 * net.multiple, 2 * net.multiple) * 2 - 1
        preds = net(x)
    for pred, target in zip(preds, image_pyramid(x, 3)):
        torch.testing.assert_close(pred, torch.tanh(target).expand_as(pred), rtol=0, atol=1e-6)


def test_image_pyramid_is_average_pooled_coarse_to_fine():
    x = torch.randn(1, 3, 16, 24)
    pyr = image_pyramid(x, 3)
    assert shapes(pyr) == [(1, 3, 4, 6), (1, 3, 8, 12), (1, 3, 16, 24)]
    torch.testing.assert_close(pyr[0], F.avg_pool2d(x, 4))
    assert pyr[2] is x


def test_coarsest_prediction_sees_only_the_quarter_size_image(tiny_config):
    """Changing the input inside 4x4 blocks (block means kept) leaves the 1/4 prediction alone."""
    net = MPFNet(tiny_config(stem=1)).eval()
    x = torch.rand(1, 1, 2 * net.multiple, 2 * net.multiple) * 2 - 1
    wiggle = torch.tensor([[1.0, -1.0, 1.0, -1.0]] * 2 + [[-1.0, 1.0, -1.0, 1.0]] * 2) * 0.1
    y = x + wiggle.repeat(x.shape[2] // 4, x.shape[3] // 4)
    with torch.no_grad():
        px, py = net(x), net(y)
    torch.testing.assert_close(px[0], py[0], rtol=0, atol=1e-5)
    assert (px[2] - py[2]).abs().max() > 1e-3


def test_finer_scales_receive_the_coarser_features(tiny_config):
    """Cross-scale skip: perturbing the coarsest FEB changes every finer prediction."""
    net = MPFNet(tiny_config()).eval()
    x = torch.rand(1, 1, 4 * net.multiple, 4 * net.multiple) * 2 - 1
    with torch.no_grad():
        ref = net(x)
        w = net.febs[0].bottleneck.weight
        w.add_(torch.randn_like(w) * 0.3)
        new = net(x)
    for s in range(3):
        assert (ref[s] - new[s]).abs().max() > 1e-4


def test_sccm_follows_its_formula():
    sccm = SCCM(8, 3, 1).eval()
    f = torch.randn(2, 8, 6, 10)
    img = torch.rand(2, 1, 6, 10) * 2 - 1
    with torch.no_grad():
        out, pred = sccm(f, img)
        expect_pred = torch.tanh(sccm.to_image(f) + img.expand(-1, 3, -1, -1))
        expect_out = sccm.refine(f) * torch.sigmoid(sccm.from_image(expect_pred)) + f
    torch.testing.assert_close(pred, expect_pred, rtol=0, atol=1e-6)
    torch.testing.assert_close(out, expect_out, rtol=0, atol=1e-6)


def test_only_the_finest_sccm_skips_the_feature_path(tiny_config):
    net = MPFNet(tiny_config())
    assert [s.carry_features for s in net.sccms] == [True, True, False]
    assert not hasattr(net.sccms[2], "refine")


@pytest.mark.parametrize("bad", [{"width": 0}, {"stem": 0}, {"in_channels": 2, "out_channels": 3}])
def test_config_validation(tiny_config, bad):
    cfg = tiny_config()
    for k, v in bad.items():
        setattr(cfg, k, v)
    with pytest.raises(ValueError):
        cfg.validate()


def test_parameter_counts_differ_between_sizes(lite, paper):
    lite_p = count_parameters(lite.build("colorizer"))
    paper_p = count_parameters(paper.build("colorizer"))
    assert 0 < lite_p < paper_p
