"""``auto`` never picks an unusable backend, says what it picked, and never picks slow bf16."""
from __future__ import annotations

import pytest
import torch

from tests.helpers import tiny_chain
from nirvision.runtime.backends import BACKENDS, BackendUnavailable, create_backend
from nirvision.runtime.backends import auto as auto_mod
from nirvision.runtime.backends.base import Backend




class Broken(Backend):
    name = "broken"

    def __init__(self, net, device, precision="fp32", **_):
        raise BackendUnavailable("broken: not installed")

    def infer(self, x):  # pragma: no cover - never built
        raise AssertionError


def test_auto_on_cpu_picks_a_usable_backend_and_says_why():
    b = create_backend("auto", tiny_chain(), "cpu", "fp32")
    assert b.name in ("openvino", "onnxruntime", "eager")
    assert b.chosen_because.startswith("first usable in the measured order")
    x = torch.rand(1, 1, 16, 16) * 2 - 1
    y = b.infer(x)
    assert y.shape == (1, 3, 16, 16)
    assert torch.allclose(y, create_backend("eager", tiny_chain(), "cpu", "fp32").infer(x), atol=1e-4)  # the chain's colours


def test_auto_skips_backends_that_cannot_run(monkeypatch):
    monkeypatch.setattr(auto_mod, "cpu_flags", lambda: frozenset({"avx2", "avx512f"}))  # openvino first
    monkeypatch.setitem(BACKENDS, "openvino", Broken)
    b = create_backend("auto", tiny_chain(), "cpu", "fp32")
    assert b.name == "onnxruntime"  # the next in the CPU order
    assert "openvino: broken: not installed" in b.chosen_because
    monkeypatch.setitem(BACKENDS, "onnxruntime", Broken)
    b = create_backend("auto", tiny_chain(), "cpu", "fp32")
    assert b.name == "eager"
    assert b.chosen_because.count("broken: not installed") == 2


def test_auto_with_nothing_usable_raises(monkeypatch):
    monkeypatch.setattr(auto_mod, "candidates", lambda device, precision: ["tensorrt"])
    with pytest.raises(BackendUnavailable, match="no usable backend"):
        create_backend("auto", tiny_chain(), "cpu", "fp32")


def test_auto_never_picks_cpu_bf16_without_native_support(monkeypatch):
    monkeypatch.setattr(auto_mod, "cpu_has_fast_bf16", lambda: False)
    with pytest.raises(BackendUnavailable, match="no native bf16"):
        create_backend("auto", tiny_chain(), "cpu", "bf16")
    monkeypatch.setattr(auto_mod, "cpu_has_fast_bf16", lambda: True)
    assert auto_mod.candidates(torch.device("cpu"), "bf16") == ["openvino", "compile", "eager"]


def test_auto_cpu_fp32_order_follows_what_was_measured_on_each_kind_of_cpu(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(auto_mod, "cpu_flags", lambda: frozenset({"avx2", "avx512f", "amx_bf16"}))  # the Xeon
    assert auto_mod.candidates(cpu, "fp32") == ["openvino", "onnxruntime", "eager"]
    monkeypatch.setattr(auto_mod, "cpu_flags", lambda: frozenset({"avx2", "fma"}))  # the AVX2 EPYC
    assert auto_mod.candidates(cpu, "fp32") == ["onnxruntime", "openvino", "eager"]
    assert auto_mod.candidates(cpu, "int8") == ["openvino", "onnxruntime"]


@pytest.mark.parametrize("precision", ["fp16", "int4"])
def test_auto_rejects_what_no_cpu_backend_runs(precision):
    with pytest.raises(BackendUnavailable):
        create_backend("auto", tiny_chain(), "cpu", precision)


def test_auto_orders_gpu_backends_first_on_cuda():
    order = auto_mod.candidates(torch.device("cuda"), "fp16")
    assert order[0] == "tensorrt" and "eager" in order


@pytest.mark.parametrize("times,fastest", [((0.002, 0.001), "eager"), ((0.001, 0.002), "onnxruntime")])
def test_auto_probe_times_candidates_and_keeps_the_fastest(monkeypatch, times, fastest):
    monkeypatch.setattr(auto_mod, "candidates", lambda device, precision: ["onnxruntime", "eager"])
    timed = dict(zip(["onnxruntime", "eager"], times))
    monkeypatch.setattr(auto_mod, "_time", lambda backend, shape, repeats=3: timed[backend.name])
    b = create_backend("auto", tiny_chain(), "cpu", "fp32", probe_shape=(1, 1, 16, 16))
    assert b.name == fastest  # the one timed faster, first or second in the order
    assert b.chosen_because == "fastest on 1x1x16x16: " + ", ".join(f"{n} {t * 1000:.1f} ms" for n, t in timed.items())
