import pytest
import torch
import torch.nn.functional as F

from train.losses import ImagePool, l_mix, lsgan, ms_ssim, multiscale_mix


def test_ms_ssim_identical_is_one_and_drops_with_noise():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 64, 64, generator=g)
    assert torch.allclose(ms_ssim(x, x), torch.ones(2), atol=1e-5)
    noisy = (x + 0.2 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    assert (ms_ssim(x, noisy) < 0.95).all()
    small = torch.rand(1, 3, 16, 16, generator=g)  # too small for 5 levels: fewer levels, still 1 on identity
    assert ms_ssim(small, small).item() == pytest.approx(1.0, abs=1e-5)


def test_l_mix_weights_its_two_terms():
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(1, 3, 64, 64, generator=g) * 2 - 1, torch.rand(1, 3, 64, 64, generator=g) * 2 - 1
    l1 = F.l1_loss((a + 1) / 2, (b + 1) / 2)
    ssim_term = 1 - ms_ssim((a + 1) / 2, (b + 1) / 2).mean()
    assert l_mix(a, b, alpha=0.0).item() == pytest.approx(l1.item(), rel=1e-5)
    assert l_mix(a, b, alpha=1.0).item() == pytest.approx(ssim_term.item(), rel=1e-5)
    assert l_mix(a, b).item() == pytest.approx(0.84 * ssim_term.item() + 0.16 * l1.item(), rel=1e-5)


def test_multiscale_mix_sums_over_scales_against_pooled_targets():
    t = torch.rand(1, 3, 64, 64) * 2 - 1
    preds = [F.avg_pool2d(t, 4), F.avg_pool2d(t, 2), t]
    assert multiscale_mix(preds, t).item() == pytest.approx(0.0, abs=1e-4)
    worse = [p * 0 for p in preds]
    assert multiscale_mix(worse, t).item() > 0.1


def test_lsgan_targets():
    x = torch.tensor([0.0, 1.0])
    assert lsgan(x, True).item() == pytest.approx(0.5)
    assert lsgan(x, False).item() == pytest.approx(0.5)
    assert lsgan(torch.ones(3), True).item() == 0.0
    assert lsgan(torch.zeros(3), False).item() == 0.0  # a fake's target is 0, not 1
    assert lsgan(torch.ones(3), False).item() == pytest.approx(1.0) and lsgan(torch.zeros(3), True).item() == pytest.approx(1.0)


def test_image_pool_fills_then_mixes_old_and_new():
    pool = ImagePool(2)
    g = torch.Generator().manual_seed(0)
    first = torch.zeros(2, 1, 4, 4)
    assert torch.equal(pool.query(first, g), first)  # filling: the new images pass through
    seen_old = seen_new = False
    for i in range(20):
        out = pool.query(torch.full((1, 1, 4, 4), float(i + 1)), g)
        seen_old |= out[0, 0, 0, 0].item() != i + 1
        seen_new |= out[0, 0, 0, 0].item() == i + 1
    assert seen_old and seen_new and len(pool.images) == 2
    assert any(img[0, 0, 0, 0].item() > 0 for img in pool.images)  # the history took in later images
    restored = ImagePool(2)
    restored.load(pool.state())
    assert len(restored.images) == 2 and all(torch.equal(a, b) for a, b in zip(restored.images, pool.images))


def test_l_mix_l2_pixel_term_is_the_mean_squared_error():
    a = torch.full((1, 3, 32, 32), 0.5)  # 0.75 in [0, 1]
    b = torch.full((1, 3, 32, 32), -0.5)  # 0.25 in [0, 1]
    assert l_mix(a, b, alpha=0.0, pixel="l2").item() == pytest.approx(0.25, rel=1e-6)  # (0.75 - 0.25)**2
    assert l_mix(a, b, alpha=0.0, pixel="l1").item() == pytest.approx(0.5, rel=1e-6)
    ssim_term = 1 - ms_ssim((a + 1) / 2, (b + 1) / 2).mean()
    assert l_mix(a, b, alpha=0.5, pixel="l2").item() == pytest.approx(0.5 * ssim_term.item() + 0.125, rel=1e-5)
    preds = [F.avg_pool2d(b, 4), F.avg_pool2d(b, 2), b]
    assert multiscale_mix(preds, a, alpha=0.0, pixel="l2").item() == pytest.approx(0.75, rel=1e-6)
