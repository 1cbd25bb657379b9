"""The CUDA path: eager and compile on a GPU, fp16, and the double-buffered frame pipeline."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nirvision.runtime.backends import create_backend
from nirvision.runtime.backends.compare import mean_psnr
from tests.helpers import nir_frames, tiny_chain

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

FP32_ATOL = 1e-3  # cuDNN vs CPU convolutions in IEEE fp32 (fixture below), outputs in [-1, 1]
FP16_MIN_PSNR = 35.0


@pytest.fixture(autouse=True)
def ieee_fp32():
    """cuDNN runs fp32 convolutions as TF32 by default (10-bit mantissa inputs), which is what
    the product gets on GPUs; tests comparing fp32 against the CPU ask for IEEE fp32 instead."""
    conv = torch.backends.cudnn.conv
    before = conv.fp32_precision
    conv.fp32_precision = "ieee"
    yield
    conv.fp32_precision = before


def frames(n=5, h=72, w=96):
    return nir_frames(n, h, w)


def cpu_reference(net, f):
    return create_backend("eager", net, "cpu", "fp32").infer_uint8(f)


def test_eager_cuda_fp32_matches_cpu():
    net = tiny_chain(width=8)
    x = torch.rand(1, 1, 72, 96) * 2 - 1
    ref = create_backend("eager", net, "cpu", "fp32").infer(x)
    y = create_backend("eager", net, "cuda", "fp32").infer(x)
    assert torch.allclose(y, ref, atol=FP32_ATOL)


@pytest.mark.parametrize("double_buffer", [True, False])
def test_pipeline_matches_cpu_frame_by_frame(double_buffer):
    net = tiny_chain(width=8)
    f = frames()
    ref = cpu_reference(net, f)
    out = create_backend("eager", net, "cuda", "fp32", double_buffer=double_buffer).infer_uint8(f)
    assert out.shape == ref.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - ref.astype(int)).max() <= 2
    for i in range(len(f)):  # every frame lands in its own slot (no buffer mix-up)
        assert mean_psnr(out[i : i + 1], ref[i : i + 1]) > 40


def test_double_buffered_equals_sequential_and_handles_size_changes():
    net = tiny_chain(width=8)
    a = create_backend("eager", net, "cuda", "fp32", double_buffer=True)
    b = create_backend("eager", net, "cuda", "fp32", double_buffer=False)
    for shape in ((3, 64, 64), (4, 72, 96), (1, 64, 64)):
        f = np.random.default_rng(1).integers(0, 255, shape, dtype=np.uint8)
        assert np.array_equal(a.infer_uint8(f), b.infer_uint8(f))


def test_pipeline_uses_pinned_buffers():
    b = create_backend("eager", tiny_chain(width=8), "cuda", "fp32")
    b.infer_uint8(frames(2))
    assert all(t.is_pinned() for t in b.pipeline.host_in + b.pipeline.host_out)


def test_eager_fp16_close_to_fp32():
    net = tiny_chain(width=8)
    f = frames()
    b = create_backend("eager", net, "cuda", "fp16")
    out = b.infer_uint8(f)
    assert b.precision == "fp16"
    assert FP16_MIN_PSNR <= mean_psnr(out, cpu_reference(net, f)) < 100.0  # close, and really reduced (100: identical)


def test_compile_on_cuda_matches_eager():
    net = tiny_chain(width=8)
    x = torch.rand(1, 1, 64, 64) * 2 - 1
    ref = create_backend("eager", net, "cuda", "fp32").infer(x)
    y = create_backend("compile", net, "cuda", "fp32").infer(x)
    assert torch.allclose(y, ref, atol=FP32_ATOL)


def test_auto_precision_is_fp16_on_cuda():
    from nirvision.api import Colorizer

    b = create_backend("eager", tiny_chain(width=8), "cuda", "auto")
    assert b.precision == "fp16" and b.infer_uint8(frames(2)).shape == (2, 72, 96, 3)
    assert Colorizer.load(model="lite", device="cuda").backend.precision == "fp16"


def test_backends_on_cuda_leave_the_callers_network_where_it_was():
    net = tiny_chain(width=8)
    f = frames(2)
    gpu = create_backend("eager", net, "cuda", "fp32")
    assert next(net.parameters()).device.type == "cpu"  # a copy went to the GPU
    ref = cpu_reference(net, f)  # a CPU backend from the same network...
    assert next(gpu.net.parameters()).device.type == "cuda"  # ...leaves the GPU one's copy alone
    assert np.abs(gpu.infer_uint8(f).astype(int) - ref.astype(int)).max() <= 2


def test_auto_on_cuda_picks_a_gpu_backend():
    net = tiny_chain(width=8)
    b = create_backend("auto", net, "cuda", "fp16")
    assert b.name in ("tensorrt", "onnxruntime", "eager") and b.device.type == "cuda" and b.precision == "fp16"
    assert b.chosen_because.startswith("first usable in the measured order")
    if b.name == "onnxruntime":  # on a GPU execution provider, not ONNX Runtime's CPU one
        assert b.providers[0] in ("TensorrtExecutionProvider", "CUDAExecutionProvider")
    f = frames(2)
    out = b.infer_uint8(f)
    assert out.shape == (2, 72, 96, 3)
    assert mean_psnr(out, cpu_reference(net, f)) >= FP16_MIN_PSNR  # the chain's colours


def test_submit_keeps_two_frames_in_flight_and_results_in_order():
    net = tiny_chain(width=8)
    f = frames(6)
    b = create_backend("eager", net, "cuda", "fp32", double_buffer=True)
    assert b.max_in_flight == 2
    ref = b.infer_uint8(f)
    first, second = b.submit(f[0:1]), b.submit(f[1:2])
    third = b.submit(f[2:3])  # reuses frame 0's buffers: frame 0's output must be fetched first, not overwritten
    for i, p in enumerate((first, second, third)):
        assert np.array_equal(p.result(), ref[i : i + 1])
    assert create_backend("eager", net, "cuda", "fp32", double_buffer=False).max_in_flight == 1


def test_engine_on_cuda_overlaps_frames_and_keeps_them(tmp_path):
    from nirvision.io import open_sink, open_source
    from nirvision.runtime.engine import Engine
    from tests.io.media import RecordingSink, read_video

    net = tiny_chain(width=8)
    b = create_backend("eager", net, "cuda", "fp32")
    assert b.max_in_flight == 2  # double buffered: the engine keeps two frames going
    source = open_source("synthetic:96x72@25:10")
    recording = RecordingSink()
    summary = Engine(source, [open_sink(str(tmp_path / "out.mp4"), source.info), recording], b).run()
    assert summary["frames_out"] == 10
    assert len(read_video(tmp_path / "out.mp4")["times"]) == 10
    # each frame is written with its own colours, in order (consecutive frames' colours differ by far more than 2)
    assert [i for i, _, _ in recording.written] == list(range(10))
    for _, image, nir in recording.written:
        assert np.abs(image.astype(int) - cpu_reference(net, nir[None])[0].astype(int)).max() <= 2
