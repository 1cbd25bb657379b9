"""The one interface every inference backend implements (eager, torch.compile, ONNX Runtime, TensorRT)."""
from __future__ import annotations

import abc
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
import torch

from ...models import NIRColorizerNet


class BackendUnavailable(RuntimeError):
    """The asked-for backend, device or precision cannot run here; the message says why."""


def module_on(net: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``net`` in eval mode on ``device``: the caller's module itself when it and ``device`` are
    both the CPU, else a copy moved there. A backend never moves the module it was given, so
    two backends built from one network (a CUDA one and a CPU reference, say) each keep theirs."""
    p = next(net.parameters(), None)
    if device.type == "cpu" and (p is None or p.device.type == "cpu"):
        return net.eval()
    import copy

    return copy.deepcopy(net).to(device).eval()


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

    ``submit`` starts ``infer_uint8`` on a batch and returns a ``Pending``; up to
    ``max_in_flight`` of them may be outstanding at once, and their results are collected in
    the order they were submitted. Backends that overlap frames (CUDA double buffering,
    ``FrameParallel``) raise ``max_in_flight`` above 1; the rest run at submission.
    """

    name: str = "base"
    max_in_flight: int = 1
    can_replicate: bool = False  # whether ``replica`` works (see ``parallel.FrameParallel``)

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

    def submit(self, frames: np.ndarray) -> "Pending":
        """Start ``infer_uint8(frames)``; the returned ``Pending`` gives its output."""
        start = time.perf_counter()
        out = self.infer_uint8(frames)
        return Pending(value=out, seconds=time.perf_counter() - start)

    def replica(self, threads: int) -> "Backend":
        """An independent copy running on ``threads`` CPU threads, for ``FrameParallel``;
        backends that cannot run side by side in one process raise BackendUnavailable."""
        raise BackendUnavailable(f"{self.name} on {self.device}: cannot run several frames side by side (workers > 1); use --workers 1")

    def close(self) -> None:
        """Release what the backend holds (streams, sessions, engines)."""


class BackendWrapper(Backend):
    """A backend around another (``inner``) that changes frames on the way in or out; what it
    does not define (workers, threads, chosen_because, ...) is the inner backend's."""

    def __init__(self, backend: Backend):
        self.inner = backend
        super().__init__(getattr(backend, "net", None), backend.device, backend.precision)
        self.name = backend.name
        self.max_in_flight = backend.max_in_flight

    def __getattr__(self, attr):
        if attr == "inner":
            raise AttributeError(attr)
        return getattr(self.inner, attr)

    def prepare(self, shape: tuple[int, ...]) -> None:
        if hasattr(self.inner, "prepare"):
            self.inner.prepare(shape)

    def start_stream(self, continuous: bool = True) -> None:
        """The engine starts a run (``continuous``: a video or live stream, not unrelated images).
        None: its frames go to this backend; a wrapper with state of its own for each run
        (``levels.LevelsInference``) returns what to ``submit`` the run's frames to instead."""
        start = getattr(self.inner, "start_stream", None)
        if start is not None:
            start(continuous)

    def close(self) -> None:
        self.inner.close()


def run_in_order(submit, frames: np.ndarray, depth: int, count: int | None = None, out: np.ndarray | None = None) -> np.ndarray | None:
    """Frames ``0 .. count-1`` of ``frames`` (N, H, W; cycled when ``count`` is larger) through
    ``submit`` one at a time (each as a batch of one), as the engine feeds a backend: up to
    ``depth`` in flight before the oldest is collected. Outputs (RGB, H, W, 3) land in order in
    ``out`` when given; returns ``out``."""
    count = len(frames) if count is None else count
    depth = max(1, int(depth))
    pending: deque = deque()
    for i in range(count + depth):
        if pending and (len(pending) >= depth or i >= count):
            j, p = pending.popleft()
            y = p.result()
            if out is not None:
                out[j] = y[0]
        if i < count:
            pending.append((i, submit(frames[i % len(frames)][None])))
    return out


class Pending:
    """A submitted batch: ``result()`` waits for its uint8 RGB output, ``seconds`` is the time its
    inference took (set once the result is in). Either a finished value or a future-like object
    whose ``result()`` returns ``(output, seconds)``."""

    def __init__(self, value: np.ndarray | None = None, seconds: float = 0.0, future=None):
        self._value, self.seconds, self._future = value, seconds, future

    def done(self) -> bool:
        return self._future is None or self._future.done()

    def notify(self, callback) -> bool:
        """Call ``callback()`` once the result is in (now, if it is); False where this kind of
        pending result cannot tell, and the caller must poll ``done``."""
        if self._future is None:
            callback()
        else:
            self._future.add_done_callback(lambda _: callback())
        return True

    def result(self) -> np.ndarray:
        if self._future is not None:
            self._value, self.seconds = self._future.result()
            self._future = None
        return self._value
