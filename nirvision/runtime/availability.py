"""What can run here: versions, devices, and each backend's availability with the reason."""
from __future__ import annotations

import importlib.metadata
import os
import platform

import torch

from .. import __version__
from ..resources import default_weights_path


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def cuda_status() -> tuple[bool, str]:
    if torch.version.cuda is None:
        return False, f"torch {torch.__version__} is a CPU-only build"
    if not torch.cuda.is_available():
        return False, f"torch built with CUDA {torch.version.cuda}, but no CUDA device is visible"
    return True, f"{torch.cuda.device_count()} device(s), CUDA {torch.version.cuda}"


def _onnx_status(backend: str) -> tuple[bool, str]:
    """Whether onnx imports (the export both ONNX runtimes load needs it), as the backends check."""
    from .backends.base import BackendUnavailable
    from .backends.export import import_onnx

    try:
        import_onnx(backend)
    except BackendUnavailable as exc:
        return False, str(exc).removeprefix(f"{backend}: ")
    return True, ""


def onnxruntime_status() -> tuple[bool, str]:
    try:
        import onnxruntime as ort
    except ImportError:
        return False, "onnxruntime is not installed (pip install 'nirvision[onnx]')"
    ok, why = _onnx_status("onnxruntime")
    if not ok:
        return False, why
    return True, f"onnxruntime {ort.__version__}, providers: {', '.join(ort.get_available_providers())}"


def openvino_status() -> tuple[bool, str]:
    from .backends.base import BackendUnavailable
    from .backends.openvino import cpu_capabilities, import_openvino

    try:
        openvino = import_openvino()
    except BackendUnavailable as exc:
        return False, str(exc).removeprefix("openvino: ")
    ok, why = _onnx_status("openvino")
    if not ok:
        return False, why
    caps = cpu_capabilities(openvino.Core())
    bf16 = "bf16 native (AMX / AVX-512 BF16)" if "BF16" in caps else "no native bf16 here"
    return True, f"openvino {_version('openvino')} CPU plugin: fp32, {bf16}, int8 from `python -m calibrate` ({', '.join(sorted(caps))})"


def tensorrt_status() -> tuple[bool, str]:
    ok, why = cuda_status()
    if not ok:
        return False, f"needs CUDA: {why}"
    try:
        import torch_tensorrt
    except ImportError:
        return False, "torch-tensorrt is not installed (pip install 'nirvision[trt]')"
    except Exception as exc:  # noqa: BLE001 - a broken install raises all sorts
        return False, f"torch-tensorrt failed to import: {exc}"
    return True, f"torch-tensorrt {torch_tensorrt.__version__}"


def compile_status() -> tuple[bool, str]:
    if not hasattr(torch, "compile"):
        return False, "this torch has no torch.compile"
    return True, f"torch.compile (inductor) with torch {torch.__version__}; compiles once per input size (minutes on 2 cores)"


def bf16_status() -> tuple[bool, str]:
    from .backends.hardware import cpu_has_fast_bf16

    if cpu_has_fast_bf16():
        return True, "CPU has native bf16 (AVX-512 BF16 / AMX)"
    return False, "CPU has no native bf16 (AVX-512 BF16 / AMX): bf16 runs on slow fallback kernels; auto will not pick it"


def int8_status() -> tuple[bool, str]:
    ok, why = onnxruntime_status()
    if not ok:
        return False, why
    threads = torch.get_num_threads()
    workers = (f"--workers auto on the CPU: 2 sessions of {threads // 2} thread(s) on consecutive frames" if threads >= 2
               else "--workers auto on the CPU: 1 session (one thread)")
    return True, why + f"; int8 from `python -m calibrate` (one model per input size); {workers}"


def defaults() -> dict:
    """What ``--backend auto --device auto --precision auto --workers auto`` become here: the
    backend ``auto`` builds for a lite chain (sessions and engines are built on the first
    frame, so this is quick), or the reason none can run."""
    from ..models.registry import load_model_config
    from .backends import create_backend, resolve_device, resolve_precision

    device = resolve_device("auto")
    precision = resolve_precision("auto", device)
    out = {"device": str(device), "precision": precision}
    try:
        from ..api import build_chain

        backend = create_backend("auto", build_chain(load_model_config("lite")), device, precision, workers="auto")
    except Exception as exc:  # noqa: BLE001 - reported, not raised: info must always answer
        out["backend"], out["why"] = None, f"{type(exc).__name__}: {exc}"
        return out
    out.update(backend=backend.name, workers=getattr(backend, "workers", 1), why=getattr(backend, "chosen_because", ""))
    backend.close()
    return out


def report() -> dict:
    cuda_ok, cuda_why = cuda_status()
    devices = [f"cpu: {platform.processor() or platform.machine()}, {os.cpu_count()} logical cores, torch threads {torch.get_num_threads()}"]
    if cuda_ok:
        devices += [f"cuda:{i}: {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())]
    else:
        devices.append(f"cuda: none ({cuda_why})")
    backends = {}
    for name, fn in (("eager", lambda: (True, "PyTorch eager, fp32 / bf16 on CPU" + (", fp16 on CUDA" if cuda_ok else "") + "; " + bf16_status()[1])),
                     ("compile", compile_status), ("onnxruntime", int8_status), ("openvino", openvino_status), ("tensorrt", tensorrt_status), ("cuda", lambda: (cuda_ok, cuda_why))):
        ok, why = fn()
        backends[name] = {"usable": ok, "detail": why}
    weights = default_weights_path()
    return {
        "versions": {
            "nirvision": __version__,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": _version("numpy"),
            "opencv": _version("opencv-python") or _version("opencv-python-headless"),
            "av": _version("av"),
            "onnxruntime": _version("onnxruntime"),
            "openvino": _version("openvino"),
            "torch-tensorrt": _version("torch-tensorrt") or _version("torch_tensorrt"),
        },
        "devices": devices,
        "backends": backends,
        "bundled_weights": str(weights) if weights.is_file() else f"none (expected at {weights})",
        "bundled_levels": _levels_of(weights),
        "defaults": defaults(),
    }


def _levels_of(weights) -> dict | None:
    """The NIR levels of the training images that a checkpoint recorded (what ``--levels`` uses), or None."""
    if not weights.is_file():
        return None
    from ..models.checkpoint import CheckpointError, read_checkpoint
    from .levels import band_of

    try:
        meta = read_checkpoint(weights).get("meta") or {}
        return band_of({**meta, "weights": str(weights)}).to_dict() if meta.get("nir_levels") else None
    except CheckpointError:
        return None
