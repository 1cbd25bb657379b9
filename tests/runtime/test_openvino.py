"""The OpenVINO backend gives eager fp32's colours (fp32 within float rounding, bf16 and int8 by
PSNR), runs side by side as workers, and says why when it cannot run."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.helpers import block_import, nir_frames, tiny_chain
from nirvision.runtime.backends import BackendUnavailable, create_backend, resolve_precision
from nirvision.runtime.backends.compare import mean_psnr

ov = pytest.importorskip("openvino")

from nirvision.runtime.backends import openvino as ov_mod  # noqa: E402 - after the skip

FP32_ATOL = 1e-4  # fp32 outputs in [-1, 1] vs eager fp32 (as the ONNX Runtime tests)
BF16_MIN_PSNR = 30.0  # dB between uint8 outputs, bf16 vs fp32
INT8_MIN_PSNR = 25.0  # dB, a random-init tiny chain on NIR-like frames (as the calibrate tests)
NATIVE_BF16 = ov_mod.native_bf16()


def test_fp32_float_and_uint8_paths_match_eager(tmp_path):
    net = tiny_chain()
    x = torch.rand(1, 1, 40, 56) * 2 - 1  # not a multiple of the network's: exercises pad and crop
    eager = create_backend("eager", net, "cpu", "fp32")
    b = create_backend("openvino", net, "cpu", "fp32", cache_dir=tmp_path)
    y = b.infer(x)
    ref = eager.infer(x)
    assert y.shape == ref.shape == (1, 3, 40, 56)
    assert torch.allclose(y, ref, atol=FP32_ATOL), (y - ref).abs().max()
    frames = nir_frames(2, 48, 64)
    out = b.infer_uint8(frames)
    assert out.shape == (2, 48, 64, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - eager.infer_uint8(frames).astype(int)).max() <= 1  # rounding at .5 boundaries
    # the uint8 graph ran (frames in, RGB out), exported once into the shared artefact cache
    req = b.runners[((2, 1, 48, 64), True)]
    assert req.get_input_tensor(0).element_type == ov.Type.u8 and req.get_output_tensor(0).element_type == ov.Type.u8
    assert len(list((tmp_path / "onnx-u8").glob("*.onnx"))) == 1
    # a result is a copy: the next call reuses the request's buffer
    first = b.infer_uint8(frames[:1])
    kept = first.copy()
    b.infer_uint8(255 - frames[:1])
    assert np.array_equal(first, kept)
    b.close()


def test_a_corrupt_cached_export_is_rebuilt(tmp_path):
    net = tiny_chain()
    frames = nir_frames(1, 32, 40)
    want = create_backend("openvino", net, "cpu", "fp32", cache_dir=tmp_path).infer_uint8(frames)
    (path,) = (tmp_path / "onnx-u8").glob("*.onnx")
    path.write_bytes(path.read_bytes()[:200])
    got = create_backend("openvino", net, "cpu", "fp32", cache_dir=tmp_path).infer_uint8(frames)
    assert np.array_equal(got, want) and path.stat().st_size > 200


@pytest.mark.skipif(not NATIVE_BF16, reason="this CPU has no native bf16 (OpenVINO refuses bf16 here; see the next test)")
def test_bf16_close_to_fp32_by_psnr(tmp_path):
    net = tiny_chain()
    frames = nir_frames(3, 48, 64)
    ref = create_backend("eager", net, "cpu", "fp32").infer_uint8(frames)
    out = create_backend("openvino", net, "cpu", "bf16", cache_dir=tmp_path).infer_uint8(frames)
    assert BF16_MIN_PSNR <= mean_psnr(out, ref) < 100.0  # close, and really reduced


def test_bf16_without_native_support_is_refused(monkeypatch):
    monkeypatch.setattr(ov_mod, "cpu_capabilities", lambda core: {"FP32", "INT8"})
    with pytest.raises(BackendUnavailable, match="no native bf16"):
        create_backend("openvino", tiny_chain(), "cpu", "bf16")


def test_int8_runs_the_calibrated_model(tmp_path):
    from calibrate.quantize import quantize_int8
    from nirvision.runtime.cache import ArtefactCache

    net = tiny_chain()
    test = nir_frames(3, 32, 32, seed=2)
    with pytest.raises(BackendUnavailable, match="python -m calibrate"):
        create_backend("openvino", net, "cpu", "int8", cache_dir=tmp_path).infer_uint8(test[:1])
    quantize_int8(net, nir_frames(8, 32, 32, seed=1), ArtefactCache(tmp_path))
    b = create_backend("openvino", net, "cpu", "int8", cache_dir=tmp_path)
    out = np.concatenate([b.infer_uint8(test[i : i + 1]) for i in range(len(test))])
    ref = create_backend("eager", net, "cpu", "fp32").infer_uint8(test)
    assert out.shape == ref.shape
    assert INT8_MIN_PSNR <= mean_psnr(out, ref) < 100.0
    with pytest.raises(BackendUnavailable, match="does not exist"):
        create_backend("openvino", net, "cpu", "int8", int8_model=tmp_path / "none.onnx").infer_uint8(test[:1])


def test_workers_give_the_single_backends_colours_in_order(tmp_path):
    from nirvision.runtime.backends.parallel import FrameParallel

    net = tiny_chain()
    single = create_backend("openvino", net, "cpu", "fp32", cache_dir=tmp_path, threads=1)
    par = create_backend("openvino", net, "cpu", "fp32", cache_dir=tmp_path, threads=2, workers="auto")
    try:
        assert isinstance(par, FrameParallel) and par.workers == 2 and all(r.threads == 1 for r in par.replicas)
        assert par.replicas[0].runners is not par.replicas[1].runners  # each copy compiles its own
        frames = nir_frames(6, 32, 48)
        want = single.infer_uint8(frames)
        got = par.infer_uint8(frames)
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 1  # each frame's own colours, in order
    finally:
        single.close()
        par.close()


@pytest.mark.parametrize("precision,needle", [("fp16", "not supported"), ("int4", "not supported")])
def test_unsupported_precisions_say_why(precision, needle):
    with pytest.raises(BackendUnavailable, match=needle):
        create_backend("openvino", tiny_chain(), "cpu", precision)


def test_cuda_is_refused_with_the_alternatives():
    # the backend itself, not create_backend: without CUDA that stops earlier, at the device
    with pytest.raises(BackendUnavailable, match="CPU only .* use tensorrt, onnxruntime or eager"):
        ov_mod.OpenVINOBackend(tiny_chain(), torch.device("cuda", 0), "fp32")


def test_missing_package_names_the_extra(monkeypatch):
    block_import(monkeypatch, "openvino")
    with pytest.raises(BackendUnavailable, match=r"nirvision\[openvino\]"):
        ov_mod.import_openvino()


def test_without_onnx_openvino_is_unavailable_and_auto_falls_back(monkeypatch, tmp_path):
    # the graph OpenVINO compiles is our ONNX export: without onnx the constructor refuses,
    # so auto moves on instead of failing on the first frame
    block_import(monkeypatch, "onnx")
    with pytest.raises(BackendUnavailable, match=r"onnx package is not installed.*nirvision\[openvino\]"):
        create_backend("openvino", tiny_chain(), "cpu", "fp32", cache_dir=tmp_path)
    from nirvision.runtime.availability import openvino_status

    usable, why = openvino_status()
    assert usable is False and "onnx package is not installed" in why
    b = create_backend("auto", tiny_chain(), "cpu", "fp32", cache_dir=tmp_path)
    assert b.name == "eager" and "openvino: openvino: the onnx package is not installed" in b.chosen_because
    assert b.infer_uint8(nir_frames(1, 32, 32)).shape == (1, 32, 32, 3)


def test_auto_precision_is_bf16_only_where_openvino_runs_it_natively(monkeypatch):
    cpu = torch.device("cpu")
    for native in (True, False):
        monkeypatch.setattr(ov_mod, "native_bf16", lambda: native)
        assert resolve_precision("auto", cpu, "openvino") == ("bf16" if native else "fp32")
        assert resolve_precision("auto", cpu, "auto") == ("bf16" if native else "fp32")
        for other in ("onnxruntime", "eager", "compile"):  # bf16 only where it is fast: OpenVINO's kernels
            assert resolve_precision("auto", cpu, other) == "fp32"
        assert resolve_precision("fp32", cpu, "openvino") == "fp32"  # named precisions pass through
    assert resolve_precision("auto", torch.device("cuda"), "auto") == "fp16"


def test_a_broken_install_is_unavailable_not_a_crash(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def broken(name, globals=None, locals=None, fromlist=(), level=0):
        if name == "openvino" and level == 0:  # the package, not our backends/openvino.py
            raise OSError("libopenvino.so: cannot open shared object file")
        return real_import(name, globals, locals, fromlist, level)

    monkeypatch.setattr(builtins, "__import__", broken)
    with pytest.raises(BackendUnavailable, match="failed to import .*libopenvino"):
        ov_mod.import_openvino()
    from nirvision.runtime.availability import openvino_status

    usable, why = openvino_status()
    assert usable is False and "failed to import" in why
    ov_mod.native_bf16.cache_clear()
    try:
        assert resolve_precision("auto", torch.device("cpu"), "auto") == "fp32"  # falls back, never raises
    finally:
        ov_mod.native_bf16.cache_clear()
