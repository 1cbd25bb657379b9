"""The one interface every inference backend implements (eager, torch.compile, ONNX Runtime, TensorRT)."""
from __future__ import annotations

import abc
from dataclasses import dataclass

import torch

from ...models import NIRColorizerNet


class BackendUnavailable(RuntimeError):
    """The asked-for backend, device or precision cannot run here; the message says why."""


@dataclass
class BackendInfo:
    name: str
    device: str
    precision: str


class Backend(abc.ABC):
    """Runs the NIR -> RGB chain on batches.

    ``infer`` takes a float32 CPU tensor (N, 1, H, W) of NIR in [-1, 1] and returns a float32
    CPU tensor (N, 3, H, W) of RGB in [-1, 1]. Backends that can do better (pinned memory,
    overlapped copies) override ``infer_uint8``, which the engine and API call with uint8
    frames (N, H, W) and which returns uint8 RGB (N, H, W, 3).
    """

    name: str = "base"

    def __init__(self, net: NIRColorizerNet, device: torch.device, precision: str):
        self.net = net
        self.device = device
        self.precision = precision

    @property
    def info(self) -> BackendInfo:
        return BackendInfo(self.name, str(self.device), self.precision)

    @abc.abstractmethod
    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """NIR (N, 1, H, W) float32 in [-1, 1] -> RGB (N, 3, H, W) float32 in [-1, 1], on the CPU."""

    def infer_uint8(self, frames) -> "numpy.ndarray":  # noqa: F821
        from ..frames import from_model_output, to_model_input

        return from_model_output(self.infer(to_model_input(frames)))

    def close(self) -> None:
        """Release what the backend holds (streams, sessions, engines)."""
