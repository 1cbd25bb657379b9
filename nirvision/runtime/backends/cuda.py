"""The CUDA frame path: pinned host buffers, copies overlapped with compute, events not device syncs.

``submit`` takes one frame at a time, so the engine's frames overlap too. For each frame i, the
host copies it into pinned input buffer i % 2 and the copy stream uploads it, while the compute
stream still works on frame i - 1; the compute stream waits on the
upload's event (not on the device), normalises on the GPU, runs the network, converts to uint8
RGB on the GPU and downloads into pinned output buffer i % 2; the host then waits only for
frame i - 1's download event. Buffer reuse is guarded by events: an upload into device buffer b
waits until the compute that read b has finished with it.

With ``double_buffer=False`` each frame is uploaded, computed and downloaded before the next
starts (still with events), which is what the double-buffered path is measured against.
"""
from __future__ import annotations

import logging
import time
from typing import Callable

import numpy as np
import torch

from .base import BackendUnavailable, run_in_order

log = logging.getLogger(__name__)


def require_cuda(device: torch.device, what: str) -> None:
    """BackendUnavailable unless ``device`` is a CUDA device that is present."""
    if not torch.cuda.is_available():
        built = f"built with CUDA {torch.version.cuda} but no GPU is visible" if torch.version.cuda else "a CPU-only build"
        raise BackendUnavailable(f"{what}: needs a CUDA GPU, and CUDA is not available here (torch {torch.__version__}, {built})")
    if device.type != "cuda":
        raise BackendUnavailable(f"{what}: needs a CUDA device, got {device} (pass --device cuda)")


class CudaFramePipeline:
    """Runs ``forward`` (a float (1, 1, H, W) CUDA tensor in [-1, 1] -> (1, 3, H, W)) over uint8 frames."""

    def __init__(self, device: torch.device, dtype: torch.dtype = torch.float32, double_buffer: bool = True):
        require_cuda(device, "CUDA frame pipeline")
        self.device = device
        self.dtype = dtype
        self.double_buffer = double_buffer
        self.copy_stream = torch.cuda.Stream(device)
        self.compute_stream = torch.cuda.Stream(device)
        for stream in (self.copy_stream, self.compute_stream):  # after whatever the default stream has queued (weights)
            stream.wait_stream(torch.cuda.current_stream(device))
        self.shape: tuple[int, int] | None = None
        self._slots: list[CudaPending | None] = [None, None]  # the frame whose output each host_out buffer holds
        self._count = 0

    def _allocate(self, h: int, w: int) -> None:
        if self.shape == (h, w):
            return
        self.host_in = [torch.empty((1, h, w), dtype=torch.uint8, pin_memory=True) for _ in range(2)]
        self.host_out = [torch.empty((1, h, w, 3), dtype=torch.uint8, pin_memory=True) for _ in range(2)]
        self.dev_in = [torch.empty((1, h, w), dtype=torch.uint8, device=self.device) for _ in range(2)]
        # blocking: a host waiting on these sleeps instead of spinning a core the reader and writer need
        self.uploaded = [torch.cuda.Event(blocking=True) for _ in range(2)]  # dev_in[b] holds the frame
        self.consumed = [torch.cuda.Event() for _ in range(2)]  # compute has read dev_in[b] (waited on by the GPU only)
        self.downloaded = [torch.cuda.Event(blocking=True) for _ in range(2)]  # host_out[b] holds the result
        self.shape = (h, w)
        log.debug("CUDA pipeline buffers for %dx%d (pinned, double-buffered=%s)", w, h, self.double_buffer)

    def _upload(self, frame: np.ndarray, b: int) -> None:
        self.uploaded[b].synchronize()  # the previous upload from host_in[b] has left it
        self.host_in[b].numpy()[0] = frame
        with torch.cuda.stream(self.copy_stream):
            self.copy_stream.wait_event(self.consumed[b])  # no overwrite while compute reads dev_in[b]
            self.dev_in[b].copy_(self.host_in[b], non_blocking=True)
            self.uploaded[b].record(self.copy_stream)

    def _compute(self, forward: Callable[[torch.Tensor], torch.Tensor], b: int) -> None:
        with torch.cuda.stream(self.compute_stream):
            self.compute_stream.wait_event(self.uploaded[b])
            # scaled in fp32 then cast, as frames.to_model_input does: one rounding, not two, in fp16
            x = self.dev_in[b].unsqueeze(1).to(torch.float32).mul_(2.0 / 255.0).sub_(1.0).to(self.dtype)
            self.consumed[b].record(self.compute_stream)
            y = forward(x)
            rgb = y.float().add_(1.0).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)
            rgb = rgb.permute(0, 2, 3, 1).contiguous()
            self.host_out[b].copy_(rgb, non_blocking=True)
            self.downloaded[b].record(self.compute_stream)

    @property
    def max_in_flight(self) -> int:
        return 2 if self.double_buffer else 1

    def submit(self, forward: Callable[[torch.Tensor], torch.Tensor], frame: np.ndarray) -> "CudaPending":
        """Upload one uint8 frame (H, W) on the copy stream and queue its compute and download
        behind the previous frame's; returns at once. With double buffering the next frame's
        upload overlaps this one's compute; without, the frame is finished before returning."""
        frame = np.asarray(frame)
        if frame.ndim == 3 and frame.shape[0] == 1:
            frame = frame[0]
        if frame.ndim != 2 or frame.dtype != np.uint8:
            raise ValueError(f"CUDA pipeline: expected a uint8 frame (H, W), got {frame.dtype} {frame.shape}")
        h, w = frame.shape
        if self.shape != (h, w):
            self._drain()  # buffers of the old size are still in use by frames in flight
            self._allocate(h, w)
        b = self._count % 2
        if self._slots[b] is not None:  # the frame two back still owns host_out[b]: fetch it first
            self._slots[b].wait()
        self._count += 1
        with torch.inference_mode():
            self._upload(frame, b)
            self._compute(forward, b)
        pending = CudaPending(self, b)
        self._slots[b] = pending
        if not self.double_buffer:
            pending.wait()
        return pending

    def _drain(self) -> None:
        for p in self._slots:
            if p is not None:
                p.wait()

    def run(self, forward: Callable[[torch.Tensor], torch.Tensor], frames: np.ndarray) -> np.ndarray:
        """uint8 NIR (N, H, W) -> uint8 RGB (N, H, W, 3), at most two frames in flight."""
        frames = np.asarray(frames)
        if frames.ndim != 3 or frames.dtype != np.uint8:
            raise ValueError(f"CUDA pipeline: expected uint8 frames (N, H, W), got {frames.dtype} {frames.shape}")
        out = np.empty(frames.shape + (3,), dtype=np.uint8)
        return run_in_order(lambda f: self.submit(forward, f), frames, self.max_in_flight, out=out)


class CudaPending:
    """One frame in the CUDA pipeline; ``result()`` waits for its download event only."""

    def __init__(self, pipeline: CudaFramePipeline, slot: int):
        self.pipeline, self.slot = pipeline, slot
        self.start = time.perf_counter()
        self.seconds = 0.0
        self._value: np.ndarray | None = None

    def done(self) -> bool:
        return self._value is not None or self.pipeline.downloaded[self.slot].query()

    def wait(self) -> None:
        if self._value is None:
            self.pipeline.downloaded[self.slot].synchronize()  # this frame only, not the whole device
            self._value = self.pipeline.host_out[self.slot].numpy().copy()
            self.seconds = time.perf_counter() - self.start
            if self.pipeline._slots[self.slot] is self:
                self.pipeline._slots[self.slot] = None

    def result(self) -> np.ndarray:
        """uint8 RGB (1, H, W, 3)."""
        self.wait()
        return self._value


class PipelinedOnCuda:
    """For backends with a ``pipeline`` (None off CUDA) and ``forward``: single frames go
    through ``CudaFramePipeline.submit``, so the engine keeps two frames in flight."""

    pipeline: CudaFramePipeline | None

    @property
    def max_in_flight(self) -> int:
        return self.pipeline.max_in_flight if self.pipeline is not None else 1

    def submit(self, frames: np.ndarray):
        frames = np.asarray(frames)
        if self.pipeline is not None and frames.ndim == 3 and len(frames) == 1:
            return self.pipeline.submit(self.forward, frames[0])
        return super().submit(frames)
