"""TensorRT backend through torch-tensorrt (an optional extra: ``pip install 'nirvision[trt]'``).

TensorRT 11 builds strongly typed networks: a layer runs in the type of its tensors, and the
old builder flag for FP16 is gone. FP16 therefore comes from a half-precision model: the chain
(with its padding fixed for the input shape) is cast to ``torch.half``, exported with
``torch.export``, and compiled with ``torch_tensorrt.dynamo.compile`` for a half input.
Engines are saved with ``torch_tensorrt.save`` into the artefact cache, keyed by the weights'
hash, input shape, precision, torch / TensorRT / torch-tensorrt versions and the GPU's name,
and loaded back with ``torch_tensorrt.load``. This code follows torch-tensorrt's documented
API (2.x dynamo frontend); it has not been run here (the development machines have no GPU).
"""
from __future__ import annotations

import copy
import inspect
import logging
from pathlib import Path

import torch

from ...models import NIRColorizerNet
from ..cache import ArtefactCache, ArtefactKey, gpu_name, weights_hash
from .base import Backend, BackendUnavailable
from .cuda import CudaFramePipeline, PipelinedOnCuda, require_cuda
from .export import FixedShapeChain, check_shape

log = logging.getLogger(__name__)

PRECISIONS = {"fp16": torch.float16, "fp32": torch.float32}
GRAPH_VERSION = 1  # raise when FixedShapeChain or the networks' code change what an engine computes
SUFFIX = ".pt2"  # what torch.export's archives are named


def import_torch_tensorrt():
    """torch_tensorrt, or BackendUnavailable saying why it cannot be used."""
    try:
        import torch_tensorrt
    except ImportError:
        raise BackendUnavailable("tensorrt: torch-tensorrt is not installed (pip install 'nirvision[trt]'; it needs a CUDA build of torch)") from None
    except Exception as exc:  # noqa: BLE001 - a broken install raises all sorts
        raise BackendUnavailable(f"tensorrt: torch-tensorrt failed to import: {type(exc).__name__}: {exc}") from None
    return torch_tensorrt


def _supported(fn, **kwargs) -> dict:
    """Keep only the keyword arguments that ``fn`` accepts (the API moved between releases)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return kwargs
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return kwargs
    return {k: v for k, v in kwargs.items() if k in params}


class TensorRTBackend(PipelinedOnCuda, Backend):
    """One TensorRT engine per input shape, built once and cached on disk."""

    name = "tensorrt"

    def __init__(self, net: NIRColorizerNet, device: torch.device, precision: str = "fp16", cache_dir: str | Path | None = None,
                 double_buffer: bool = True, workspace_gib: float = 2.0):
        if precision not in PRECISIONS:
            raise BackendUnavailable(f"tensorrt: precision {precision!r} is not supported; expected fp16 or fp32")
        require_cuda(device, "tensorrt")
        self.trt = import_torch_tensorrt()
        super().__init__(copy.deepcopy(net).to("cpu").eval(), device, precision)  # ours to cast and move
        self.dtype = PRECISIONS[precision]
        self.cache = ArtefactCache(cache_dir)
        self.digest = weights_hash(self.net)
        self.workspace = int(workspace_gib * (1 << 30))
        self.modules: dict[tuple[int, ...], torch.nn.Module] = {}
        self.pipeline = CudaFramePipeline(device, self.dtype, double_buffer=double_buffer)

    def key(self, shape: tuple[int, ...]) -> ArtefactKey:
        return ArtefactKey(kind="tensorrt", weights=self.digest, shape=tuple(shape), precision=self.precision,
                           gpu=gpu_name(self.device), extra=f"dynamo-ep-graph{GRAPH_VERSION}")

    def _build(self, shape: tuple[int, ...], path: Path) -> None:
        n, _, h, w = shape
        model = FixedShapeChain(self.net, h, w).eval()
        model = model.to(self.device, self.dtype)  # strongly typed: FP16 comes from the model's own type
        example = torch.zeros(shape, dtype=self.dtype, device=self.device)
        log.info("tensorrt: building a %s engine for input %s on %s (minutes, once)", self.precision, shape, gpu_name(self.device))
        try:
            with torch.no_grad():
                exported = torch.export.export(model, (example,))
                compile_fn = self.trt.dynamo.compile
                kwargs = _supported(compile_fn, arg_inputs=[example], use_explicit_typing=True, min_block_size=1,
                                    workspace_size=self.workspace, device=self.device, require_full_compilation=False)
                trt_module = compile_fn(exported, **kwargs)
                save_kwargs = _supported(self.trt.save, arg_inputs=[example], output_format="exported_program")
                self.trt.save(trt_module, str(path), **save_kwargs)
        finally:
            self.net.to("cpu", torch.float32)

    def _load(self, path: Path) -> torch.nn.Module:
        # torch_tensorrt.load, not torch.export.load: it registers the TensorRT engine op first
        return self.trt.load(str(path)).module()

    def module(self, shape: tuple[int, ...]) -> torch.nn.Module:
        shape = check_shape(shape, "tensorrt input")
        mod = self.modules.get(shape)
        if mod is None:
            loaded: dict[Path, torch.nn.Module] = {}

            def validate(p: Path) -> None:  # a cache entry is trusted once it loads; that load is kept
                loaded[p] = self._load(p)

            path = self.cache.get_or_build(self.key(shape), SUFFIX, lambda p: self._build(shape, p), validate=validate)
            mod = loaded.get(path) or self._load(path)
            self.modules[shape] = mod
        return mod

    def prepare(self, shape: tuple[int, ...]) -> None:
        """Build (or load from the cache) the engine for ``shape`` ahead of the first frame."""
        self.module(tuple(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(tuple(x.shape))(x.to(self.dtype))

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            y = self.forward(x.to(self.device, non_blocking=True))
            return y.float().cpu()

    def infer_uint8(self, frames):
        return self.pipeline.run(self.forward, frames)

    def close(self) -> None:
        self.modules.clear()
