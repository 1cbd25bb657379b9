"""Every CPU backend gives eager fp32's output: fp32 within a stated tolerance, reduced
precisions by PSNR against fp32; unusable backends say why."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nirvision.api import load_chain
from nirvision.models import MPFNet, MPFNetConfig, NIRColorizerNet
from tests.helpers import block_import, nir_frames, tiny_chain
from nirvision.runtime.backends import BACKENDS, BackendUnavailable, create_backend
from nirvision.runtime.backends.compare import mean_angular_error, mean_psnr, psnr_per_image

FP32_ATOL = 1e-4  # fp32 backends vs eager fp32, on outputs in [-1, 1]
BF16_MIN_PSNR = 30.0  # dB between uint8 outputs, bf16 vs fp32




@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("nirvision-cache")


@pytest.fixture(scope="module")
def lite_chain():
    torch.manual_seed(0)
    return load_chain(model="lite")[0].eval()


@pytest.fixture(scope="module")
def x64():
    torch.manual_seed(1)
    return torch.rand(1, 1, 64, 80) * 2 - 1  # not a multiple of the network's: exercises pad and crop


def eager_reference(net, x):
    return create_backend("eager", net, "cpu", "fp32").infer(x)


def test_onnxruntime_fp32_matches_eager(lite_chain, x64, cache_dir):
    ref = eager_reference(lite_chain, x64)
    ort = create_backend("onnxruntime", lite_chain, "cpu", "fp32", cache_dir=cache_dir)
    y = ort.infer(x64)
    assert y.shape == ref.shape == (1, 3, 64, 80)
    assert torch.allclose(y, ref, atol=FP32_ATOL), (y - ref).abs().max()
    # exporting must leave the network in eval mode: eager gives the same output afterwards
    assert not lite_chain.training
    assert torch.equal(eager_reference(lite_chain, x64), ref)


def test_onnxruntime_keeps_one_session_per_shape_and_reuses_cache(cache_dir):
    net = tiny_chain()
    ort = create_backend("onnxruntime", net, "cpu", "fp32", cache_dir=cache_dir)
    a = torch.zeros(1, 1, 48, 48)
    b = torch.zeros(2, 1, 48, 64)
    assert ort.infer(a).shape == (1, 3, 48, 48)
    assert ort.infer(b).shape == (2, 3, 48, 64)
    assert set(ort.runners) == {((1, 1, 48, 48), False), ((2, 1, 48, 64), False)}  # float graphs
    from nirvision.runtime.backends.export import onnx_key
    from nirvision.runtime.cache import ArtefactCache

    files = sorted((p.name, p.stat().st_mtime_ns) for p in (cache_dir / "onnx").glob("*.onnx"))
    wanted = {ArtefactCache(cache_dir).path(onnx_key(net, s, "fp32"), ".onnx").name for s in ((1, 1, 48, 48), (2, 1, 48, 64))}
    assert wanted <= {name for name, _ in files}  # one file per shape, in the cache (else the check below is empty)
    again = create_backend("onnxruntime", net, "cpu", "fp32", cache_dir=cache_dir)
    again.infer(a)
    assert sorted((p.name, p.stat().st_mtime_ns) for p in (cache_dir / "onnx").glob("*.onnx")) == files  # reused, not rewritten


def test_onnxruntime_rebuilds_a_corrupt_model(cache_dir):
    net = tiny_chain()
    x = torch.rand(1, 1, 32, 40) * 2 - 1
    create_backend("onnxruntime", net, "cpu", "fp32", cache_dir=cache_dir).infer(x)
    from nirvision.runtime.backends.export import onnx_key
    from nirvision.runtime.cache import ArtefactCache

    path = ArtefactCache(cache_dir).path(onnx_key(net, (1, 1, 32, 40), "fp32"), ".onnx")
    path.write_bytes(path.read_bytes()[:100])
    y = create_backend("onnxruntime", net, "cpu", "fp32", cache_dir=cache_dir).infer(x)
    assert torch.allclose(y, eager_reference(net, x), atol=FP32_ATOL)
    assert path.stat().st_size > 100


def test_uint8_path_matches_eager(cache_dir):
    net = tiny_chain()
    frames = nir_frames(2, 48, 64)
    ref = create_backend("eager", net, "cpu", "fp32").infer_uint8(frames)
    ort = create_backend("onnxruntime", net, "cpu", "fp32", cache_dir=cache_dir)
    out = ort.infer_uint8(frames)
    assert out.shape == (2, 48, 64, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1  # rounding at .5 boundaries
    # it ran the graph with the conversions inside: uint8 frames in, uint8 RGB out
    (sess,) = ort.runners.values()
    assert sess.get_inputs()[0].type == "tensor(uint8)" and sess.get_outputs()[0].type == "tensor(uint8)"
    assert sess.get_outputs()[0].shape == [2, 48, 64, 3]


@pytest.mark.parametrize("net", ["tiny", "lite"])  # lite's networks share a stem (the fused graph); tiny's do not
def test_fp16_uint8_graph_scales_its_input_as_the_cuda_path(tmp_path, net):
    # the exported graph's frame conversion, run by ONNX Runtime, gives the bits the CUDA frame
    # path feeds the half network: scaled in fp32, cast to fp16 once
    import onnx
    import onnxruntime as ort

    from nirvision.runtime.backends.export import export_onnx
    from nirvision.runtime.frames import to_model_input

    chain = tiny_chain() if net == "tiny" else load_chain(model="lite")[0].eval()
    path = export_onnx(chain, (1, 1, 16, 16), tmp_path / "u8.onnx", torch.float16, uint8_io=True)
    graph = onnx.load(str(path)).graph
    consumers = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    out = graph.input[0].name
    while consumers[out][0].op_type in ("Unsqueeze", "Cast", "Mul", "Sub"):  # the conversion, up to the network
        out = consumers[out][0].output[0]
    onnx.utils.extract_model(str(path), str(tmp_path / "scale.onnx"), [graph.input[0].name], [out])
    frames = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    (x,) = ort.InferenceSession(str(tmp_path / "scale.onnx"), providers=["CPUExecutionProvider"]).run(None, {"nir": frames})
    want = to_model_input(frames).half().numpy()
    assert x.dtype == np.float16 and np.array_equal(x.view(np.uint16), want.view(np.uint16))


def test_eager_bf16_close_to_fp32_by_psnr():
    net = tiny_chain()
    frames = nir_frames(2, 32, 32)
    ref = create_backend("eager", net, "cpu", "fp32").infer_uint8(frames)
    out = create_backend("eager", net, "cpu", "bf16").infer_uint8(frames)
    assert BF16_MIN_PSNR <= mean_psnr(out, ref) < 100.0  # close, and really reduced (100: identical)


def test_compile_fp32_matches_eager():
    torch.manual_seed(0)  # one scale, one UNet level: every block type, and a short inductor compile
    g = MPFNet(MPFNetConfig(1, 1, width=4, depth=1, scales=1, max_width_mult=2, ca_reduction=4, stem=2))
    c = MPFNet(MPFNetConfig(1, 3, width=4, depth=1, scales=1, max_width_mult=2, ca_reduction=4, stem=2))
    net = NIRColorizerNet(g, c).eval()
    x = torch.rand(1, 1, 32, 40) * 2 - 1
    ref = eager_reference(net, x)
    y = create_backend("compile", net, "cpu", "fp32").infer(x)
    assert y.shape == ref.shape
    assert torch.allclose(y, ref, atol=FP32_ATOL), (y - ref).abs().max()


@pytest.mark.parametrize("name,precision,needle", [
    ("eager", "fp16", "fp16 needs a CUDA device"),
    ("compile", "fp16", "fp16 needs a CUDA device"),
    ("onnxruntime", "fp16", "fp16 needs a GPU execution provider"),
    ("onnxruntime", "bf16", "not supported"),
    ("eager", "int8", "not supported"),
    ("nonsense", "fp32", "unknown"),
])
def test_unsupported_combinations_say_why(name, precision, needle):
    with pytest.raises(BackendUnavailable, match=needle):
        create_backend(name, tiny_chain(), "cpu", precision)


def test_onnxruntime_int8_without_calibration_names_the_command(lite_chain, tmp_path):
    b = create_backend("onnxruntime", lite_chain, "cpu", "int8", cache_dir=tmp_path)
    with pytest.raises(BackendUnavailable, match="python -m calibrate"):
        b.infer(torch.zeros(1, 1, 32, 32))
    with pytest.raises(BackendUnavailable, match="does not exist"):
        create_backend("onnxruntime", lite_chain, "cpu", "int8", int8_model=tmp_path / "none.onnx").infer(torch.zeros(1, 1, 32, 32))


@pytest.mark.parametrize("field,value", [("weights", "e" * 64), ("precision", "fp32"), ("gpu", "NVIDIA H100"),
                                         ("onnxruntime", "1.99.0"), ("tensorrt", "99.0"), ("torch", "9.9")])
def test_onnxruntime_trt_engine_folder_changes_with_each_part(tmp_path, field, value):
    # the TensorRT provider's engines hold the GPU's kernels for one TensorRT / onnxruntime build
    from nirvision.runtime.backends.onnxruntime import trt_engine_dir, trt_engine_key

    import onnxruntime

    key = trt_engine_key("d" * 64, "fp16", "NVIDIA H200")
    assert key.shape == () and key.onnxruntime == onnxruntime.__version__  # one folder for every size; the installed version
    assert trt_engine_dir(tmp_path, key) == trt_engine_dir(tmp_path, trt_engine_key("d" * 64, "fp16", "NVIDIA H200"))
    assert trt_engine_dir(tmp_path, key.with_(**{field: value})) != trt_engine_dir(tmp_path, key)


def test_onnxruntime_trt_provider_gets_the_keyed_engine_folder(tmp_path, monkeypatch):
    from nirvision.runtime.backends import onnxruntime as ort_mod
    from nirvision.runtime.cache import ArtefactCache

    monkeypatch.setattr(ort_mod, "gpu_name", lambda device: "NVIDIA H200")  # no GPU needed to name the folder
    b = object.__new__(ort_mod.OnnxRuntimeBackend)
    b.providers, b.precision, b.device = ["TensorrtExecutionProvider", "CPUExecutionProvider"], "fp16", torch.device("cuda", 0)
    b.cache, b.digest = ArtefactCache(tmp_path), "d" * 64
    (name, opts), cpu = b._provider_options((1, 1, 32, 32))
    want = ort_mod.trt_engine_dir(tmp_path, ort_mod.trt_engine_key("d" * 64, "fp16", "NVIDIA H200"))
    assert name == "TensorrtExecutionProvider" and cpu == "CPUExecutionProvider"
    assert opts["trt_engine_cache_path"] == str(want) and want.is_dir() and opts["trt_fp16_enable"] is True


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without CUDA")
@pytest.mark.parametrize("name,precision", [("tensorrt", "fp16"), ("eager", "fp32"), ("onnxruntime", "fp32")])
def test_cuda_without_cuda_is_a_clear_error(name, precision):
    with pytest.raises(BackendUnavailable, match="CUDA"):
        create_backend(name, tiny_chain(), "cuda", precision)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without CUDA")
def test_tensorrt_without_gpu_or_package_is_a_clear_error():
    with pytest.raises(BackendUnavailable, match="CUDA GPU"):
        create_backend("tensorrt", tiny_chain(), "auto", "fp16")


def test_tensorrt_import_failure_names_the_extra(monkeypatch):
    from nirvision.runtime.backends.tensorrt import import_torch_tensorrt

    block_import(monkeypatch, "torch_tensorrt")
    with pytest.raises(BackendUnavailable, match=r"nirvision\[trt\]"):
        import_torch_tensorrt()


def test_auto_precision_on_the_cpu(lite_chain, cache_dir):
    """fp32 for every CPU backend but OpenVINO; OpenVINO (and auto, which picks it first) take
    bf16 where the CPU runs it natively (tests/runtime/test_openvino.py checks that rule)."""
    from nirvision.api import Colorizer
    from nirvision.runtime.backends import resolve_precision

    native = False
    try:
        from nirvision.runtime.backends.openvino import native_bf16

        native = native_bf16()
    except ImportError:
        pass
    assert resolve_precision("auto", torch.device("cuda")) == "fp16"
    assert resolve_precision("auto", torch.device("cpu")) == ("bf16" if native else "fp32")
    assert resolve_precision("bf16", torch.device("cuda")) == "bf16"  # named precisions pass through
    for name in ("eager", "onnxruntime", "auto"):
        opts = {"cache_dir": cache_dir} if name != "eager" else {}
        b = create_backend(name, lite_chain, "cpu", "auto", **opts)
        want = "bf16" if name == "auto" and native else "fp32"
        assert b.precision == want and b.info.precision == want, name
        b.close()
    c = Colorizer.load(model="lite", device="cpu")  # the API's default precision (its default backend is eager)
    assert c.backend.precision == "fp32" and c(np.zeros((40, 48), np.uint8)).shape == (40, 48, 3)


def test_module_on_moves_a_copy_never_the_callers_network():
    from nirvision.runtime.backends.base import module_on

    net = tiny_chain(width=8).train()
    assert module_on(net, torch.device("cpu")) is net and not net.training  # CPU to CPU: the module itself, in eval mode
    moved = module_on(net, torch.device("meta"))  # any other device (CUDA on a GPU machine): a copy
    assert moved is not net and not moved.training
    assert next(moved.parameters()).device.type == "meta" and next(net.parameters()).device.type == "cpu"


def test_compile_on_the_cpu_takes_a_mode_with_freezing(monkeypatch):
    import nirvision.runtime.backends.compile as compile_mod

    seen = {}

    def fake_compile(model, mode=None, options=None, **kwargs):  # torch.compile refuses mode and options together
        assert not (mode and options)
        seen.update(mode=mode, options=options)
        return model

    monkeypatch.setattr(compile_mod.torch, "compile", fake_compile)
    create_backend("compile", tiny_chain(width=8), "cpu", "fp32", mode="max-autotune-no-cudagraphs")
    assert seen["mode"] is None and seen["options"]["freezing"] is True and seen["options"]["max_autotune"] is True
    create_backend("compile", tiny_chain(width=8), "cpu", "fp32")
    assert seen == {"mode": None, "options": {"freezing": True}}


def test_registry_lists_all_backends_without_importing_them():
    assert {"eager", "compile", "onnxruntime", "openvino", "tensorrt"} <= set(BACKENDS)
    # in a fresh process (this one has imported them already): listing the names loads no optional backend
    import subprocess
    import sys

    code = ("import sys; from nirvision.runtime.backends import BACKENDS; names = sorted(BACKENDS); "
            "print(names, sorted(m for m in sys.modules if m.split('.')[0] in ('onnxruntime', 'openvino', 'torch_tensorrt', 'onnx') "
            "or m.split('.')[-1] in ('compile', 'onnxruntime', 'openvino', 'tensorrt') and m.startswith('nirvision.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['compile', 'eager', 'onnxruntime', 'openvino', 'tensorrt'] []"


def test_compare_metrics():
    a = nir_frames(2, 16, 16)[..., None].repeat(3, axis=-1)
    assert mean_psnr(a, a) == 100.0
    b = a.copy()
    b[0, 0, 0, 0] ^= 1
    assert 50 < psnr_per_image(a, b)[0] < 100 and psnr_per_image(a, b)[1] == 100.0
    assert mean_angular_error(a, a) == pytest.approx(0.0, abs=1e-6)
    red, green = np.zeros((1, 1, 1, 3), np.uint8), np.zeros((1, 1, 1, 3), np.uint8)
    red[..., 0], green[..., 1] = 200, 200
    assert mean_angular_error(red, green) == pytest.approx(90.0)
    with pytest.raises(ValueError, match="differ in shape"):
        mean_psnr(a, a[:1])
