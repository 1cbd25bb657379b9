"""INT8 post-training static quantization of the exported chain with ONNX Runtime.

The fp32 ONNX model for one input shape is pre-processed (shape inference, graph optimisation),
then quantized to QDQ form with activations calibrated on real NIR frames. Weights are int8 per
channel; activations uint8. ``reduce_range`` keeps weights to 7 bits, which ONNX Runtime advises
on x86 CPUs without VNNI (their u8 x s8 instruction can saturate). The result goes into the
artefact cache under the key that the ``onnxruntime`` backend looks up for ``--precision int8``.
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import torch

from nirvision.models import NIRColorizerNet
from nirvision.runtime.backends.export import INPUT_NAME, cached_onnx, int8_model_key
from nirvision.runtime.backends.onnxruntime import import_onnxruntime
from nirvision.runtime.cache import ArtefactCache
from nirvision.runtime.frames import to_model_input

log = logging.getLogger(__name__)


def cpu_has_vnni() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_vnni" in flags or "avx_vnni" in flags


class _QuietPerChannelNotes(logging.Filter):
    """ONNX Runtime's quantizer logs, on the root logger, a warning per InstanceNorm scale that
    per-channel quantization does not apply to; those tensors stay per-tensor, as intended."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "is out-of-range for weight" not in record.getMessage()


class FrameReader:
    """Feeds NIR frames (N, H, W) uint8 one at a time to ONNX Runtime's calibrator."""

    def __init__(self, frames: np.ndarray):
        self.frames = frames
        self.index = 0

    def get_next(self):
        if self.index >= len(self.frames):
            return None
        x = to_model_input(self.frames[self.index : self.index + 1]).numpy()
        self.index += 1
        return {INPUT_NAME: x}

    def rewind(self):
        self.index = 0


def quantize_int8(net: NIRColorizerNet, frames: np.ndarray, cache: ArtefactCache | None = None, method: str = "minmax",
                  per_channel: bool = True, reduce_range: bool | None = None, exclude_ops: tuple[str, ...] = ()) -> Path:
    """Calibrate on ``frames`` (N, H, W) uint8 and store the int8 model for input (1, 1, H, W).

    ``method``: ``minmax`` or ``percentile`` (99.999th, robust to outlier activations) or
    ``entropy``. ``exclude_ops``: op types left in float (e.g. ``("ConvTranspose",)``).
    """
    ort = import_onnxruntime()
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quant_pre_process, quantize_static

    if frames.ndim != 3 or frames.dtype != np.uint8:
        raise ValueError(f"calibration frames: expected uint8 (N, H, W), got {frames.dtype} {frames.shape}")
    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile, "entropy": CalibrationMethod.Entropy}
    if method not in methods:
        raise ValueError(f"calibration method {method!r}: expected one of {', '.join(methods)}")
    if reduce_range is None:
        reduce_range = not cpu_has_vnni()
    cache = cache or ArtefactCache()
    shape = (1, 1, frames.shape[1], frames.shape[2])
    fp32_path = cached_onnx(net, shape, "fp32", cache)
    key = int8_model_key(net, shape)

    def write(out: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="nirvision-quant-") as tmp:
            pre = Path(tmp) / "pre.onnx"
            quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
            ops = None
            if exclude_ops:
                import onnx

                ops = sorted({n.op_type for n in onnx.load(str(pre)).graph.node} - set(exclude_ops))
            extra = {"CalibTensorRangeSymmetric": False}
            if method == "percentile":
                extra["CalibPercentile"] = 99.999
            quiet = _QuietPerChannelNotes()
            logging.getLogger().addFilter(quiet)
            try:
                quantize_static(
                    str(pre), str(out), FrameReader(frames), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                    reduce_range=reduce_range, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=methods[method], op_types_to_quantize=ops, extra_options=extra,
                )
            finally:
                logging.getLogger().removeFilter(quiet)
        log.info("quantized %s to int8 on %d frames (%s, per_channel=%s, reduce_range=%s, onnxruntime %s)",
                 fp32_path.name, len(frames), method, per_channel, reduce_range, ort.__version__)

    existing = cache.path(key, ".onnx")
    if existing.exists():
        cache.remove(existing)  # a new calibration replaces the old one
    with torch.inference_mode(False):
        return cache.store(key, ".onnx", write)
