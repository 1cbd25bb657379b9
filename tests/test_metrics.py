"""PSNR, SSIM and AE against hand-computed values."""
import math

import numpy as np
import pytest

from nirvision.metrics import angular_error, evaluate_pairs, mean_metrics, psnr, ssim


def test_psnr_known_mse():
    a = np.full((8, 8, 3), 100, np.uint8)
    b = a + np.uint8(10)  # every value off by 10/255
    assert psnr(a, b) == pytest.approx(-10 * math.log10((10 / 255) ** 2), abs=1e-9)
    c = a.copy()
    c[0, 0, 0] = 110  # one value of 192 off by 10/255
    assert psnr(a, c) == pytest.approx(-10 * math.log10((10 / 255) ** 2 / 192), abs=1e-9)
    assert psnr(a, a) == math.inf


def test_ssim_identical_and_constant_images():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
    assert ssim(img, img) == pytest.approx(1.0, abs=1e-12)
    a, b = np.full((10, 10, 3), 51, np.uint8), np.full((10, 10, 3), 204, np.uint8)
    x, y, c1 = 0.2, 0.8, 0.01**2  # constant images: variances vanish, SSIM = luminance term
    assert ssim(a, b) == pytest.approx((2 * x * y + c1) / (x * x + y * y + c1), abs=1e-9)


def test_ssim_matches_a_direct_window_computation():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (9, 9, 1), dtype=np.uint8)
    b = rng.integers(0, 256, (9, 9, 1), dtype=np.uint8)
    x, y = a[..., 0] / 255.0, b[..., 0] / 255.0
    vals = []
    for i in range(3):
        for j in range(3):
            wx, wy = x[i:i + 7, j:j + 7].ravel(), y[i:i + 7, j:j + 7].ravel()
            mx, my = wx.mean(), wy.mean()
            vx, vy = wx.var(ddof=1), wy.var(ddof=1)
            cov = ((wx - mx) * (wy - my)).sum() / 48
            vals.append((2 * mx * my + 1e-4) * (2 * cov + 9e-4) / ((mx**2 + my**2 + 1e-4) * (vx + vy + 9e-4)))
    assert ssim(a, b) == pytest.approx(np.mean(vals), abs=1e-10)


def test_angular_error_known_angles():
    red = np.array([[[255, 0, 0]]], np.uint8)
    green = np.array([[[0, 255, 0]]], np.uint8)
    yellow = np.array([[[200, 200, 0]]], np.uint8)
    assert angular_error(red, green) == pytest.approx(90.0)
    assert angular_error(yellow, red) == pytest.approx(45.0)
    assert angular_error(red, red) == pytest.approx(0.0, abs=1e-6)
    two = np.concatenate([red, red], axis=1), np.concatenate([green, red], axis=1)
    assert angular_error(*two) == pytest.approx(45.0)  # mean of 90 and 0
    black = np.zeros((1, 1, 3), np.uint8)
    assert angular_error(black, black) == 0.0 and angular_error(black, red) == 90.0


def test_evaluate_pairs_and_means():
    a = np.full((8, 8, 3), 100, np.uint8)
    per = evaluate_pairs([a, a + np.uint8(10)], [a, a])
    assert per["psnr"][0] == math.inf and per["ae"] == [0.0, 0.0]
    assert mean_metrics({"ssim": [0.5, 1.0]}) == {"ssim": 0.75}


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ in shape"):
        psnr(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8))
