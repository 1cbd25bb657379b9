"""Error of every reduced precision against fp32 (and against ground truth, when given).

For each precision the chain runs on the same NIR frames; its uint8 RGB output is compared
with eager fp32's: PSNR and AE between outputs (how much the precision changes the picture),
and, with paired ground truth, each precision's own PSNR and AE against the truth and the
change from fp32's (``dpsnr_gt``: negative is a loss).

fp16 runs where the engine runs it, on CUDA. Without a GPU its error can still be estimated on
the CPU (``cpu_fp16=True``): the chain cast to half runs on PyTorch's CPU fp16 kernels, its
input scaled in fp32 then cast to half, as the CUDA frame path does. They are 30-40x slower than fp32 on a CPU
without native fp16, which is why the engine never uses them; the row's backend says
``eager-cpu-fp16``.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from nirvision.models import NIRColorizerNet
from nirvision.runtime.backends import BackendUnavailable, create_backend, resolve_device
from nirvision.runtime.backends.compare import mean_angular_error, mean_psnr
from nirvision.runtime.frames import from_model_output, to_model_input

log = logging.getLogger(__name__)

# precision -> the backends that run it (each gets its own row: their kernels round differently);
# a backend that cannot run here gives a skipped row with the reason
RUNNERS = {"fp32": ("eager",), "bf16": ("eager", "openvino"), "fp16": ("eager",), "int8": ("onnxruntime", "openvino")}
CACHED = ("onnxruntime", "openvino")  # backends that take the artefact cache folder


@dataclass
class PrecisionError:
    precision: str
    backend: str
    size: str
    frames: int
    psnr_vs_fp32: float | None = None
    ae_vs_fp32: float | None = None
    psnr_gt: float | None = None
    ae_gt: float | None = None
    dpsnr_gt: float | None = None
    skipped: str | None = None

    def to_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


CPU_FP16 = "eager-cpu-fp16"


def run_fp16_on_cpu(net: NIRColorizerNet, frames: np.ndarray) -> np.ndarray:
    """uint8 RGB (N, H, W, 3) of a half-precision copy of the chain on the CPU, one frame at a
    time; the input is scaled in fp32 and cast to half, as ``CudaFramePipeline`` does on the GPU."""
    import copy

    half = copy.deepcopy(net).to("cpu", torch.float16).eval()
    with torch.inference_mode():
        return np.concatenate([from_model_output(half(to_model_input(frames[i : i + 1]).half())) for i in range(len(frames))])


def run_precision(net: NIRColorizerNet, precision: str, frames: np.ndarray, device: str, cache_dir: Path | None, backend: str | None = None) -> np.ndarray:
    """uint8 RGB (N, H, W, 3) of the chain at ``precision``, one frame at a time (as the engine runs)."""
    name = backend or RUNNERS[precision][0]
    if name == CPU_FP16:
        return run_fp16_on_cpu(net, frames)
    options = {"cache_dir": cache_dir} if name in CACHED else {}
    b = create_backend(name, net, device, precision, **options)
    try:
        return np.concatenate([b.infer_uint8(frames[i : i + 1]) for i in range(len(frames))])
    finally:
        b.close()


def precision_report(net: NIRColorizerNet, precisions: list[str], frames: np.ndarray, truth: np.ndarray | None = None,
                     device: str = "cpu", cache_dir: Path | None = None, cpu_fp16: bool = False) -> list[PrecisionError]:
    """One ``PrecisionError`` per precision and backend that runs it (``RUNNERS``; fp32 first,
    as the reference). ``cpu_fp16``: on a CPU device, estimate fp16 on PyTorch's CPU fp16
    kernels instead of skipping it."""
    size = f"{frames.shape[2]}x{frames.shape[1]}"
    ref = run_precision(net, "fp32", frames, device, cache_dir)
    rows = [PrecisionError("fp32", RUNNERS["fp32"][0], size, len(frames), psnr_vs_fp32=None, ae_vs_fp32=0.0)]
    if truth is not None:
        rows[0].psnr_gt, rows[0].ae_gt, rows[0].dpsnr_gt = mean_psnr(ref, truth), mean_angular_error(ref, truth), 0.0
    on_cpu = resolve_device(device).type == "cpu"
    for precision in precisions:
        if precision == "fp32":
            continue
        for runner in (CPU_FP16,) if precision == "fp16" and cpu_fp16 and on_cpu else RUNNERS.get(precision, ("?",)):
            rows.append(_row(net, precision, runner, frames, ref, truth, rows[0], device, cache_dir))
    return rows


def _row(net: NIRColorizerNet, precision: str, runner: str, frames: np.ndarray, ref: np.ndarray, truth: np.ndarray | None,
         fp32: PrecisionError, device: str, cache_dir: Path | None) -> PrecisionError:
    row = PrecisionError(precision, runner, fp32.size, len(frames))
    try:
        with torch.inference_mode():
            out = run_precision(net, precision, frames, device, cache_dir, backend=runner)
    except BackendUnavailable as exc:
        row.skipped = str(exc)
        log.warning("%s on %s: skipped (%s)", precision, runner, exc)
        return row
    row.psnr_vs_fp32, row.ae_vs_fp32 = mean_psnr(out, ref), mean_angular_error(out, ref)
    if truth is not None:
        row.psnr_gt, row.ae_gt = mean_psnr(out, truth), mean_angular_error(out, truth)
        row.dpsnr_gt = row.psnr_gt - fp32.psnr_gt
    return row
