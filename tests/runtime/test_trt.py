"""TensorRT through torch-tensorrt: FP16 from a half model, engines cached and rebuilt when bad."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nirvision.models import MPFNet, MPFNetConfig, NIRColorizerNet
from nirvision.runtime.backends import create_backend
from nirvision.runtime.backends.compare import mean_psnr

pytestmark = [pytest.mark.trt, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

FP16_MIN_PSNR = 35.0  # dB, TensorRT fp16 vs eager fp32 uint8 outputs


@pytest.fixture(autouse=True)
def _need_torch_tensorrt():
    pytest.importorskip("torch_tensorrt")


def small_chain() -> NIRColorizerNet:
    torch.manual_seed(0)
    g = MPFNet(MPFNetConfig(1, 1, width=8, depth=2, scales=2, max_width_mult=2, ca_reduction=4, stem=2))
    c = MPFNet(MPFNetConfig(1, 3, width=8, depth=2, scales=2, max_width_mult=2, ca_reduction=4, stem=2))
    return NIRColorizerNet(g, c).eval()


def frames(n=4, h=64, w=80):
    rng = np.random.default_rng(0)
    base = np.linspace(40, 200, w, dtype=np.float32)[None, None, :].repeat(n, 0).repeat(h, 1)
    return np.clip(base + rng.normal(0, 10, (n, h, w)), 0, 255).astype(np.uint8)


def test_fp16_engine_close_to_fp32_and_cached(tmp_path):
    net = small_chain()
    f = frames()
    ref = create_backend("eager", net, "cpu", "fp32").infer_uint8(f)
    trt = create_backend("tensorrt", net, "cuda", "fp16", cache_dir=tmp_path)
    out = trt.infer_uint8(f)
    assert out.shape == ref.shape
    assert mean_psnr(out, ref) >= FP16_MIN_PSNR
    engines = list((tmp_path / "tensorrt").glob("*.ep"))
    assert len(engines) == 1
    stamp = engines[0].stat().st_mtime_ns
    again = create_backend("tensorrt", net, "cuda", "fp16", cache_dir=tmp_path)
    assert np.array_equal(again.infer_uint8(f), out)
    assert engines[0].stat().st_mtime_ns == stamp  # loaded, not rebuilt


def test_corrupt_engine_is_rebuilt(tmp_path):
    net = small_chain()
    f = frames(2)
    first = create_backend("tensorrt", net, "cuda", "fp16", cache_dir=tmp_path).infer_uint8(f)
    (engine,) = (tmp_path / "tensorrt").glob("*.ep")
    engine.write_bytes(b"not an engine")
    assert np.array_equal(create_backend("tensorrt", net, "cuda", "fp16", cache_dir=tmp_path).infer_uint8(f), first)
    assert engine.stat().st_size > 100


def test_other_shape_gets_its_own_engine(tmp_path):
    trt = create_backend("tensorrt", small_chain(), "cuda", "fp16", cache_dir=tmp_path)
    trt.infer_uint8(frames(1, 64, 64))
    trt.infer_uint8(frames(1, 64, 96))
    assert len(list((tmp_path / "tensorrt").glob("*.ep"))) == 2
