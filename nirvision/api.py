"""The public Python API: load a colorizer once, call it on NIR frames.

    >>> from nirvision import Colorizer
    >>> colorizer = Colorizer.load()                 # bundled weights, best device
    >>> rgb = colorizer(nir)                         # H x W uint8 -> H x W x 3 uint8 (RGB)
    >>> rgbs = colorizer.colorize_batch([nir1, nir2])

The CLI is built on the same calls.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from .errors import InputError
from .models import NIRColorizerNet, load_model_config, load_networks
from .models.registry import ModelConfig
from .resources import default_weights_path
from .runtime.backends import Backend, create_backend
from .runtime.frames import to_nir

MAX_THREADS = 1024

log = logging.getLogger(__name__)


class WeightsNotFound(FileNotFoundError):
    """No checkpoint was given and none is bundled."""


def build_chain(config: ModelConfig) -> NIRColorizerNet:
    """A freshly initialised inference chain of the given model size."""
    return NIRColorizerNet(config.build("nir_to_gray"), config.build("colorizer"))


def load_chain(weights: str | Path | None = None, model: str | None = None) -> tuple[NIRColorizerNet, ModelConfig, dict]:
    """The inference chain from a checkpoint (``None``: the bundled weights).

    With ``model`` and no weights, a randomly initialised network of that size
    (``lite``, ``paper`` or a YAML path), meant for benchmarks and tests.
    """
    if weights is None and model is not None:
        config = load_model_config(model)
        return build_chain(config), config, {"weights": None}
    path = Path(weights) if weights is not None else default_weights_path()
    if weights is None and not path.is_file():
        raise WeightsNotFound(f"no bundled weights at {path}; pass a checkpoint with --weights (train one with `python -m train`)")
    config, nets, meta = load_networks(path, config=load_model_config(model) if model else None)
    chain = NIRColorizerNet(nets["nir_to_gray"], nets["colorizer"])
    return chain, config, {**meta, "weights": str(path)}


class Colorizer:
    """NIR frames in (uint8, H x W), RGB frames out (uint8, H x W x 3), through one backend."""

    def __init__(self, backend: Backend, config: ModelConfig, meta: dict | None = None):
        self.backend = backend
        self.config = config
        self.meta = meta or {}

    @classmethod
    def load(cls, weights: str | Path | None = None, device: str = "auto", precision: str = "auto", backend: str = "eager", model: str | None = None,
             levels: str = "auto", **backend_options) -> "Colorizer":
        """Load weights (bundled when ``None``) onto ``device`` with ``backend`` at ``precision``
        (``auto``: fp16 on CUDA, fp32 on the CPU). ``levels``: auto (default) brings frames whose
        NIR levels lie outside those of the training images into them, stretch brings every frame
        to them, off leaves frames as they are (``nirvision.runtime.levels``; ``levels_band``, a
        ``LevelsBand``, overrides the band the weights recorded). ``backend_options``
        go to ``create_backend``: ``workers``, ``infer_scale`` (the model at that fraction of each
        frame's size), ``threads``, ..."""
        from .runtime.levels import band_of

        chain, config, meta = load_chain(weights, model)
        band = backend_options.pop("levels_band", None) or (band_of(meta) if levels != "off" else None)
        engine = create_backend(backend, chain, device, precision, levels=levels, levels_band=band, **backend_options)
        log.info("loaded %s model (%s) on %s, backend %s, %s", config.name, meta.get("weights") or "random init", engine.device, engine.name, engine.precision)
        return cls(engine, config, meta)

    def __call__(self, nir: np.ndarray) -> np.ndarray:
        """One frame (H x W, or any image reduced to one channel) or a batch (N x H x W)."""
        if isinstance(nir, np.ndarray) and nir.ndim == 3 and nir.shape[2] not in (1, 3, 4):
            return self.colorize_batch(list(nir))
        return self.colorize_batch([nir])[0]

    def colorize_batch(self, frames: Sequence[np.ndarray] | Iterable[np.ndarray]) -> np.ndarray:
        """Frames of one size -> uint8 RGB array (N, H, W, 3)."""
        nirs = [to_nir(f, name=f"frame {i}") for i, f in enumerate(frames)]
        if not nirs:
            raise ValueError("colorize_batch: no frames given")
        shapes = {f.shape for f in nirs}
        if len(shapes) > 1:
            raise ValueError(f"colorize_batch: frames must share one size, got {sorted(shapes)}")
        return self.backend.infer_uint8(np.stack(nirs))

    def colorize_video(self, source: str | Path, outputs: str | Path | Sequence[str | Path], *, start: float | None = None,
                       end: float | None = None, max_frames: int | None = None, side_by_side: bool = False, audio: bool = True,
                       live: bool | None = None, progress=None, contact_sheet: bool = False, **sink_options) -> dict:
        """Colorize a whole video file, stream or camera (``source`` as ``nirvision colorize``
        takes it) into ``outputs`` (video files, image folders, ``http://HOST:PORT``) through the
        streaming engine; returns the run's summary (frames, drops, FPS, latencies; ``pieces``
        with ``segment``). ``start`` / ``end``: seconds of a video file. ``sink_options``: ``crf``,
        ``preset``, ``threads`` (x264's), ``segment`` (seconds a file), ``keep``. ``progress``: a
        callable given the engine's status now and then. ``contact_sheet``: ``NAME_sheet.png`` beside
        each video output (``nirvision.io.sheet_sink``). The backend stays open for more."""
        from .errors import InputError
        from .io import open_sink, open_source
        from .io.segment_sink import parse_duration
        from .io.specs import check_not_source, check_range_source, opening_order
        from .runtime.engine import Engine, EngineOptions

        specs = [str(outputs)] if isinstance(outputs, (str, Path)) else [str(o) for o in outputs]
        if not specs:
            raise ValueError("colorize_video: no outputs given")
        options = {"max_frames": max_frames, "audio": audio}
        if start is not None or end is not None:  # the command's checks, as usage errors
            check_range_source(str(source), "colorize_video: start / end")
            if end is not None and end <= (start or 0.0):
                raise InputError(f"colorize_video: end {end}: expected a time after start ({start or 0:g} s)")
            options.update(start=start, end=end)
        if sink_options.get("segment") is not None:
            sink_options["segment"] = parse_duration(str(sink_options["segment"]), "segment")
        elif sink_options.get("keep") is not None:
            raise InputError("colorize_video: keep: keeps the newest pieces of a recording cut by segment; expected segment too")
        check_not_source(specs, str(source))
        src = open_source(str(source), live=live, **options)
        sinks = []
        try:
            for spec in opening_order(specs):
                sinks.append(open_sink(spec, src.info, side_by_side=side_by_side, audio=audio, **sink_options))
            if contact_sheet:
                from .io.sheet_sink import sheets_for

                sinks.extend(sheets_for(specs, src.info))
        except BaseException:
            for sink in sinks:
                sink.close()
            src.close()
            raise
        engine_options = EngineOptions(queue_size=2 if src.live else 4, progress=progress)  # as the command: less latency live
        return Engine(src, sinks, self.backend, engine_options).run()  # (it closes the source and the outputs)

    def close(self) -> None:
        self.backend.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def set_threads(threads: int | None) -> None:
    """Use ``threads`` CPU threads for intra-op work (None leaves torch's default)."""
    if threads is None:
        return
    if not 1 <= threads <= MAX_THREADS:
        raise InputError(f"--threads {threads}: expected 1 to {MAX_THREADS} CPU threads (this machine has {os.cpu_count()})")
    torch.set_num_threads(threads)
