"""The CUDA frame path: pinned host buffers, copies overlapped with compute, events not device syncs.

For each frame i, the host copies it into pinned input buffer i % 2 and the copy stream uploads
it, while the compute stream still works on frame i - 1; the compute stream waits on the
upload's event (not on the device), normalises on the GPU, runs the network, converts to uint8
RGB on the GPU and downloads into pinned output buffer i % 2; the host then waits only for
frame i - 1's download event. Buffer reuse is guarded by events: an upload into device buffer b
waits until the compute that read b has finished with it.

With ``double_buffer=False`` each frame is uploaded, computed and downloaded before the next
starts (still with events), which is what the double-buffered path is measured against.
"""
from __future__ import annotations

import logging
from typing import Callable

import numpy as np
import torch

from .base import BackendUnavailable

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
        self.shape: tuple[int, int] | None = None

    def _allocate(self, h: int, w: int) -> None:
        if self.shape == (h, w):
            return
        self.host_in = [torch.empty((1, h, w), dtype=torch.uint8, pin_memory=True) for _ in range(2)]
        self.host_out = [torch.empty((1, h, w, 3), dtype=torch.uint8, pin_memory=True) for _ in range(2)]
        self.dev_in = [torch.empty((1, h, w), dtype=torch.uint8, device=self.device) for _ in range(2)]
        self.uploaded = [torch.cuda.Event() for _ in range(2)]  # dev_in[b] holds the frame
        self.consumed = [torch.cuda.Event() for _ in range(2)]  # compute has read dev_in[b]
        self.downloaded = [torch.cuda.Event() for _ in range(2)]  # host_out[b] holds the result
        self.shape = (h, w)
        log.debug("CUDA pipeline buffers for %dx%d (pinned, double-buffered=%s)", w, h, self.double_buffer)

    def _upload(self, frames: np.ndarray, i: int) -> None:
        b = i % 2
        self.uploaded[b].synchronize()  # the previous upload from host_in[b] has left it
        self.host_in[b].numpy()[0] = frames[i]
        with torch.cuda.stream(self.copy_stream):
            self.copy_stream.wait_event(self.consumed[b])  # no overwrite while compute reads dev_in[b]
            self.dev_in[b].copy_(self.host_in[b], non_blocking=True)
            self.uploaded[b].record(self.copy_stream)

    def _compute(self, forward: Callable[[torch.Tensor], torch.Tensor], i: int) -> None:
        b = i % 2
        with torch.cuda.stream(self.compute_stream):
            self.compute_stream.wait_event(self.uploaded[b])
            x = self.dev_in[b].unsqueeze(1).to(self.dtype).mul_(2.0 / 255.0).sub_(1.0)
            self.consumed[b].record(self.compute_stream)
            y = forward(x)
            rgb = y.float().add_(1.0).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)
            rgb = rgb.permute(0, 2, 3, 1).contiguous()
            self.host_out[b].copy_(rgb, non_blocking=True)
            self.downloaded[b].record(self.compute_stream)

    def _collect(self, out: np.ndarray, i: int) -> None:
        b = i % 2
        self.downloaded[b].synchronize()  # waits for this frame only, not the whole device
        out[i] = self.host_out[b].numpy()[0]

    def run(self, forward: Callable[[torch.Tensor], torch.Tensor], frames: np.ndarray) -> np.ndarray:
        """uint8 NIR (N, H, W) -> uint8 RGB (N, H, W, 3)."""
        frames = np.asarray(frames)
        if frames.ndim != 3 or frames.dtype != np.uint8:
            raise ValueError(f"CUDA pipeline: expected uint8 frames (N, H, W), got {frames.dtype} {frames.shape}")
        n, h, w = frames.shape
        self._allocate(h, w)
        out = np.empty((n, h, w, 3), dtype=np.uint8)
        if n == 0:
            return out
        with torch.inference_mode():
            if not self.double_buffer:
                for i in range(n):
                    self._upload(frames, i)
                    self._compute(forward, i)
                    self._collect(out, i)
                return out
            self._upload(frames, 0)
            for i in range(n):
                self._compute(forward, i)
                if i + 1 < n:
                    self._upload(frames, i + 1)  # overlaps with frame i's compute
                if i > 0:
                    self._collect(out, i - 1)
            self._collect(out, n - 1)
        return out
