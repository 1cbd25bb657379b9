"""OpenVINO backend: the exported ONNX graph compiled by OpenVINO's CPU plugin.

The graph is the one ONNX Runtime runs (``export.cached_onnx``: uint8 frames in, uint8 RGB
out, from the artefact cache), so both backends share one export. OpenVINO compiles it in a
second or so; the compiled model is kept per input shape for the backend's life.

Precisions: fp32 (``INFERENCE_PRECISION_HINT`` f32: OpenVINO's default on CPUs with AMX is
bf16, so fp32 is asked for explicitly), bf16 (on CPUs with native bf16, AVX-512 BF16 or AMX:
OpenVINO runs convolutions on AMX tiles; elsewhere it would quietly run fp32, so bf16 is
refused there) and int8 (the model ``python -m calibrate`` quantizes, run on VNNI / AMX int8
kernels where the CPU has them).

Measured on a 2-core Xeon with AMX (benchmarks/README.md, both with 2 workers): bf16 runs the
paper chain 7.4-8.3x as fast as eager fp32, and lite at 640x480 at 1.6x ONNX Runtime fp32's
frames per second (96 FPS), within 0.005 dB of fp32 against the truth on real frames.
"""
from __future__ import annotations

import functools
import logging
import time
from pathlib import Path

import numpy as np
import torch

from ...models import NIRColorizerNet
from .base import BackendUnavailable
from .export import import_onnx
from .exported import ExportedGraphBackend
from .sigstack import kept_signal_stack

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "int8")
HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}  # int8: quantized ops run int8 whatever the hint; the rest in fp32


def import_openvino():
    """The ``openvino`` module, or BackendUnavailable saying how to install it."""
    try:
        return _import_without_telemetry()
    except ImportError:
        raise BackendUnavailable("openvino: the openvino package is not installed (pip install 'nirvision[openvino]')") from None
    except Exception as exc:  # noqa: BLE001 - a broken install (missing shared libraries) raises all sorts
        raise BackendUnavailable(f"openvino: the openvino package failed to import ({type(exc).__name__}: {exc})") from None


def _import_without_telemetry():
    """``import openvino`` without its telemetry: by default that import sends a usage event to
    Google Analytics and writes a client id under ``~/intel``, and OpenVINO's only off switch is
    the user-wide ``opt_in_out --opt_out``. Its model converter sends nothing (a stub) when
    ``openvino_telemetry`` cannot be imported, so that is made unimportable while openvino first
    loads, and importable again after, for anyone who uses it on purpose."""
    import sys

    block = "openvino" not in sys.modules and "openvino_telemetry" not in sys.modules
    if block:
        sys.modules["openvino_telemetry"] = None  # importing it raises ImportError
    try:
        import openvino
    except ImportError as exc:
        if not (block and (exc.name or "").startswith("openvino_telemetry")):
            raise
        del sys.modules["openvino_telemetry"]  # a release that cannot load without it: as it is
        block = False
        import openvino
    finally:
        if block and sys.modules.get("openvino_telemetry", False) is None:
            del sys.modules["openvino_telemetry"]
    return openvino


def cpu_capabilities(core) -> set[str]:
    """What OpenVINO's CPU plugin can run natively here (FP32, BF16, INT8, FP16, ...)."""
    try:
        return set(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    except RuntimeError:
        return set()


@functools.lru_cache(maxsize=1)
def native_bf16() -> bool:
    """Whether OpenVINO is installed and runs bf16 natively on this CPU (``--precision auto``
    then means bf16, as it means fp16 on CUDA)."""
    try:
        with kept_signal_stack():
            return "BF16" in cpu_capabilities(import_openvino().Core())
    except BackendUnavailable:
        return False


class OpenVINOBackend(ExportedGraphBackend):
    """Models compiled lazily per input shape from the cached ONNX files; CPU only."""

    name = "openvino"
    can_replicate = True  # each copy compiles its own model with its own threads

    def __init__(self, net: NIRColorizerNet, device: torch.device, precision: str = "fp32", cache_dir: str | Path | None = None,
                 threads: int | None = None, int8_model: str | Path | None = None):
        ov = import_openvino()
        import_onnx(self.name)  # the graph OpenVINO compiles is our ONNX export: without onnx, unavailable here, not on the first frame
        if device.type != "cpu":
            raise BackendUnavailable(f"openvino: runs on the CPU only (asked for {device}); on CUDA use tensorrt, onnxruntime or eager")
        if precision not in PRECISIONS:
            raise BackendUnavailable(f"openvino: precision {precision!r} is not supported; expected one of: {', '.join(PRECISIONS)}")
        with kept_signal_stack():
            core = ov.Core()
            caps = cpu_capabilities(core)
        if precision == "bf16" and "BF16" not in caps:
            raise BackendUnavailable("openvino bf16: this CPU has no native bf16 (AVX-512 BF16 / AMX), where OpenVINO would run fp32 "
                                     "instead; use --precision fp32")
        super().__init__(net, device, precision, cache_dir, threads, int8_model)
        self.core = core
        log.info("openvino %s, CPU capabilities %s, %s, %d threads", ov.__version__, ", ".join(sorted(caps)) or "unknown", precision, self.threads)

    @property
    def graph_precision(self) -> str:
        """bf16 is a compile option: OpenVINO lowers the fp32 export itself."""
        return "int8" if self.precision == "int8" else "fp32"

    def config(self) -> dict:
        """Compile options: this backend's threads, one stream, no pinning (copies of the
        backend run side by side and must not be pinned to the same core)."""
        return {"INFERENCE_NUM_THREADS": self.threads, "INFERENCE_PRECISION_HINT": HINTS[self.precision],
                "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1, "ENABLE_CPU_PINNING": False}

    def _build(self, shape: tuple[int, ...], uint8_io: bool, path: Path):
        start = time.perf_counter()
        try:
            compiled = self.core.compile_model(str(path), "CPU", self.config())
        except RuntimeError as exc:
            raise BackendUnavailable(f"openvino: cannot compile {path} for input {shape}: {str(exc).splitlines()[0]}") from None
        log.info("openvino: compiled %s for %s (%s, %d threads) in %.2f s", path.name, shape, self.precision, self.threads,
                 time.perf_counter() - start)
        return compiled.create_infer_request()

    def _run(self, request, data: np.ndarray) -> np.ndarray:
        with kept_signal_stack():
            request.infer({0: data}, share_inputs=True)
            return np.array(request.get_output_tensor(0).data, copy=True)  # the request's buffer is reused by the next call

    # OpenVINO objects are made, run and freed only inside kept_signal_stack() (see sigstack.py):
    # building a runner, and freeing those a new size pushes out, happen in runner()
    def runner(self, shape: tuple[int, ...], uint8_io: bool = False):
        with kept_signal_stack():
            return super().runner(shape, uint8_io)

    def close(self) -> None:
        with kept_signal_stack():
            super().close()

    def __del__(self) -> None:  # a backend dropped: its models, and its share of the Core, freed in here
        try:
            with kept_signal_stack():
                self.close()
                self.__dict__.pop("core", None)
        except Exception:  # noqa: BLE001 - nothing may leave a destructor
            pass
