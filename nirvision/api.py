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
import threading
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from .errors import InputError
from .models import NIRColorizerNet, load_model_config, load_networks
from .models.registry import ModelConfig
from .resources import default_weights_path
from .runtime.backends import Backend, create_backend
from .runtime.frames import SampleDepth, check_input_bits, to_nir

MAX_THREADS = 1024

log = logging.getLogger(__name__)


class WeightsNotFound(FileNotFoundError):
    """No checkpoint was given and none is bundled."""


def build_chain(config: ModelConfig) -> NIRColorizerNet:
    """A freshly initialised inference chain of the given model size."""
    return NIRColorizerNet(config.build("nir_to_gray"), config.build("colorizer"))


def check_weights_path(weights) -> str | os.PathLike:
    """``weights`` as a path (bytes decoded as the file system does), or an InputError for
    ``weights`` that cannot name a checkpoint file: not a path (the message never holds the
    data: a checkpoint's bytes are megabytes), empty, a folder."""
    if isinstance(weights, bytes) and len(weights) <= 4096 and not any(c in weights for c in b"\0\n"):  # a path as os.fsencode gives it
        weights = os.fsdecode(weights)
    if not isinstance(weights, (str, os.PathLike)):
        in_memory = isinstance(weights, (bytes, bytearray, memoryview))
        if in_memory or hasattr(weights, "read"):
            what = f"({len(weights)} bytes)" if in_memory else f"(a file object, {type(weights).__name__})"
            raise InputError(f"weights {what}: expected a path to a checkpoint file; checkpoints in memory and file objects "
                             "are not supported (write them to a file first)")
        what = repr(weights) if len(repr(weights)) <= 60 else f"(a {type(weights).__name__})"
        raise InputError(f"weights {what}: expected a path to a checkpoint file")
    if str(weights).strip() == "":
        raise InputError(f"weights {str(weights)!r}: empty path; expected a checkpoint file")
    if Path(weights).is_dir():
        raise InputError(f"weights {weights}: is a folder, expected a checkpoint file")
    return weights


def load_chain(weights: str | Path | None = None, model: str | None = None) -> tuple[NIRColorizerNet, ModelConfig, dict]:
    """The inference chain from a checkpoint (``None``: the bundled weights).

    With ``model`` and no weights, a randomly initialised network of that size
    (``lite``, ``paper`` or a YAML path), meant for benchmarks and tests.
    """
    if weights is None and model is not None:
        config = load_model_config(model)
        return build_chain(config), config, {"weights": None}
    if weights is not None:
        weights = check_weights_path(weights)
    path = Path(weights) if weights is not None else default_weights_path()
    if weights is None and not path.is_file():
        raise WeightsNotFound(f"no bundled weights at {path}; pass a checkpoint with --weights (train one with `python -m train`)")
    config, nets, meta = load_networks(path, config=load_model_config(model) if model else None)
    chain = NIRColorizerNet(nets["nir_to_gray"], nets["colorizer"])
    return chain, config, {**meta, "weights": str(path)}


BATCH_PIXELS = 4_000_000  # colorize_batch's chunk: 13 frames of 640x480, 2 of 1080p (about 360 MB of activations)


class Colorizer:
    """NIR frames in (uint8, H x W), RGB frames out (uint8, H x W x 3), through one backend."""

    def __init__(self, backend: Backend, config: ModelConfig, meta: dict | None = None, input_bits: int | str | None = None):
        self.backend = backend
        self.config = config
        self.meta = meta or {}
        self.depth = SampleDepth(input_bits, name="frames")  # 16-bit frames: how many bits hold the picture

    @classmethod
    def load(cls, weights: str | Path | None = None, device: str = "auto", precision: str = "auto", backend: str = "eager", model: str | None = None,
             levels: str = "auto", input_bits: int | str | None = None, **backend_options) -> "Colorizer":
        """Load weights (bundled when ``None``) onto ``device`` with ``backend`` at ``precision``
        (``auto``: fp16 on CUDA, fp32 on the CPU). ``levels``: auto (default) brings frames whose
        NIR levels lie outside those of the training images into them, stretch brings every frame
        to them, off leaves frames as they are (``nirvision.runtime.levels``; ``levels_band``, a
        ``LevelsBand``, overrides the band the weights recorded). ``input_bits``: the bits that hold
        the picture in 16-bit frames (10, 12, 14, 16; None or "auto": the smallest that holds the
        largest value seen, ``nirvision.runtime.frames.SampleDepth``). ``backend_options``
        go to ``create_backend``: ``workers``, ``infer_scale`` (the model at that fraction of each
        frame's size), ``flip_average``, ``threads`` (CPU threads for inference, 1 to ``MAX_THREADS``:
        onnxruntime's and openvino's own, else torch's, process-wide), ``cache_dir``, ...; an
        option no backend of that name takes is an ``InputError`` naming it. ``weights``: a path
        (str, bytes or ``os.PathLike``). onnxruntime and openvino (and ``auto`` when it picks
        them) build a model for each frame size, seconds each, and keep those of the 4 sizes
        used last (``runtime.backends.exported.MAX_SIZES``; the exports stay in the cache): for
        frames of ever new sizes, ``backend="eager"`` runs any size at once."""
        from .runtime.levels import band_of

        check_input_bits(input_bits)
        chain, config, meta = load_chain(weights, model)
        band = backend_options.pop("levels_band", None) or (band_of(meta) if levels != "off" else None)
        engine = create_backend(backend, chain, device, precision, levels=levels, levels_band=band, **backend_options)
        log.info("loaded %s model (%s) on %s, backend %s, %s", config.name, meta.get("weights") or "random init", engine.device, engine.name, engine.precision)
        return cls(engine, config, meta, input_bits=input_bits)

    def __call__(self, nir: np.ndarray, *, batch: bool | None = None) -> np.ndarray:
        """One frame -> H x W x 3, or a batch -> N x H x W x 3.

        One frame: H x W, or H x W x 1/3/4 (reduced to one channel). A batch: N x H x W, or
        N x H x W x C. Without ``batch``, a 3-D array is one image when its last axis is 1, 3 or 4
        (gray, RGB, RGBA), else a batch of N frames; an H x W x 2 array is refused (two channels
        are neither gray, RGB nor RGBA); a 4-D array is a batch. ``batch=True`` / ``False`` says
        which it is (an N x H x W batch of frames 1, 3 or 4 pixels wide needs ``batch=True``)."""
        if batch is not None and not isinstance(batch, bool):
            raise InputError(f"batch {batch!r}: expected True (the first axis counts frames), False (one image) or None (guess)")
        if isinstance(nir, np.ndarray):
            if batch is None and nir.ndim == 3 and nir.shape[2] == 2:
                raise InputError(f"frame of shape {nir.shape}: 2 channels are neither gray, RGB nor RGBA; expected H x W, H x W x 1/3/4, "
                                 f"or pass batch=True for {nir.shape[0]} frames of {nir.shape[1]} x {nir.shape[2]}")
            if batch is None:
                batch = nir.ndim == 4 or (nir.ndim == 3 and nir.shape[2] not in (1, 3, 4))
            if batch:
                if nir.ndim not in (3, 4):
                    raise InputError(f"batch of shape {nir.shape}: expected N x H x W or N x H x W x C frames")
                return self.colorize_batch(list(nir))
        elif batch:
            return self.colorize_batch(nir)
        return self.colorize_batch([nir])[0]

    def new_stream(self) -> None:
        """The frames that follow are of another camera or file: with ``input_bits`` auto, their
        16-bit depth is found afresh (it only grows within a stream, so a 10-bit picture after a
        16-bit one would otherwise be read as 16-bit: dark)."""
        self.depth = SampleDepth(self.depth.fixed, name=self.depth.name)

    def colorize_batch(self, frames: Sequence[np.ndarray] | Iterable[np.ndarray]) -> np.ndarray:
        """Frames of one size -> uint8 RGB array (N, H, W, 3)."""
        nirs = [to_nir(f, name=f"frame {i}", depth=self.depth) for i, f in enumerate(frames)]
        if not nirs:
            raise InputError("colorize_batch: no frames given")
        shapes = {f.shape for f in nirs}
        if len(shapes) > 1:
            raise InputError(f"colorize_batch: frames must share one size, got {sorted(shapes)}; colorize frames of other sizes "
                             f"in calls of their own")
        # in chunks of at most BATCH_PIXELS: the network's activations take about 90 bytes a
        # pixel, so 100 frames of 1080p at once would need 18 GB, and a bigger batch is no faster
        h, w = nirs[0].shape
        step = max(1, int(getattr(self.backend, "workers", 1)), BATCH_PIXELS // (h * w))
        out = np.empty((len(nirs), h, w, 3), np.uint8)
        for i in range(0, len(nirs), step):
            out[i: i + step] = self.backend.infer_uint8(np.stack(nirs[i: i + step]))
        return out

    def colorize_video(self, source: str | Path, outputs: str | Path | Sequence[str | Path], *, start: float | None = None,
                       end: float | None = None, max_frames: int | None = None, side_by_side: bool = False, audio: bool = True,
                       live: bool | None = None, progress=None, contact_sheet: bool = False, color_frames: str = "colorize",
                       fps: float | None = None, reconnect: int | str | None = None, open_timeout: float | None = None,
                       read_timeout: float | None = None, stop: threading.Event | None = None, **sink_options) -> dict:
        """Colorize a whole video file, stream or camera (``source`` as ``nirvision colorize``
        takes it) into ``outputs`` (video files, image folders, ``http://HOST:PORT``) through the
        streaming engine; returns the run's summary (frames, drops, FPS, latencies; ``pieces``
        with ``segment``). ``start`` / ``end``: seconds of a video file (a number, or text as the
        command takes it: 90, 1:30, 0:01:30.5). ``max_frames``: at least 1. ``sink_options``, checked
        as the command checks them (an unknown one is an error): ``crf`` (0-51), ``preset``,
        ``threads`` (x264's: a positive number or auto), ``segment`` (seconds a file, or 90s, 15m,
        1h), ``keep`` (live sources). ``progress``: a
        callable given the engine's status now and then. ``contact_sheet``: ``NAME_sheet.png`` beside
        each video output (``nirvision.io.sheet_sink``). ``color_frames``: colorize (every frame) or
        pass (frames already in colour, a day/night camera's day mode, go out as they came;
        ``nirvision.io.color_frames``). ``fps``: the frame rate of an image folder or glob (default 25;
        a camera is asked for it), as the command's ``--fps``; refused for sources with timestamps
        of their own. Live sources, as the command's options of those names: ``reconnect`` (attempts
        after a failure, 0 or more, or "forever"; default 3), ``open_timeout`` (RTSP: seconds to wait
        for a connection, default 10) and ``read_timeout`` (RTSP: seconds without data before
        reconnecting, default 5). ``stop``: a ``threading.Event`` that another thread sets to end
        the run, as the command's SIGTERM does: the outputs are finalized and the summary returned
        (``stopped_by``: stopped); set before an output is opened (a stream still being reached),
        none is opened, and the summary counts no frames. One source a call: several (a list, or
        a folder or glob of videos, which the command runs as a batch) are refused, naming the
        command that runs them. The backend stays open for more, and calls may run at once from
        several threads (one camera each): each run follows its own stream's levels and 16-bit
        depth."""
        from .io import open_sink, open_source
        from .io.color_frames import check_color_frames
        from .io.specs import check_distinct_outputs, check_not_source, check_range_source, opening_order
        from .runtime.engine import Engine, EngineOptions, prepare_backend

        specs = [str(outputs)] if isinstance(outputs, (str, Path)) else [str(o) for o in outputs]
        _one_source(source, specs)
        if not specs:
            raise InputError("colorize_video: no outputs given")
        # the command's checks, as usage errors, before anything is opened
        start, end = _video_time(start, "start"), _video_time(end, "end")
        max_frames = _at_least_one(max_frames, "max_frames")
        if progress is not None and not callable(progress):
            raise InputError(f"colorize_video: progress {progress!r}: expected a callable given the engine's status, or None")
        sink_options = _sink_options(sink_options)
        options = {"max_frames": max_frames, "audio": audio, "input_bits": self.depth.fixed,
                   "color_frames": check_color_frames(color_frames, "colorize_video: color_frames"),
                   **_live_options(reconnect, open_timeout, read_timeout)}
        if stop is not None and not (callable(getattr(stop, "is_set", None)) and callable(getattr(stop, "wait", None))):
            raise InputError(f"colorize_video: stop {stop!r}: expected a threading.Event (set it to end the run), or None")
        if fps is not None:
            options["fps"] = check_fps(fps, source, "colorize_video: fps")
        if start is not None or end is not None:
            check_range_source(str(source), "colorize_video: start / end")
            if end is not None and end <= (start or 0.0):
                raise InputError(f"colorize_video: end {end:g}: expected a time after start ({start or 0:g} s)")
            options.update(start=start, end=end)
        check_distinct_outputs(specs)
        check_not_source(specs, str(source))
        with _StopRelay(stop) as relay:
            try:
                src = open_source(str(source), live=live, stop=relay.opening, **options)
            except KeyboardInterrupt:  # an RTSP source stopped while it connects
                if relay.stopped:
                    return self._stopped_unopened(str(source))
                raise
            sinks = []
            try:
                sheets = []
                if contact_sheet:  # a sheet that is one of the source's images is refused before an output is replaced
                    from .io.sheet_sink import sheets_for

                    sheets = sheets_for(specs, src.info)
                prepare_backend(self.backend, src.info)  # what cannot run is said before an output is replaced
                if relay.stopped:  # before an output of an earlier run is replaced
                    src.close()
                    return self._stopped_unopened(str(source))
                for spec in opening_order(specs):
                    sinks.append(open_sink(spec, src.info, side_by_side=side_by_side, audio=audio, **sink_options))
                sinks.extend(sheets)
            except BaseException:
                for sink in sinks:
                    sink.close()
                src.close()
                raise
            engine_options = EngineOptions(queue_size=2 if src.live else 4, progress=progress)  # as the command: less latency live
            engine = Engine(src, sinks, self.backend, engine_options)
            relay.attach(engine)
            return engine.run()  # (it closes the source and the outputs)

    def _stopped_unopened(self, source: str) -> dict:
        """The summary of a run whose ``stop`` came before its outputs were opened: no frames."""
        from .io.base import Source, SourceInfo
        from .io.redact import redact_url
        from .io.specs import source_kind
        from .runtime.engine import Engine

        kind = source_kind(source)

        class Unopened(Source):
            info = SourceInfo(kind=kind, description=redact_url(source), live=kind in ("rtsp", "camera"))

            def __iter__(self):
                return iter(())

        engine = Engine(Unopened(), [], self.backend)
        engine.request_stop("stopped")
        return engine.run()

    def close(self) -> None:
        self.backend.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


SINK_OPTIONS = ("crf", "preset", "threads", "segment", "keep")


class _StopRelay:
    """Hands the caller's ``stop`` event on to what runs now: the opening of the source
    (``opening``, which an RTSP source watches while it connects) and then the engine
    (``request_stop``). A thread looks at it every ``POLL_S`` while the call lasts (an Event
    cannot call back); the caller's event is only read, so that it can serve another call."""

    POLL_S = 0.1

    def __init__(self, stop):
        self.stop, self.opening, self.stopped = stop, threading.Event(), False
        self._engine, self._lock, self._done = None, threading.Lock(), threading.Event()
        self._thread = threading.Thread(target=self._watch, name="nirvision-stop", daemon=True) if stop is not None else None

    def __enter__(self):
        if self._thread is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        if self._thread is not None:
            self._thread.join()

    def _watch(self) -> None:
        while not self._done.is_set():
            if self.stop.wait(self.POLL_S):
                with self._lock:
                    self.stopped = True
                    self.opening.set()
                    if self._engine is not None:
                        self._engine.request_stop("stopped")
                return

    def attach(self, engine) -> None:
        """The engine that runs now: stopped at once if the stop came already."""
        with self._lock:
            self._engine = engine
            if self.stopped:
                engine.request_stop("stopped")


def _live_options(reconnect, open_timeout, read_timeout) -> dict:
    """``colorize_video``'s live source options checked as the command checks ``--reconnect``,
    ``--open-timeout`` and ``--read-timeout``; only those given (the rest keep their defaults)."""
    out = {}
    if reconnect is not None:
        text = str(reconnect).strip().lower()
        whole = isinstance(reconnect, (int, np.integer)) and not isinstance(reconnect, bool)
        if not (whole and reconnect >= 0 or isinstance(reconnect, str) and (text == "forever" or text.isdigit())):
            raise InputError(f"colorize_video: reconnect {reconnect!r}: expected a number of attempts (0 or more) or 'forever'")
        out["reconnect"] = text if text == "forever" else int(text)
    for name, value in (("open_timeout", open_timeout), ("read_timeout", read_timeout)):
        if value is None:
            continue
        number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
        if not number or not 0 < value < float("inf"):
            raise InputError(f"colorize_video: {name} {value!r}: expected a positive number of seconds")
        out[name] = float(value)
    return out


def _one_source(source, outputs: list[str]) -> None:
    """InputError for ``colorize_video`` given several sources: a list of them, or a folder or
    glob of videos (the command's batch, with its output names, --skip-done and failures listed
    while the others run; a call here is one run of the engine into its own outputs)."""
    import shlex

    from .io.redact import redact_url
    from .io.specs import is_video_file, source_kind

    folder = outputs[0] if len(outputs) == 1 and "://" not in outputs[0] and not is_video_file(outputs[0]) else "out/"
    if isinstance(source, Iterable) and not isinstance(source, (str, bytes, os.PathLike)):
        names = [redact_url(str(s)) for s in source]
        raise InputError(f"colorize_video: source {names}: colorize_video takes one source; for several, call it once for each "
                         f"(each into its own outputs) or run the batch command: nirvision colorize {' '.join(map(shlex.quote, names))} "
                         f"-o {shlex.quote(folder)}")
    spec = str(source)
    if source_kind(spec) != "images":
        return
    from .cli.batch import batch_inputs  # what the command takes as a batch: the same rules

    videos = batch_inputs([spec])
    if videos is not None:
        raise InputError(f"colorize_video: source {spec}: names {len(videos)} video{'s' if len(videos) != 1 else ''}, which the command "
                         f"colorizes as a batch; colorize_video takes one source: call it once for each video, or run "
                         f"nirvision colorize {shlex.quote(spec)} -o {shlex.quote(folder)}")


def check_fps(fps, source, name: str = "--fps") -> float | None:
    """``fps``, the frame rate given to an image folder or glob (and asked of a camera), checked
    against ``source``: None, or a number of at least 0.001; an InputError naming ``name``
    otherwise. A video file, stream or synthetic clip has timestamps of its own, which the rate
    would leave as they are: refused, not ignored."""
    from .io.redact import redact_url
    from .io.specs import source_kind

    if fps is None:
        return None
    number = isinstance(fps, (int, float, np.integer, np.floating)) and not isinstance(fps, bool)
    if not number or not 0.001 <= fps <= 1000:  # beyond: frames a millisecond apart, no camera or player rate
        raise InputError(f"{name} {f'{fps:g}' if number else repr(fps)}: expected a frame rate of at least 0.001 and at most 1000 (frames a second)")
    kind = source_kind(str(source))
    if kind not in ("images", "camera"):
        what = {"file": "a video file", "rtsp": "a stream", "synthetic": "a synthetic clip (its rate: synthetic:WIDTHxHEIGHT@FPS)"}[kind]
        raise InputError(f"{name} {fps:g}: the frame rate given to image folders and globs (and asked of a camera); source "
                         f"{redact_url(str(source))} is {what}, whose frames keep their own timestamps; expected no {name.rsplit(': ', 1)[-1]}")
    return float(fps)


def _video_time(value, name: str) -> float | None:
    """``colorize_video``'s ``start`` / ``end``: seconds (a number, at least 0) or the command's
    text forms ('90', '1:30', '0:01:30.5'); None stays None."""
    if value is None:
        return None
    if isinstance(value, str):
        from .io.specs import parse_time

        return parse_time(value, f"colorize_video: {name}")
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not (0 <= value < float("inf")):
        raise InputError(f"colorize_video: {name} {value!r}: expected a time in seconds (0 or more) or text such as 90, 1:30 or 0:01:30.5")
    return float(value)


def _at_least_one(value, name: str) -> int | None:
    """A whole number of at least 1 (None stays None), as the command's ``--max-frames`` / ``--keep``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"colorize_video: {name} {value!r}: expected at least 1 (a whole number)")
    return int(value)


def _sink_options(options: dict) -> dict:
    """``colorize_video``'s video options checked as the command checks ``--crf``, ``--preset``,
    ``--encoder-threads``, ``--segment`` and ``--keep``; an unknown one is an error naming it."""
    from .io.specs import parse_positive
    from .io.video_sink import check_preset
    from .io.segment_sink import parse_duration

    unknown = sorted(k for k in options if k not in SINK_OPTIONS)
    if unknown:
        raise InputError(f"colorize_video: unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                         f"expected some of: {', '.join(SINK_OPTIONS)}")
    out = {k: v for k, v in options.items() if v is not None}
    if "crf" in out:
        crf = out["crf"]
        if isinstance(crf, bool) or not isinstance(crf, (int, np.integer)) or not 0 <= crf <= 51:
            raise InputError(f"colorize_video: crf {crf!r}: expected 0 (lossless) to 51")
        out["crf"] = int(crf)
    if "preset" in out:
        try:
            check_preset(out["preset"])
        except InputError as exc:
            raise InputError(f"colorize_video: {str(exc).removeprefix('--')}") from None
    if "threads" in out:  # x264's threads: a positive number, or auto (x264's own choice)
        if out["threads"] == "auto":
            del out["threads"]
        elif isinstance(out["threads"], bool) or not isinstance(out["threads"], (int, np.integer, str)):
            raise InputError(f"colorize_video: threads {out['threads']!r}: expected a positive integer or auto")
        else:
            out["threads"] = parse_positive(str(out["threads"]), "colorize_video: threads")
    if "segment" in out:
        out["segment"] = parse_duration(str(out["segment"]), "colorize_video: segment")
    if "keep" in out:
        if "segment" not in out:
            raise InputError("colorize_video: keep: keeps the newest pieces of a recording cut by segment; expected segment too")
        out["keep"] = _at_least_one(out["keep"], "keep")
    return out


def check_threads(threads, name: str = "--threads") -> int | None:
    """``threads`` (CPU threads for inference) checked: None, or a whole number 1 to ``MAX_THREADS``;
    an InputError naming ``name`` otherwise."""
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or not 1 <= threads <= MAX_THREADS:
        raise InputError(f"{name} {threads!r}: expected 1 to {MAX_THREADS} CPU threads (this machine has {os.cpu_count()})")
    return int(threads)


def set_threads(threads: int | None, name: str = "--threads") -> None:
    """Use ``threads`` CPU threads for intra-op work (None leaves torch's default)."""
    threads = check_threads(threads, name)
    if threads is not None:
        torch.set_num_threads(threads)
