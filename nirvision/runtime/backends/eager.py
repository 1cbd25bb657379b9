"""Eager PyTorch backend: CPU (fp32, bf16) or CUDA (fp32, fp16, bf16)."""
from __future__ import annotations

import torch

from ...models import NIRColorizerNet
from .base import Backend, BackendUnavailable

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def check_precision(device: torch.device, precision: str, backend: str) -> None:
    if precision not in DTYPES:
        raise BackendUnavailable(f"{backend}: precision {precision!r} is not supported; expected one of: {', '.join(DTYPES)}")
    if device.type == "cpu" and precision == "fp16":
        raise BackendUnavailable(f"{backend}: fp16 needs a CUDA device; on the CPU use bf16 or fp32")


class EagerBackend(Backend):
    """The network as it is, under autocast for reduced precision."""

    name = "eager"

    def __init__(self, net: NIRColorizerNet, device: torch.device, precision: str = "fp32"):
        check_precision(device, precision, self.name)
        super().__init__(net.to(device).eval(), device, precision)
        self.dtype = DTYPES[precision]

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            x = x.to(self.device, non_blocking=True)
            if self.precision == "fp32":
                y = self.net(x)
            else:
                with torch.autocast(self.device.type, dtype=self.dtype):
                    y = self.net(x)
            return y.float().cpu()
