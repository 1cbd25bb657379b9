"""Inference backends behind one interface, by name (``--backend``).

eager (PyTorch as is), compile (torch.compile / inductor), onnxruntime (torch.onnx export;
fp32, int8 from ``python -m calibrate``, fp16 on GPU providers), openvino (the same export
on OpenVINO's CPU plugin; fp32, bf16 where the CPU has it natively, int8), tensorrt
(torch-tensorrt, CUDA only), and ``auto``, which picks the fastest usable one and says which. Backends that
need optional packages import them only when built.
"""
from __future__ import annotations

import importlib

import torch

from ...models import NIRColorizerNet
from .base import Backend, BackendInfo, BackendUnavailable
from .eager import EagerBackend

# name -> "module:Class" inside this package, imported when asked for (no work at import)
_LAZY = {
    "compile": "compile:CompileBackend",
    "onnxruntime": "onnxruntime:OnnxRuntimeBackend",
    "openvino": "openvino:OpenVINOBackend",
    "tensorrt": "tensorrt:TensorRTBackend",
}


class _Registry(dict):
    """``BACKENDS[name]`` -> backend class; optional backends' modules load on first access."""

    def __missing__(self, name: str):
        if name not in _LAZY:
            raise KeyError(name)
        module, cls = _LAZY[name].split(":")
        value = getattr(importlib.import_module(f".{module}", __name__), cls)
        self[name] = value
        return value

    def __contains__(self, name) -> bool:
        return dict.__contains__(self, name) or name in _LAZY

    def __iter__(self):
        return iter(self.names())

    def names(self) -> list[str]:
        return list(dict.keys(self)) + [n for n in _LAZY if not dict.__contains__(self, n)]


BACKENDS: dict[str, type[Backend]] = _Registry(eager=EagerBackend)
BACKEND_NAMES = ("auto", "eager", "compile", "onnxruntime", "openvino", "tensorrt")
PRECISIONS = ("fp32", "fp16", "bf16", "int8")


def resolve_precision(precision: str, device: torch.device, backend: str = "auto") -> str:
    """``auto`` -> the reduced precision the hardware runs natively where the backend uses it:
    fp16 on CUDA (TensorRT's FP16); bf16 on a CPU with native bf16 (AMX / AVX-512 BF16) for
    ``backend`` auto or openvino when OpenVINO is installed (measured on real frames: within
    0.005 dB of fp32 against the truth, 1.4-4.8x OpenVINO fp32's speed); fp32 otherwise (int8 is asked for by
    name: it needs calibrating first). Any other name is returned as it is, for the backend to check."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "fp16"
    if backend in ("auto", "openvino"):
        from .openvino import native_bf16

        if native_bf16():
            return "bf16"
    return "fp32"


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``auto`` / None -> CUDA when present, else CPU; a CUDA device that is absent is an error;
    a CUDA device always comes with its index (the current one for plain ``cuda``)."""
    if device is None or str(device) == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise BackendUnavailable(f"device {str(device)!r}: expected auto, cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda"):
        raise BackendUnavailable(f"device {str(device)!r}: nirvision runs on cpu or cuda; expected auto, cpu, cuda or cuda:N")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailable(f"device {device!r}: CUDA is not available here (torch {torch.__version__}, built {'with' if torch.version.cuda else 'without'} CUDA)")
    if dev.type == "cuda" and dev.index is None:  # "cuda" -> "cuda:N": libraries such as torch-tensorrt need the index
        dev = torch.device("cuda", torch.cuda.current_device())
    return dev


def create_backend(name: str, net: NIRColorizerNet, device: str | torch.device | None = "auto", precision: str = "fp32",
                   workers: int | str = 1, infer_scale: float = 1.0, levels: str = "off", levels_band=None, flip_average: bool = False,
                   **options) -> Backend:
    """Build backend ``name`` (or ``auto``) around ``net``; raises ``BackendUnavailable`` with the reason.

    ``precision`` ``auto``: fp16 on CUDA, bf16 for OpenVINO on a CPU with native bf16, else
    fp32 (``resolve_precision``).

    ``workers`` > 1 (or ``auto``: 2 on a CPU with 2 or more threads, where the backend can be
    copied) runs that many copies on consecutive frames side by side (``parallel.FrameParallel``).

    ``infer_scale`` below 1 runs the network at that fraction of each frame's width and height and
    brings the colours back to the frame's size (``scaled.ScaledInference``). ``levels`` auto or
    stretch brings each frame's NIR levels to those of the training images (``levels_band``, a
    ``runtime.levels.LevelsBand``; default the VCIP 2020 training split's) first. ``flip_average``
    averages each frame's colours with those of its mirror image (``flip.FlipAverage``: twice
    the inference, a little closer to the truth).

    ``options`` go to the backend (``cache_dir``, ``providers``, ...); one that no backend of
    ``name`` takes is an ``InputError`` naming it. ``threads`` (1 to ``nirvision.api.MAX_THREADS``)
    applies to every backend: those with threads of their own (onnxruntime, openvino) take it,
    for the others (eager, compile, tensorrt) it sets torch's CPU threads (process-wide).
    """
    import inspect

    from ...api import check_threads
    from ...errors import InputError
    from ..levels import VCIP_BAND
    from .auto import accepted_options
    from .levels import LevelsInference, check_levels
    from .parallel import parallel
    from .scaled import ScaledInference, check_scale

    infer_scale, levels = check_scale(infer_scale), check_levels(levels)  # before anything is built
    if name != "auto" and name not in BACKENDS:
        raise BackendUnavailable(f"backend {name!r} is unknown; expected one of: {', '.join(BACKEND_NAMES)}")
    names = list(BACKENDS) if name == "auto" else [name]
    known = set().union(*(accepted_options(n) for n in names)) | {"threads"}
    if name == "auto":  # and select_backend's own (probe_shape)
        from .auto import select_backend

        known |= set(inspect.signature(select_backend).parameters) - {"net", "device", "precision", "options"}
    any_option = any(p.kind is p.VAR_KEYWORD for n in names for p in inspect.signature(BACKENDS[n].__init__).parameters.values())
    unknown = sorted(k for k in options if k not in known)
    if unknown and not any_option:
        raise InputError(f"backend {name}: unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                         f"expected some of: {', '.join(sorted(known | {'workers', 'infer_scale', 'levels', 'levels_band', 'flip_average'}))}")
    if options.get("threads") is not None:
        options["threads"] = check_threads(options["threads"], "threads")
    else:
        options.pop("threads", None)
    dev = resolve_device(device)
    precision = resolve_precision(precision, dev, name)
    if name == "auto":
        backend = select_backend(net, dev, precision, **options)
    else:
        takes = accepted_options(name)
        backend = BACKENDS[name](net, dev, precision, **{k: v for k, v in options.items() if k != "threads" or k in takes})
    if options.get("threads") is not None and "threads" not in accepted_options(backend.name):
        torch.set_num_threads(options["threads"])  # eager, compile: torch's threads are the backend's
    if workers != 1:
        try:
            wrapped = parallel(backend, workers, options.get("threads"))
        except (BackendUnavailable, ValueError):
            backend.close()
            raise
        if wrapped is not backend and hasattr(backend, "chosen_because"):
            wrapped.chosen_because = backend.chosen_because
        backend = wrapped
    if flip_average:
        from .flip import FlipAverage

        backend = FlipAverage(backend)
    if infer_scale != 1.0:
        backend = ScaledInference(backend, infer_scale)
    if levels != "off":
        backend = LevelsInference(backend, levels, levels_band or VCIP_BAND)
    return backend


__all__ = ["BACKENDS", "BACKEND_NAMES", "Backend", "BackendInfo", "BackendUnavailable", "EagerBackend", "PRECISIONS", "create_backend", "resolve_device", "resolve_precision"]
