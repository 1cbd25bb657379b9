"""ONNX Runtime backend: the chain exported with torch.onnx, one session per input shape.

Worker threads do not spin while waiting (``spin=False``): on a 2-core machine shared with
another job, spinning workers made a 2-thread session about 2x slower (measured: 78 vs 152 ms
for lite at 640x480), for a few percent gained on an idle machine.

Precisions: fp32 (CPU, or CUDA / TensorRT execution providers where installed), fp16 (a
half-precision export, on a GPU provider) and int8 (the statically quantized model that
``python -m calibrate`` writes into the artefact cache; see ``export.int8_model_key``).
"""
from __future__ import annotations

import copy
import logging
import threading
from pathlib import Path

import numpy as np
import torch

from ...models import NIRColorizerNet
from ..cache import ArtefactCache, weights_hash
from .base import Backend, BackendUnavailable
from .export import INPUT_NAME, check_shape, onnx_model

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8")
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def import_onnxruntime():
    """onnxruntime, or BackendUnavailable saying how to install it."""
    try:
        import onnx  # noqa: F401 - needed by the exporter
        import onnxruntime
    except ImportError as exc:
        raise BackendUnavailable(f"onnxruntime: {exc.name} is not installed (pip install 'nirvision[onnx]')") from None
    return onnxruntime


class OnnxRuntimeBackend(Backend):
    """Sessions built lazily per input shape from cached ONNX files."""

    name = "onnxruntime"
    _build_lock = threading.Lock()  # one export / session build at a time, across replicas

    def __init__(self, net: NIRColorizerNet, device: torch.device, precision: str = "fp32", cache_dir: str | Path | None = None,
                 providers: list[str] | None = None, threads: int | None = None, int8_model: str | Path | None = None,
                 spin: bool = False):
        ort = import_onnxruntime()
        if precision not in PRECISIONS:
            raise BackendUnavailable(f"onnxruntime: precision {precision!r} is not supported; expected one of: {', '.join(PRECISIONS)}")
        available = ort.get_available_providers()
        if providers is None:
            if device.type == "cuda":
                providers = [p for p in GPU_PROVIDERS if p in available]
                if not providers:
                    raise BackendUnavailable(f"onnxruntime on {device}: no GPU execution provider installed (have: {', '.join(available)}; pip install onnxruntime-gpu)")
                providers.append("CPUExecutionProvider")
            else:
                providers = ["CPUExecutionProvider"]
        missing = [p for p in providers if p not in available]
        if missing:
            raise BackendUnavailable(f"onnxruntime: execution provider(s) {', '.join(missing)} not available (have: {', '.join(available)})")
        if precision == "fp16" and not any(p in GPU_PROVIDERS for p in providers):
            raise BackendUnavailable("onnxruntime: fp16 needs a GPU execution provider; on the CPU use fp32 or int8")
        # a CPU copy to export from: the caller's network may live on a GPU for another backend
        super().__init__(copy.deepcopy(net).to("cpu").eval(), device, precision)
        self.ort = ort
        self.providers = providers
        self.threads = threads or torch.get_num_threads()
        self.spin = spin  # busy-waiting workers: a little faster alone, far slower on a shared CPU
        self.cache = ArtefactCache(cache_dir)
        self.int8_model = Path(int8_model) if int8_model else None
        self.digest = weights_hash(self.net)
        self.sessions: dict[tuple[int, ...], object] = {}
        log.info("onnxruntime %s, providers %s, %d threads", ort.__version__, ", ".join(providers), self.threads)

    def model_path(self, shape: tuple[int, ...], uint8_io: bool = False) -> Path:
        """The ONNX file for ``shape``: cached export (float or uint8 frames in and out), or the
        calibrated int8 model (float in and out)."""
        return onnx_model(self.net, shape, self.precision, self.cache, self.digest, self.name, self.int8_model, uint8_io, self.device)

    def _provider_options(self, shape: tuple[int, ...]) -> list:
        opts = []
        for p in self.providers:
            if p == "TensorrtExecutionProvider":
                engines = self.cache.root / "ort-trt" / self.digest[:16]
                engines.mkdir(parents=True, exist_ok=True)
                opts.append((p, {"trt_fp16_enable": self.precision == "fp16", "trt_int8_enable": False,
                                 "trt_engine_cache_enable": True, "trt_engine_cache_path": str(engines)}))
            elif p == "CUDAExecutionProvider":
                opts.append((p, {"device_id": self.device.index or 0}))
            else:
                opts.append(p)
        return opts

    @property
    def can_replicate(self) -> bool:
        """On the CPU, sessions of one thread each can run consecutive frames side by side."""
        return self.device.type == "cpu"

    def replica(self, threads: int) -> "OnnxRuntimeBackend":
        """The same model and options with its own sessions of ``threads`` threads."""
        if not self.can_replicate:
            return super().replica(threads)
        twin = copy.copy(self)  # the network, cache and options are only read
        twin.threads, twin.sessions = threads, {}
        return twin

    @property
    def uint8_io(self) -> bool:
        """Whether ``infer_uint8`` runs a graph with the frame conversions inside (not int8:
        the calibrated model is quantized from the float graph)."""
        return self.precision != "int8"

    def session(self, shape: tuple[int, ...], uint8_io: bool = False):
        shape = check_shape(shape, "onnxruntime input")
        sess = self.sessions.get((shape, uint8_io))
        if sess is None:
            with self._build_lock:
                sess = self._build_session(shape, uint8_io)
        return sess

    def _build_session(self, shape: tuple[int, ...], uint8_io: bool):
        sess = self.sessions.get((shape, uint8_io))
        if sess is None:
            so = self.ort.SessionOptions()
            so.intra_op_num_threads = self.threads
            so.inter_op_num_threads = 1
            so.graph_optimization_level = self.ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            so.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.spin else "0")
            path = self.model_path(shape, uint8_io)
            sess = self.ort.InferenceSession(str(path), so, providers=self._provider_options(shape))
            self.sessions[(shape, uint8_io)] = sess
            log.info("onnxruntime session for %s from %s (%s)", shape, path, ", ".join(sess.get_providers()))
        return sess

    def prepare(self, shape: tuple[int, ...]) -> None:
        """Build (or load from the cache) what input ``shape`` needs, ahead of the first frame."""
        self.session(tuple(shape), self.uint8_io)

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        sess = self.session(tuple(x.shape))
        dtype = np.float16 if self.precision == "fp16" else np.float32
        feed = np.ascontiguousarray(x.detach().cpu().numpy().astype(dtype, copy=False))
        (y,) = sess.run(None, {INPUT_NAME: feed})
        return torch.from_numpy(y).float()

    def infer_uint8(self, frames) -> np.ndarray:
        if not self.uint8_io:
            return super().infer_uint8(frames)
        frames = np.ascontiguousarray(frames, dtype=np.uint8)
        n, h, w = frames.shape
        (y,) = self.session((n, 1, h, w), True).run(None, {INPUT_NAME: frames})
        return y

    def close(self) -> None:
        self.sessions.clear()
