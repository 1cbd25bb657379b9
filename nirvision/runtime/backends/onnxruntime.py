"""ONNX Runtime backend: the chain exported with torch.onnx, one session per input shape.

Worker threads do not spin while waiting (``spin=False``): on a 2-core machine shared with
another job, spinning workers made a 2-thread session about 2x slower (measured: 78 vs 152 ms
for lite at 640x480), for a few percent gained on an idle machine.

Precisions: fp32 (CPU, or CUDA / TensorRT execution providers where installed), fp16 (a
half-precision export, on a GPU provider) and int8 (the statically quantized model that
``python -m calibrate`` writes into the artefact cache; see ``export.int8_model_key``).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from ...models import NIRColorizerNet
from ..cache import ArtefactKey, gpu_name
from .base import BackendUnavailable
from .export import INPUT_NAME, OPSET, import_onnx
from .exported import ExportedGraphBackend

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8")
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def trt_engine_key(digest: str, precision: str, gpu: str) -> ArtefactKey:
    """The key of the TensorRT execution provider's engine folder: the weights, the precision,
    the GPU, and (the key's defaults) the installed onnxruntime, TensorRT and torch versions.
    Shape-independent: the provider names each engine by its graph and input shape itself,
    so one folder holds the engines of every size."""
    return ArtefactKey(kind="ort-trt", weights=digest, shape=(), precision=precision, gpu=gpu, extra=f"opset{OPSET}")


def trt_engine_dir(root: Path, key: ArtefactKey) -> Path:
    """Where the provider caches its engines for ``key`` under the artefact cache ``root``."""
    return Path(root) / key.kind / key.digest


def import_onnxruntime():
    """onnxruntime (and onnx, which the export needs), or BackendUnavailable saying how to install them."""
    import_onnx("onnxruntime")
    try:
        import onnxruntime
    except ImportError as exc:
        raise BackendUnavailable(f"onnxruntime: {exc.name} is not installed (pip install 'nirvision[onnx]')") from None
    return onnxruntime


class OnnxRuntimeBackend(ExportedGraphBackend):
    """ONNX Runtime sessions built lazily per input shape from cached ONNX files."""

    name = "onnxruntime"

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
        super().__init__(net, device, precision, cache_dir, threads, int8_model)
        self.ort = ort
        self.providers = providers
        self.spin = spin  # busy-waiting workers: a little faster alone, far slower on a shared CPU
        self.input_dtype = np.float16 if precision == "fp16" else np.float32
        log.info("onnxruntime %s, providers %s, %d threads", ort.__version__, ", ".join(providers), self.threads)

    def _provider_options(self, shape: tuple[int, ...]) -> list:
        opts = []
        for p in self.providers:
            if p == "TensorrtExecutionProvider":
                engines = trt_engine_dir(self.cache.root, trt_engine_key(self.digest, self.precision, gpu_name(self.device)))
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

    def _build(self, shape: tuple[int, ...], uint8_io: bool, path: Path):
        so = self.ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = self.ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.spin else "0")
        sess = self.ort.InferenceSession(str(path), so, providers=self._provider_options(shape))
        log.info("onnxruntime session for %s from %s (%s)", shape, path, ", ".join(sess.get_providers()))
        return sess

    def _run(self, sess, data: np.ndarray) -> np.ndarray:
        (y,) = sess.run(None, {INPUT_NAME: data})
        return y
