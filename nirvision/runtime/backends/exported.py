"""What the backends that run the chain's ONNX export share (ONNX Runtime, OpenVINO).

Both load the cached export of ``export.py`` (for the engine, the graph that takes uint8
frames and returns uint8 RGB; float tensors for ``infer``) or the calibrated int8 model, build
one runner per input shape on first use (an ONNX Runtime session, an OpenVINO infer request),
keeps those of the ``MAX_SIZES`` frame sizes used last (a service fed pictures of ever new sizes
would otherwise hold 8-15 MB a size for good; the ONNX files stay in the cache), and can be
copied with threads of their own for ``parallel.FrameParallel``. A subclass says how to build a
runner from the ONNX file and how to run it.

The calibrated int8 model is quantized for one frame, (1, 1, H, W) (``python -m calibrate``
writes one per size, whatever batch later runs it): a batch of N frames runs it frame by frame.
"""
from __future__ import annotations

import abc
import copy
import logging
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from ...models import NIRColorizerNet
from ..cache import ArtefactCache, weights_hash
from ..frames import from_model_output_numpy, to_model_input_numpy
from .base import Backend
from .export import check_shape, onnx_model

log = logging.getLogger(__name__)

MAX_SIZES = 4  # frame sizes (H x W) whose runners are kept; the least recently used size's go first


class ExportedGraphBackend(Backend):
    """Runners built lazily per (input shape, uint8 graph or not) from cached ONNX files."""

    _build_lock = threading.Lock()  # one export / build at a time, across copies
    input_dtype = np.float32  # what ``infer`` feeds the float graph

    def __init__(self, net: NIRColorizerNet, device: torch.device, precision: str, cache_dir: str | Path | None = None,
                 threads: int | None = None, int8_model: str | Path | None = None):
        # a CPU copy to export from: the caller's network may live on a GPU for another backend
        super().__init__(copy.deepcopy(net).to("cpu").eval(), device, precision)
        self.threads = threads or torch.get_num_threads()
        self.cache = ArtefactCache(cache_dir)
        self.int8_model = Path(int8_model) if int8_model else None
        self.digest = weights_hash(self.net)
        # (input shape, uint8 graph) -> runner, least recently used first
        self.runners: OrderedDict[tuple[tuple[int, ...], bool], object] = OrderedDict()
        self._runners_lock = threading.Lock()

    @property
    def graph_precision(self) -> str:
        """The precision of the ONNX file to load: fp32, fp16 (a half export) or int8 (calibrated)."""
        return self.precision

    @property
    def uint8_io(self) -> bool:
        """Whether ``infer_uint8`` runs the graph with the frame conversions inside (not int8:
        the calibrated model is quantized from the float graph)."""
        return self.precision != "int8"

    def model_path(self, shape: tuple[int, ...], uint8_io: bool = False) -> Path:
        """The ONNX file for ``shape``: cached export (float or uint8 frames in and out), or the
        calibrated int8 model (float in and out)."""
        return onnx_model(self.net, shape, self.graph_precision, self.cache, self.digest, self.name, self.int8_model, uint8_io, self.device)

    def replica(self, threads: int) -> "ExportedGraphBackend":
        """The same model and options with runners of its own, on ``threads`` threads."""
        if not self.can_replicate:
            return super().replica(threads)
        twin = copy.copy(self)  # the network, cache and options are only read
        twin.threads, twin.runners, twin._runners_lock = threads, OrderedDict(), threading.Lock()
        return twin

    @property
    def one_frame_graph(self) -> bool:
        """Whether the graph takes one frame at a time: the int8 model, calibrated for (1, 1, H, W)."""
        return self.graph_precision == "int8"

    def runner(self, shape: tuple[int, ...], uint8_io: bool = False):
        """The runner for input ``shape`` (built, and the ONNX file exported, on first use;
        for the one-frame int8 graph, the runner of one frame of that size)."""
        shape = check_shape(shape, f"{self.name} input")
        if self.one_frame_graph:
            shape = (1, *shape[1:])
        key = (shape, uint8_io)
        found = self._kept(key)
        if found is None:
            with self._build_lock:
                found = self._kept(key)
                if found is None:
                    found = self._build(shape, uint8_io, self.model_path(shape, uint8_io))
                    self._keep(key, found)
        return found

    def _kept(self, key):
        """The runner kept for ``key``, now the most recently used; None if there is none."""
        with self._runners_lock:
            found = self.runners.get(key)
            if found is not None:
                self.runners.move_to_end(key)
            return found

    def _keep(self, key, runner) -> None:
        """Keep ``runner``, and only those of the MAX_SIZES frame sizes used last (a runner in
        use elsewhere lives on until its call returns)."""
        with self._runners_lock:
            self.runners[key] = runner
            sizes = list(dict.fromkeys(k[0][2:] for k in reversed(self.runners)))  # the most recently used first
            for size in sizes[MAX_SIZES:]:
                for k in [k for k in self.runners if k[0][2:] == size]:
                    del self.runners[k]
                log.info("%s: released the runners for %s frames (kept: the %d sizes used last)", self.name,
                         "x".join(map(str, size[::-1])), MAX_SIZES)

    @abc.abstractmethod
    def _build(self, shape: tuple[int, ...], uint8_io: bool, path: Path):
        """A runner of the ONNX file at ``path`` for input ``shape``."""

    @abc.abstractmethod
    def _run(self, runner, data: np.ndarray) -> np.ndarray:
        """The graph's output for ``data``, an array the caller may keep."""

    def prepare(self, shape: tuple[int, ...]) -> None:
        """Build (or load from the cache) what input ``shape`` needs, ahead of the first frame."""
        self.runner(tuple(shape), self.uint8_io)

    def _run_float(self, x: np.ndarray) -> np.ndarray:
        """The float graph's output for ``x`` (N, 1, H, W); the one-frame graph a frame at a time."""
        runner = self.runner(x.shape)
        if self.one_frame_graph and len(x) > 1:
            return np.concatenate([self._run(runner, np.ascontiguousarray(x[i : i + 1])) for i in range(len(x))])
        return self._run(runner, x)

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        feed = np.ascontiguousarray(x.detach().cpu().numpy().astype(self.input_dtype, copy=False))
        return torch.from_numpy(self._run_float(feed)).float()

    def infer_uint8(self, frames) -> np.ndarray:
        frames = np.ascontiguousarray(frames, dtype=np.uint8)
        n, h, w = frames.shape
        if self.uint8_io:
            return self._run(self.runner((n, 1, h, w), True), frames)
        # the float graph (int8): the frame conversions in numpy, not torch, as copies of this
        # backend run on worker threads (see frames.to_model_input_numpy)
        x = to_model_input_numpy(frames).astype(self.input_dtype, copy=False)
        return from_model_output_numpy(self._run_float(x))

    def close(self) -> None:
        with self._runners_lock:
            self.runners.clear()
