"""OpenVINO backend: the exported ONNX graph compiled by OpenVINO's CPU plugin.

The graph is the one ONNX Runtime runs (``export.cached_onnx``: uint8 frames in, uint8 RGB
out, from the artefact cache), so both backends share one export. OpenVINO compiles it in a
second or so; the compiled model is kept per input shape for the backend's life.

Precisions: fp32 (``INFERENCE_PRECISION_HINT`` f32: OpenVINO's default on CPUs with AMX is
bf16, so fp32 is asked for explicitly), bf16 (on CPUs with native bf16, AVX-512 BF16 or AMX:
OpenVINO runs convolutions on AMX tiles; elsewhere it would quietly run fp32, so bf16 is
refused there) and int8 (the model ``python -m calibrate`` quantizes, run on VNNI / AMX int8
kernels where the CPU has them).

Measured on the development CPU with AMX (2 cores; benchmarks/README.md): the paper chain at
256x256 in bf16 runs in about a tenth of eager fp32's time, lite at 640x480 in bf16 at about
5x ONNX Runtime fp32's frames per second with 2 workers.
"""
from __future__ import annotations

import copy
import functools
import logging
import threading
import time
from pathlib import Path

import numpy as np
import torch

from ...models import NIRColorizerNet
from ..cache import ArtefactCache, weights_hash
from .base import Backend, BackendUnavailable
from .export import check_shape, onnx_model

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "int8")
HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}  # int8: quantized ops run int8 whatever the hint; the rest in fp32


def import_openvino():
    """The ``openvino`` module, or BackendUnavailable saying how to install it."""
    try:
        import openvino
    except ImportError:
        raise BackendUnavailable("openvino: the openvino package is not installed (pip install 'nirvision[openvino]')") from None
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
        return "BF16" in cpu_capabilities(import_openvino().Core())
    except BackendUnavailable:
        return False


class OpenVINOBackend(Backend):
    """Compiled models built lazily per input shape from the cached ONNX files; CPU only."""

    name = "openvino"
    can_replicate = True  # each copy compiles its own model with its own threads
    _build_lock = threading.Lock()  # one export at a time, across replicas

    def __init__(self, net: NIRColorizerNet, device: torch.device, precision: str = "fp32", cache_dir: str | Path | None = None,
                 threads: int | None = None, int8_model: str | Path | None = None):
        ov = import_openvino()
        if device.type != "cpu":
            raise BackendUnavailable(f"openvino: runs on the CPU only (asked for {device}); on CUDA use tensorrt, onnxruntime or eager")
        if precision not in PRECISIONS:
            raise BackendUnavailable(f"openvino: precision {precision!r} is not supported; expected one of: {', '.join(PRECISIONS)}")
        core = ov.Core()
        caps = cpu_capabilities(core)
        if precision == "bf16" and "BF16" not in caps:
            raise BackendUnavailable("openvino bf16: this CPU has no native bf16 (AVX-512 BF16 / AMX), where OpenVINO would run fp32 "
                                     "instead; use --precision fp32")
        # a CPU copy to export from: the caller's network may live on a GPU for another backend
        super().__init__(copy.deepcopy(net).to("cpu").eval(), device, precision)
        self.ov, self.core, self.capabilities = ov, core, caps
        self.threads = threads or torch.get_num_threads()
        self.cache = ArtefactCache(cache_dir)
        self.int8_model = Path(int8_model) if int8_model else None
        self.digest = weights_hash(self.net)
        self.requests: dict[tuple[tuple[int, ...], bool], object] = {}
        log.info("openvino %s, CPU capabilities %s, %s, %d threads", ov.__version__, ", ".join(sorted(caps)) or "unknown", precision, self.threads)

    def replica(self, threads: int) -> "OpenVINOBackend":
        """The same model and options with its own compiled models of ``threads`` threads."""
        twin = copy.copy(self)  # the network, core and cache are only read
        twin.threads, twin.requests = threads, {}
        return twin

    @property
    def uint8_io(self) -> bool:
        """Whether ``infer_uint8`` runs the graph with the frame conversions inside (not int8:
        the calibrated model is quantized from the float graph)."""
        return self.precision != "int8"

    def config(self) -> dict:
        """Compile options: this backend's threads, one stream, no pinning (copies of the
        backend run side by side and must not be pinned to the same core)."""
        return {"INFERENCE_NUM_THREADS": self.threads, "INFERENCE_PRECISION_HINT": HINTS[self.precision],
                "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1, "ENABLE_CPU_PINNING": False}

    def request(self, shape: tuple[int, ...], uint8_io: bool = False):
        """The infer request of the model compiled for ``shape`` (built on first use)."""
        shape = check_shape(shape, "openvino input")
        req = self.requests.get((shape, uint8_io))
        if req is None:
            with self._build_lock:
                # bf16 is a compile option: OpenVINO lowers the fp32 export itself
                graph = "int8" if self.precision == "int8" else "fp32"
                path = onnx_model(self.net, shape, graph, self.cache, self.digest, self.name, self.int8_model, uint8_io)
            start = time.perf_counter()
            try:
                compiled = self.core.compile_model(str(path), "CPU", self.config())
            except RuntimeError as exc:
                raise BackendUnavailable(f"openvino: cannot compile {path} for input {shape}: {str(exc).splitlines()[0]}") from None
            req = compiled.create_infer_request()
            self.requests[(shape, uint8_io)] = req
            log.info("openvino: compiled %s for %s (%s, %d threads) in %.2f s", path.name, shape, self.precision, self.threads,
                     time.perf_counter() - start)
        return req

    def prepare(self, shape: tuple[int, ...]) -> None:
        """Export (or find in the cache) and compile what input ``shape`` needs, ahead of the first frame."""
        self.request(tuple(shape), self.uint8_io)

    def _run(self, req, data: np.ndarray) -> np.ndarray:
        req.infer({0: data}, share_inputs=True)
        return np.array(req.get_output_tensor(0).data, copy=True)  # the request's buffer is reused by the next call

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        feed = np.ascontiguousarray(x.detach().cpu().numpy().astype(np.float32, copy=False))
        return torch.from_numpy(self._run(self.request(tuple(x.shape)), feed)).float()

    def infer_uint8(self, frames) -> np.ndarray:
        if not self.uint8_io:
            return super().infer_uint8(frames)
        frames = np.ascontiguousarray(frames, dtype=np.uint8)
        n, h, w = frames.shape
        return self._run(self.request((n, 1, h, w), True), frames)

    def close(self) -> None:
        self.requests.clear()
