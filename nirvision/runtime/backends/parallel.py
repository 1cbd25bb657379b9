"""Frame-level parallelism on the CPU: K copies of a backend, each running whole frames.

A network this small cannot keep two cores busy inside one frame: many of its operators are
too short to split well, and threads wait for each other between them. Two ONNX Runtime
sessions of one thread each, working on consecutive frames, do better than one session of
two threads (measured for lite on this 2-core CPU, the same run: 1.24x the frames per second at
640x480, 1.67x at 256x256; ``benchmarks/README.md``). The price is latency: each frame takes a
one-thread session's time (60-67 ms at 640x480 instead of 39), and results come back in order.

``FrameParallel`` keeps the one-backend interface: ``submit`` hands a batch to a free copy on
a worker thread (ONNX Runtime releases the GIL while it runs) and ``max_in_flight`` tells the
engine how many frames to keep going; ``infer_uint8`` on N frames spreads them over the copies.
Backends whose copies would share one thread pool (eager and torch.compile on the CPU use
PyTorch's process-wide pool) refuse ``replica`` and so cannot be used here.
"""
from __future__ import annotations

import logging
import os
import queue
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from ...errors import InputError
from .base import Backend, BackendUnavailable, Pending, run_in_order

log = logging.getLogger(__name__)


def resolve_workers(workers: int | str | None, backend: Backend, threads: int | None = None) -> int:
    """How many copies ``workers`` asks for: an integer, or ``auto`` (2 for a CPU backend that
    can be copied when 2 or more threads are at hand, else 1)."""
    if workers is None or workers == "auto":
        threads = threads or getattr(backend, "threads", None) or torch.get_num_threads()
        if backend.device.type != "cpu" or threads < 2 or not getattr(backend, "can_replicate", False):
            return 1
        return 2
    try:
        k = int(workers)
    except (TypeError, ValueError):
        raise InputError(f"workers: expected a positive integer or 'auto', got {workers!r}") from None
    if k < 1:
        raise InputError(f"workers: expected a positive integer or 'auto', got {workers!r}")
    return k


class FrameParallel(Backend):
    """``workers`` copies of ``backend`` (made with ``backend.replica``), sharing ``threads``."""

    def __init__(self, backend: Backend, workers: int, threads: int | None = None):
        if workers < 2:
            raise ValueError(f"FrameParallel: needs 2 or more workers, got {workers}")
        threads = threads or getattr(backend, "threads", None) or torch.get_num_threads()
        per = max(1, threads // workers)
        replicas = [backend.replica(per) for _ in range(workers)]
        super().__init__(getattr(backend, "net", None), backend.device, backend.precision)
        self.name = backend.name
        self.inner = backend
        self.replicas = replicas
        self.workers = workers
        self.threads = per * workers
        self.max_in_flight = workers
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        for r in replicas:
            self._free.put(r)
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="nirvision-infer")
        if workers > (os.cpu_count() or workers):
            log.warning("%d workers on %d CPU cores: they will compete for the cores", workers, os.cpu_count())
        log.info("%s: %d workers of %d thread(s) each, frames in parallel", backend.name, workers, per)

    def _run(self, frames: np.ndarray) -> tuple[np.ndarray, float]:
        replica = self._free.get()
        try:
            start = time.perf_counter()
            out = replica.infer_uint8(frames)
            return out, time.perf_counter() - start
        finally:
            self._free.put(replica)

    def submit(self, frames: np.ndarray) -> Pending:
        return Pending(future=self._pool.submit(self._run, frames))

    def infer_uint8(self, frames) -> np.ndarray:
        frames = np.asarray(frames)
        if frames.ndim != 3 or len(frames) < 2:
            return self._run(frames)[0]
        # a batch: one frame per task, so every copy gets a share
        out = np.empty(frames.shape + (3,), dtype=np.uint8)
        return run_in_order(self.submit, frames, self.max_in_flight, out=out)

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        replica = self._free.get()
        try:
            return replica.infer(x)
        finally:
            self._free.put(replica)

    def prepare(self, shape: tuple[int, ...]) -> None:
        """Build every copy's session for ``shape`` (the first builds the shared cache entry)."""
        for r in self.replicas:
            if hasattr(r, "prepare"):
                r.prepare(shape)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        for r in self.replicas:
            r.close()
        self.inner.close()


def parallel(backend: Backend, workers: int | str | None, threads: int | None = None) -> Backend:
    """``backend`` itself for one worker, else a ``FrameParallel`` of it (BackendUnavailable
    when it cannot be copied)."""
    k = resolve_workers(workers, backend, threads)
    if k == 1:
        return backend
    if not getattr(backend, "can_replicate", False):
        raise BackendUnavailable(f"{backend.name} on {backend.device}: cannot run several frames side by side (workers {k}); "
                                 f"use --workers 1, or --backend onnxruntime or openvino on the CPU")
    return FrameParallel(backend, k, threads)
