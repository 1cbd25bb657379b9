"""Error of every reduced precision against fp32 (and against ground truth, when given).

For each precision the chain runs on the same NIR frames; its uint8 RGB output is compared
with eager fp32's: PSNR and AE between outputs (how much the precision changes the picture),
and, with paired ground truth, each precision's own PSNR and AE against the truth and the
change from fp32's (``dpsnr_gt``: negative is a loss).
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from nirvision.models import NIRColorizerNet
from nirvision.runtime.backends import BackendUnavailable, create_backend
from nirvision.runtime.backends.compare import mean_angular_error, mean_psnr

log = logging.getLogger(__name__)

# precision -> the backend that runs it here
RUNNERS = {"fp32": "eager", "bf16": "eager", "fp16": "eager", "int8": "onnxruntime"}


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


def run_precision(net: NIRColorizerNet, precision: str, frames: np.ndarray, device: str, cache_dir: Path | None, backend: str | None = None) -> np.ndarray:
    """uint8 RGB (N, H, W, 3) of the chain at ``precision``, one frame at a time (as the engine runs)."""
    name = backend or RUNNERS[precision]
    options = {"cache_dir": cache_dir} if name == "onnxruntime" else {}
    b = create_backend(name, net, device, precision, **options)
    try:
        return np.concatenate([b.infer_uint8(frames[i : i + 1]) for i in range(len(frames))])
    finally:
        b.close()


def precision_report(net: NIRColorizerNet, precisions: list[str], frames: np.ndarray, truth: np.ndarray | None = None,
                     device: str = "cpu", cache_dir: Path | None = None) -> list[PrecisionError]:
    """One ``PrecisionError`` per precision (fp32 first, as the reference)."""
    size = f"{frames.shape[2]}x{frames.shape[1]}"
    ref = run_precision(net, "fp32", frames, device, cache_dir)
    rows = [PrecisionError("fp32", RUNNERS["fp32"], size, len(frames), psnr_vs_fp32=None, ae_vs_fp32=0.0)]
    if truth is not None:
        rows[0].psnr_gt, rows[0].ae_gt, rows[0].dpsnr_gt = mean_psnr(ref, truth), mean_angular_error(ref, truth), 0.0
    for precision in precisions:
        if precision == "fp32":
            continue
        row = PrecisionError(precision, RUNNERS.get(precision, "?"), size, len(frames))
        try:
            with torch.inference_mode():
                out = run_precision(net, precision, frames, device, cache_dir)
        except BackendUnavailable as exc:
            row.skipped = str(exc)
            log.warning("%s: skipped (%s)", precision, exc)
            rows.append(row)
            continue
        row.psnr_vs_fp32, row.ae_vs_fp32 = mean_psnr(out, ref), mean_angular_error(out, ref)
        if truth is not None:
            row.psnr_gt, row.ae_gt = mean_psnr(out, truth), mean_angular_error(out, truth)
            row.dpsnr_gt = row.psnr_gt - rows[0].psnr_gt
        rows.append(row)
    return rows
