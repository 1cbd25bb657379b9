"""The numpy frame conversions (used on worker threads) equal the torch ones bit for bit."""
from __future__ import annotations

import numpy as np
import torch

from nirvision.runtime.frames import from_model_output, from_model_output_numpy, to_model_input, to_model_input_numpy


def test_input_conversion_matches_torch_for_every_level():
    frames = np.arange(256, dtype=np.uint8).reshape(1, 16, 16).repeat(2, axis=0)
    want = to_model_input(frames).numpy()
    got = to_model_input_numpy(frames)
    assert got.dtype == np.float32 and got.shape == (2, 1, 16, 16)
    assert np.array_equal(got, want)
    assert got[0, 0, 0, 0] == -1.0 and got[0, 0, -1, -1] == 1.0


def test_output_conversion_matches_torch_including_ties_and_clipping():
    rng = np.random.default_rng(0)
    y = rng.uniform(-1.2, 1.2, (2, 3, 24, 20)).astype(np.float32)
    # values that land exactly on .5 after scaling (ties round to even in both), and the ends
    ties = (np.arange(0, 256, dtype=np.float32) + 0.5) / np.float32(127.5) - np.float32(1.0)
    y[0, 0].flat[: len(ties)] = ties[: y[0, 0].size]
    y[1, 2, 0, :4] = [-1.0, 1.0, -5.0, 5.0]
    want = from_model_output(torch.from_numpy(y))
    got = from_model_output_numpy(y)
    assert got.dtype == np.uint8 and got.shape == (2, 24, 20, 3) and got.flags.c_contiguous
    assert np.array_equal(got, want)
    assert list(got[1, 0, :4, 2]) == [0, 255, 0, 255]


def test_float_frames_with_nan_or_inf_are_refused_naming_the_frame():
    import pytest

    from nirvision.runtime.frames import to_nir

    for bad in (np.nan, np.inf, -np.inf):
        f = np.full((8, 8), 0.5, np.float32)
        f[3, 4] = bad
        with pytest.raises(ValueError, match="frame 7: float frames must hold finite values in .0, 1., got 1 NaN or infinite"):
            to_nir(f.astype(np.float64) if bad is np.inf else f, name="frame 7")
    assert to_nir(np.full((2, 2), 0.5, np.float32)).tolist() == [[128, 128], [128, 128]]


def test_float16_frames_are_read_as_float32_frames_are():
    import pytest

    from nirvision.runtime.frames import to_nir

    rng = np.random.default_rng(1)
    half = rng.random((24, 32, 3)).astype(np.float16)
    half[0, :3, 0] = [0.0, 1.0, 0.5]
    got = to_nir(half)
    assert got.dtype == np.uint8 and np.array_equal(got, to_nir(half.astype(np.float32)))
    assert to_nir(np.full((2, 2), 0.5, np.float16)).tolist() == [[128, 128], [128, 128]]
    with pytest.raises(ValueError, match="float frames must lie in .0, 1."):
        to_nir(np.full((2, 2), 2.0, np.float16))
    with pytest.raises(ValueError, match="expected uint8, uint16 or float .16, 32 or 64-bit. pixels, got int32"):
        to_nir(np.zeros((2, 2), np.int32))


def test_the_api_colorizes_float16_images_like_float32_ones():
    from nirvision.api import Colorizer
    from tests.helpers import tiny_chain
    from nirvision.runtime.backends import create_backend

    colorizer = Colorizer(create_backend("eager", tiny_chain(), "cpu", "fp32"), config=None)
    half = (np.random.default_rng(2).random((32, 40)) * 0.8 + 0.1).astype(np.float16)
    out = colorizer(half)
    assert out.shape == (32, 40, 3) and np.array_equal(out, colorizer(half.astype(np.float32)))
