"""torch.compile backend (inductor): fused kernels, frozen weights, one graph per input shape.

On the CPU the graph is compiled with inductor's ``freezing`` (weights become constants, so
convolutions get oneDNN's pre-packed weights) and, optionally, channels-last activations.
bf16 runs under autocast inside the compiled graph; it is fast only on CPUs with native bf16
(AVX-512 BF16 or AMX); elsewhere eager bf16 convolutions fall back to slow reference kernels,
so ``auto`` does not choose bf16 there (see ``hardware.cpu_has_fast_bf16``).
"""
from __future__ import annotations

import logging

import torch

from ...models import NIRColorizerNet
from .base import Backend, BackendUnavailable, module_on
from .cuda import CudaFramePipeline, PipelinedOnCuda
from .eager import DTYPES, check_precision
from .hardware import cpu_has_fast_bf16

log = logging.getLogger(__name__)


class CompileBackend(PipelinedOnCuda, Backend):
    """``torch.compile(net)`` with inductor; compiles on the first frame of each shape."""

    name = "compile"

    def __init__(self, net: NIRColorizerNet, device: torch.device, precision: str = "fp32", mode: str | None = None,
                 channels_last: bool = False, freezing: bool = True, double_buffer: bool = True):
        check_precision(device, precision, self.name)
        if not hasattr(torch, "compile"):
            raise BackendUnavailable(f"compile: torch {torch.__version__} has no torch.compile")
        if device.type == "cpu" and precision == "bf16" and not cpu_has_fast_bf16():
            log.warning("compile bf16: this CPU has no native bf16 (AVX-512 BF16 / AMX); expect it to be slower than fp32")
        super().__init__(module_on(net, device), device, precision)
        self.dtype = DTYPES[precision]
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.channels_last = channels_last
        options = None
        if device.type == "cpu":  # torch.compile takes a mode or options, not both: the mode's options + freezing
            options = {**(torch._inductor.list_mode_options(mode) if mode else {}), "freezing": freezing}
            mode = None
        self.compiled = torch.compile(self.net, mode=mode, dynamic=False, fullgraph=False, options=options)
        self.shapes: set[tuple[int, ...]] = set()
        self.pipeline = None
        if device.type == "cuda":
            self.pipeline = CudaFramePipeline(device, torch.float32, double_buffer=double_buffer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The compiled network on a float tensor already on the device."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.precision == "fp32":
            return self.compiled(x)
        with torch.autocast(self.device.type, dtype=self.dtype):
            return self.compiled(x)

    def prepare(self, shape: tuple[int, ...]) -> None:
        """Compile for input ``shape`` now rather than on the first frame."""
        self.infer(torch.zeros(shape))

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        shape = tuple(x.shape)
        if shape not in self.shapes:
            log.info("compile: compiling for input %s (%s) on %s; this takes a while once", shape, self.precision, self.device)
            self.shapes.add(shape)
        with torch.inference_mode():
            return self.forward(x.to(self.device, non_blocking=True)).float().cpu()

    def infer_uint8(self, frames):
        if self.pipeline is not None:
            return self.pipeline.run(self.forward, frames)
        return super().infer_uint8(frames)
