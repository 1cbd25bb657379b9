"""TensorRT through torch-tensorrt: FP16 from a half model, engines cached and rebuilt when bad."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nirvision.runtime.backends import create_backend
from nirvision.runtime.backends.compare import mean_psnr
from tests.helpers import nir_frames, tiny_chain

pytestmark = [pytest.mark.trt, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

FP16_MIN_PSNR = 35.0  # dB, TensorRT fp16 vs eager fp32 uint8 outputs


@pytest.fixture(autouse=True)
def _need_torch_tensorrt():
    pytest.importorskip("torch_tensorrt")


def frames(n=4, h=64, w=80):
    return nir_frames(n, h, w)


def test_fp16_engine_close_to_fp32_and_cached(tmp_path):
    net = tiny_chain(width=8)
    f = frames()
    ref = create_backend("eager", net, "cpu", "fp32").infer_uint8(f)
    trt = create_backend("tensorrt", net, "cuda", "fp16", cache_dir=tmp_path)
    out = trt.infer_uint8(f)
    assert out.shape == ref.shape and trt.precision == "fp16"
    assert FP16_MIN_PSNR <= mean_psnr(out, ref) < 100.0  # close, and really half precision (100: identical)
    engines = list((tmp_path / "tensorrt").glob("*.pt2"))
    assert len(engines) == 1
    stamp = engines[0].stat().st_mtime_ns
    again = create_backend("tensorrt", net, "cuda", "fp16", cache_dir=tmp_path)
    assert np.array_equal(again.infer_uint8(f), out)
    assert engines[0].stat().st_mtime_ns == stamp  # loaded, not rebuilt


def test_corrupt_engine_is_rebuilt(tmp_path):
    net = tiny_chain(width=8)
    f = frames(2)
    first = create_backend("tensorrt", net, "cuda", "fp16", cache_dir=tmp_path).infer_uint8(f)
    (engine,) = (tmp_path / "tensorrt").glob("*.pt2")
    engine.write_bytes(b"not an engine")
    rebuilt = create_backend("tensorrt", net, "cuda", "fp16", cache_dir=tmp_path).infer_uint8(f)
    # a rebuild times kernels afresh, so it may pick others: the same colours within a level
    assert np.abs(rebuilt.astype(int) - first.astype(int)).max() <= 1
    assert engine.stat().st_size > 100


def test_other_shape_gets_its_own_engine(tmp_path):
    trt = create_backend("tensorrt", tiny_chain(width=8), "cuda", "fp16", cache_dir=tmp_path)
    trt.infer_uint8(frames(1, 64, 64))
    trt.infer_uint8(frames(1, 64, 96))
    assert len(list((tmp_path / "tensorrt").glob("*.pt2"))) == 2
