"""Eager PyTorch backend: CPU (fp32, bf16) or CUDA (fp32, fp16, bf16).

On CUDA, uint8 frames go through the double-buffered pinned-memory path (``cuda.py``).
On a CPU without native bf16 (AVX-512 BF16 / AMX), bf16 convolutions fall back to slow
reference kernels (measured: several times slower than fp32), so ``auto`` avoids it there.
"""
from __future__ import annotations

import logging

import torch

from ...models import NIRColorizerNet
from .base import Backend, BackendUnavailable, module_on
from .cuda import PipelinedOnCuda
from .hardware import cpu_has_fast_bf16

log = logging.getLogger(__name__)

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def check_precision(device: torch.device, precision: str, backend: str) -> None:
    if precision not in DTYPES:
        raise BackendUnavailable(f"{backend}: precision {precision!r} is not supported; expected one of: {', '.join(DTYPES)}")
    if device.type == "cpu" and precision == "fp16":
        raise BackendUnavailable(f"{backend}: fp16 needs a CUDA device; on the CPU use bf16 or fp32")


class EagerBackend(PipelinedOnCuda, Backend):
    """The network as it is, under autocast for reduced precision."""

    name = "eager"

    def __init__(self, net: NIRColorizerNet, device: torch.device, precision: str = "fp32", double_buffer: bool = True):
        check_precision(device, precision, self.name)
        if device.type == "cpu" and precision == "bf16" and not cpu_has_fast_bf16():
            log.warning("eager bf16: this CPU has no native bf16 (AVX-512 BF16 / AMX); convolutions run on slow fallback kernels")
        super().__init__(module_on(net, device), device, precision)
        self.dtype = DTYPES[precision]
        self.pipeline = None
        if device.type == "cuda":
            from .cuda import CudaFramePipeline

            self.pipeline = CudaFramePipeline(device, torch.float32, double_buffer=double_buffer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The network on a float tensor already on the device."""
        if self.precision == "fp32":
            return self.net(x)
        with torch.autocast(self.device.type, dtype=self.dtype):
            return self.net(x)

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            x = x.to(self.device, non_blocking=True)
            return self.forward(x).float().cpu()

    def infer_uint8(self, frames):
        if self.pipeline is not None:
            return self.pipeline.run(self.forward, frames)
        return super().infer_uint8(frames)
