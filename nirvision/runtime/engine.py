"""The streaming engine: reader -> bounded queue -> inference -> bounded queue -> writer.

The reader thread decodes frames from the source, the calling thread runs the backend, and the
writer thread composes the views and writes every sink, so decode, inference and encode
overlap. Live sources drop the oldest queued frame when inference falls behind (latency stays
bounded, drops are counted); files, folders and synthetic clips never drop (backpressure).
At the end of the input, on an error, or on ``request_stop`` (the CLI calls it on Ctrl-C,
SIGTERM and SIGHUP) every sink is flushed and closed, so that what was written plays. The writer thread
closes the sinks as soon as it has written the last frame, before the engine waits for the
reader (a live source may be stuck in a read or a reconnection for seconds), and in its own
thread, where a KeyboardInterrupt (a second Ctrl-C) cannot cut it short: ``run()`` waits for
it through one such interrupt and raises it afterwards.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..errors import InputError
from ..io.base import Frame, Sink, Source
from ..io.compose import side_by_side
from .backends.base import Backend
from .frames import to_nir
from .stats import RunStats, live_state, process_cpu_s, source_losses
from .queues import POLL_S, QueueStopped, StageQueue

log = logging.getLogger(__name__)

IN_FLIGHT_POLL_S = 0.002  # how often the inference loop looks for a finished frame that cannot wake it


@dataclass
class EngineOptions:
    queue_size: int = 4  # frames per queue (each of the two)
    drop: bool | None = None  # drop oldest when behind; None: on live sources only
    max_frames: int | None = None  # stop after this many frames read
    status_interval: float = 0.5  # seconds between progress callbacks
    progress: Callable[[dict], None] | None = None  # called from the writer thread with status()
    # how long to wait for the reader once the outputs are closed: a live source stuck in a read
    # (a frozen camera) returns only at its read timeout, and nothing it could still read would
    # be written; the run ends without it and the reader ends on its own
    join_timeout: float = 2.0


def prepare_backend(backend: Backend, info) -> None:
    """Build ``backend`` for the source's frame size (export, sessions, compile) before any
    output is opened: what cannot run (an int8 model not calibrated for the size) is said
    before an output file of an earlier run is replaced. Other failures are left to the first
    frame, which builds it again and reports them."""
    from ..errors import usage_errors

    prepare = getattr(backend, "prepare", None)
    if prepare is None or not info.width or not info.height:
        return
    try:
        prepare((1, 1, info.height, info.width))
    except usage_errors():
        raise
    except Exception as exc:  # noqa: BLE001 - the first frame tries again and reports it
        log.warning("preparing the backend for %dx%d failed (%s); it is built at the first frame", info.width, info.height, exc)


class _End:
    """The end marker that follows the last frame through both queues."""

    def __init__(self, audio=None):
        self.audio = audio or []


class _Passed:
    """The finished "inference" of a frame that goes out as it came (``Frame.color``)."""

    seconds = 0.0

    def __init__(self, rgb: np.ndarray):
        self._out = rgb[None]

    def done(self) -> bool:
        return True

    def result(self) -> np.ndarray:
        return self._out


class Engine:
    """Runs ``source`` through ``backend`` into ``sinks``. ``run()`` returns the summary dict.

    The engine closes the source and the sinks when the run ends; the backend stays open.
    """

    def __init__(self, source: Source, sinks: Sequence[Sink], backend: Backend, options: EngineOptions | dict | None = None):
        self.source = source
        self.sinks = list(sinks)
        self.backend = backend
        self.options = EngineOptions(**options) if isinstance(options, dict) else (options or EngineOptions())
        self.live = bool(source.live)
        drop = self.live if self.options.drop is None else self.options.drop
        self._stop = threading.Event()
        self._written = threading.Event()  # set by the writer once every sink is closed
        self._outq_refused = False
        self._inq = StageQueue(self.options.queue_size, drop, self._stop)
        self._outq = StageQueue(self.options.queue_size, drop, self._stop)
        self.stats = RunStats()
        self.stop_reason: str | None = None
        self._errors: list[BaseException] = []
        self._last_shape: tuple[int, ...] | None = None
        self._frames_to = backend  # what frames are submitted to: the backend, or the run's stream of it (``start_stream``)

    # control ----------------------------------------------------------------------------
    def request_stop(self, reason: str = "stopped") -> None:
        """Ask the run to end soon and finalize its outputs (safe from signal handlers)."""
        if self.stop_reason is None:
            self.stop_reason = reason
        self._stop.set()

    def _fail(self, exc: BaseException, where: str) -> None:
        log.debug("engine: %s failed", where, exc_info=exc)
        self._errors.append(exc)
        self.request_stop("error")

    def status(self) -> dict:
        """A snapshot for progress bars and status lines."""
        s = self.stats
        state = live_state(self.source)  # a live source down (reconnecting, stalled) says so, at 0 fps
        return {
            "frames_in": s.frames_in, "frames_out": s.frames_out, "passed": s.passed, "dropped": s.dropped, "discarded": s.discarded,
            "frames_total": self.source.info.frames, "decode_errors": self.source.decode_errors,
            "reconnects": self.source.reconnects, "stale": self.source.stale,
            "fps": 0.0 if state.get("waiting") else round(s.current_fps(), 2),
            "elapsed_s": round(s.wall_s, 2), "live": self.live, "source": self.source.info.description, **state,
        }

    # threads ----------------------------------------------------------------------------
    def _drop(self, frames: list, at_stop: bool = False) -> None:
        """Count frames that will not be written: ``dropped`` by the live drop policy, or
        ``discarded`` when the run stopped with them read but not yet written."""
        for f in frames:
            if isinstance(f, tuple):
                f = f[0]
            if not isinstance(f, Frame):
                continue  # an end marker
            if at_stop:
                self.stats.discarded += 1
            else:
                self.stats.dropped += 1
            if f.audio:  # never lose audio with a dropped frame: it goes out at the end
                self._late_audio.extend(f.audio)

    def _reader(self) -> None:
        it = None
        try:
            it = iter(self.source)
            while not self._stop.is_set():
                t0, waited = time.perf_counter(), getattr(self.source, "waited_s", None)
                frame = next(it, None)
                if frame is None:
                    break
                if waited is not None:  # a live source's wait for its camera (outages too) is not decoding
                    waited = self.source.waited_s - waited
                    self.stats.times.add("wait", waited)
                self.stats.times.add("decode", max(0.0, time.perf_counter() - t0 - (waited or 0.0)))
                self.stats.frames_in += 1
                try:
                    self._drop(self._inq.put(frame))
                except QueueStopped:
                    self._drop([frame], at_stop=True)
                    break
                if self.options.max_frames is not None and self.stats.frames_in >= self.options.max_frames:
                    break
        except BaseException as exc:  # noqa: BLE001 - handed to run(), which re-raises it
            # frames already read still go through: the end marker follows them
            log.debug("engine: reading failed", exc_info=exc)
            self._errors.append(exc)
            self.stop_reason = self.stop_reason or "error"
        finally:
            if hasattr(it, "close"):  # end the source's generator here, in its own thread
                try:
                    it.close()
                except Exception as exc:  # noqa: BLE001 - closing must not hide the run's result
                    log.debug("engine: closing the source iterator failed: %s", exc)
            self._inq.put_final(_End(self.source.pending_audio()))
            self.stats.thread_cpu["reader"] = time.thread_time()

    def _writer(self) -> None:
        next_status = time.perf_counter() + self.options.status_interval
        frame = None  # the frame being written, if any
        try:
            while True:
                item = self._outq.get()
                now = time.perf_counter()
                if self.options.progress and now >= next_status:  # also during a live outage
                    next_status = now + self.options.status_interval
                    self.options.progress(self.status())
                if item is None:
                    continue
                if isinstance(item, _End):
                    audio = item.audio + self._late_audio
                    for sink in self.sinks:
                        sink.write_audio(audio)
                    return
                frame, rgb = item
                t0 = time.perf_counter()
                views = {False: rgb}
                if any(s.side_by_side for s in self.sinks):
                    views[True] = side_by_side(frame.image, rgb)
                t1 = time.perf_counter()
                for sink in self.sinks:
                    if frame.audio:
                        sink.write_audio(frame.audio)
                    sink.write(frame, views[sink.side_by_side])
                    if getattr(sink, "stop_requested", False):
                        self.request_stop("preview closed")
                t2 = time.perf_counter()
                self.stats.wrote()
                self.stats.passed += frame.color is not None
                self.stats.times.add("post", t1 - t0)
                self.stats.times.add("encode", t2 - t1)
                self.stats.times.add("total", t2 - frame.t_read)
                frame = None
        except BaseException as exc:  # noqa: BLE001 - handed to run(), which re-raises it
            if frame is not None:  # not written to every output
                self._drop([frame], at_stop=True)
            self._fail(exc, "writing")
        finally:
            try:
                self._close_sinks()
                self.stats.thread_cpu["writer"] = time.thread_time()
            finally:
                self._written.set()

    def _close_sinks(self) -> None:
        """Finalize every sink (in the writer thread, once nothing more will be written)."""
        for sink in self.sinks:
            try:
                sink.close()
            except BaseException as exc:  # noqa: BLE001 - keep closing the others
                # an output that cannot be written is the run's error, said once by whoever reports it
                (log.debug if isinstance(exc, InputError) else log.error)("engine: closing %s failed: %s", sink.description, exc)
                self._errors.append(exc)
        self.stats.end = time.perf_counter()

    def _submit(self, frame: Frame):
        """Check and reduce the frame to NIR, then hand it to the backend; its ``Pending``."""
        t0 = time.perf_counter()
        nir = frame.image if frame.image.ndim == 2 and frame.image.dtype == np.uint8 else to_nir(frame.image, name=f"frame {frame.index}")
        frame.image = nir
        if nir.shape != self._last_shape:
            if self._last_shape is not None:
                self.stats.resolution_changes += 1
                before, now = ("x".join(map(str, shape[::-1])) for shape in (self._last_shape, nir.shape))
                if self.live and getattr(self.source, "continuous", True):  # the backend built for it now, frames dropped meanwhile: said
                    t0 += self._prepare_size(nir.shape, now, f"the source changed size from {before} to {now} at frame {frame.index}")
                elif getattr(self.source, "continuous", True):  # a video or a stream changing size is news
                    log.warning("engine: the source changed size from %s to %s at frame %d", before, now, frame.index)
                else:  # pictures of a folder differ in size as a matter of course: each at INFO, once what it costs
                    log.info("engine: %s is %s, the picture before %s", frame.name or f"frame {frame.index}", now, before)
                    from .backends.auto import sizes_vary_hint

                    hint = sizes_vary_hint(self.backend) if self.stats.resolution_changes == 1 else None
                    if hint:
                        log.warning("engine: the pictures differ in size (%s, then %s at %s): %s", before, now,
                                    frame.name or f"frame {frame.index}", hint)
            self._last_shape = nir.shape
        if frame.color is not None:  # already in colour (--color-frames pass): out as it came
            if frame.color.shape != (*nir.shape, 3) or frame.color.dtype != np.uint8:
                raise ValueError(f"{self.source.info.description}: frame {frame.index}: its colour image is {frame.color.dtype} "
                                 f"{frame.color.shape}, expected uint8 {(*nir.shape, 3)} as its NIR image")
            self.stats.times.add("pre", time.perf_counter() - t0)
            return _Passed(frame.color)
        self.stats.times.add("pre", time.perf_counter() - t0)
        return self._frames_to.submit(nir[None])

    def _prepare_size(self, shape: tuple[int, ...], size: str, change: str) -> float:
        """A live source's new frame size: the backend built for it before the frame is submitted,
        said as it starts (the camera's frames are dropped meanwhile) and when done, with what it
        took and how to avoid it; the seconds it took (not the frame's ``pre``)."""
        from .backends.auto import sizes_vary_hint

        prepare, hint = getattr(self.backend, "prepare", None), sizes_vary_hint(self.backend, live=True)
        if prepare is None or hint is None:  # it runs any size at once (eager)
            log.warning("engine: %s", change)
            return 0.0
        log.warning("engine: %s; preparing the backend for %s frames (frames are dropped meanwhile)", change, size)
        t0, dropped = time.perf_counter(), self.stats.dropped
        prepare((1, 1, *shape))
        took = time.perf_counter() - t0
        (log.warning if took >= 1.0 else log.info)("engine: backend ready for %s frames in %.1f s, %d frames dropped meanwhile: %s",
                                                   size, took, self.stats.dropped - dropped, hint)
        return took

    def _emit(self, frame: Frame, pending) -> None:
        """Wait for ``frame``'s output and pass it on to the writer."""
        try:
            rgb = pending.result()[0]
        except BaseException:
            self._drop([frame], at_stop=True)  # its inference failed: counted, not written
            raise
        if not isinstance(pending, _Passed):
            self.stats.times.add("infer", pending.seconds)
            self.stats.frames_inferred += 1
        if self._outq_refused:  # a frame before it was not written: none after it is (no hole)
            self._drop([frame], at_stop=True)
            return
        try:
            self._drop(self._outq.put((frame, rgb)))
        except QueueStopped:
            self._outq_refused = True
            self._drop([frame], at_stop=True)

    # the run ----------------------------------------------------------------------------
    def run(self) -> dict:
        """Process the whole source (or until stopped); returns ``summary()``.

        An error in any stage stops the run; the sinks are still finalized, then it is raised.
        """
        self._late_audio: list = []
        self._outq_refused = False  # the writer's queue was full at a stop: later frames are discarded too
        self._written.clear()
        if self.live:
            self._prepare()
        self.stats = RunStats()
        for sink in self.sinks:
            sink.watch(self.status)
        start = getattr(self.backend, "start_stream", None)
        # wrappers that follow a stream (levels) start afresh, and give the run a stream of its own to
        # submit to (runs at once through one backend do not share it); image folders are not one
        self._frames_to = (start(getattr(self.source, "continuous", True)) if start is not None else None) or self.backend
        reader = threading.Thread(target=self._reader, name="nirvision-reader", daemon=True)
        writer = threading.Thread(target=self._writer, name="nirvision-writer", daemon=True)
        reader.start()
        writer.start()
        loop_cpu = time.thread_time()
        try:
            self._inference_loop()
        except KeyboardInterrupt:
            self.request_stop("interrupted")
        except BaseException as exc:  # noqa: BLE001 - re-raised below after finalizing
            self._fail(exc, "inference")
        finally:
            self.stats.thread_cpu["inference_loop"] = time.thread_time() - loop_cpu
            self._outq.put_final(_End())
            self._finish(reader, writer)
        if self._errors:
            raise self._errors[0]
        return self.summary()

    def _prepare(self) -> None:
        """A live source's frame size is known: build the backend for it (export, sessions,
        engines) before reading, not on the first frame while the camera's frames are dropped.
        (A build of minutes, as TensorRT's, may outlast an RTSP session that is not read: the
        reader then reconnects.)"""
        info = self.source.info
        prepare = getattr(self.backend, "prepare", None)
        if prepare is None or not info.width or not info.height:
            return
        t0 = time.perf_counter()
        try:
            prepare((1, 1, info.height, info.width))
        except KeyboardInterrupt:  # the run starts stopped and finalizes its outputs
            self.request_stop("interrupted")
            return
        except Exception as exc:  # noqa: BLE001 - the first frame builds it again and reports what fails
            log.warning("engine: preparing the backend for %dx%d failed (%s); it is built at the first frame", info.width, info.height, exc)
            return
        log.info("engine: backend ready for %dx%d frames in %.1f s", info.width, info.height, time.perf_counter() - t0)

    def _inference_loop(self) -> None:
        # Frames in flight, oldest first: a backend that overlaps frames (two ONNX Runtime
        # workers, CUDA double buffering) takes up to max_in_flight before the oldest is
        # collected; results leave in the order the frames came.
        depth = max(1, int(getattr(self.backend, "max_in_flight", 1)))
        pending: deque = deque()
        polled = 0  # frames in flight that cannot wake the loop when done (it polls for them)
        failed = False  # an error (not a stop) ends the loop: frames after the failed one are not written
        try:
            while not self._stop.is_set():
                while pending and (len(pending) >= depth or pending[0][1].done()):
                    frame, p, wakes = pending.popleft()
                    polled -= not wakes
                    self._emit(frame, p)
                item = self._inq.get(IN_FLIGHT_POLL_S if polled else POLL_S)
                if item is None:
                    continue
                if isinstance(item, _End):
                    while pending and not self._stop.is_set():
                        frame, p, _ = pending.popleft()
                        self._emit(frame, p)
                    self._outq.put_final(_End(item.audio))
                    return
                try:
                    p = self._submit(item)
                except BaseException:
                    self._drop([item], at_stop=True)  # refused (a broken frame) or the backend failed
                    raise
                wakes = p.done() or (hasattr(p, "notify") and p.notify(self._inq.wake))
                polled += not wakes
                pending.append((item, p, wakes))
        except KeyboardInterrupt:
            raise  # a stop: what is in flight is still written
        except BaseException:
            failed = True
            raise
        finally:
            # stopped early: the frames in flight are finished before the sinks close, and
            # written while the writer has room (it writes all it is given before the end)
            for frame, p, _ in pending:
                try:
                    p.result()
                except BaseException as exc:  # noqa: BLE001 - the run is already ending
                    log.debug("engine: a frame in flight failed while stopping: %s", exc)
                    self._drop([frame], at_stop=True)
                    continue
                if failed or self._errors:
                    self._drop([frame], at_stop=True)
                else:
                    self._emit(frame, p)

    def _finish(self, reader: threading.Thread, writer: threading.Thread) -> None:
        """Wait for the writer (it closes the sinks), then stop the source and the reader."""
        # an Event, not writer.join(): a KeyboardInterrupt in Thread.join() marks a live thread
        # as ended in Python 3.11 (bpo-45274's fix), and the outputs would not be waited for
        interrupted = None
        while not self._written.is_set():
            try:
                self._written.wait()
            except KeyboardInterrupt as exc:  # a second Ctrl-C: the outputs first, then it
                if interrupted is not None:
                    raise  # a third: leave now
                interrupted = exc
                self.request_stop("interrupted")
                log.warning("engine: finishing the outputs first (Ctrl-C again to abandon them)")
        # and for the writer thread to end: it still frees its last frames, and an interpreter
        # that exits meanwhile kills it inside a destructor (SIGABRT). The outputs are closed, so
        # it has nothing left that could stall; a Ctrl-C here is the run's interruption
        try:
            writer.join(self.options.join_timeout)
        except KeyboardInterrupt as exc:
            if interrupted is not None:
                raise
            interrupted = exc
        self.stats.cpu_end = process_cpu_s()
        self._stop.set()
        self.source.close()  # also cuts short a live source's reconnection wait
        if interrupted is not None:
            raise interrupted
        reader.join(self.options.join_timeout)
        if reader.is_alive():
            log.info("engine: the source is still in a read (a stalled camera returns at its read timeout); "
                     "the outputs are complete, so the run ends without waiting for it")
        # what was read but not written: queued when the run stopped, or after a failure
        self._drop(self._inq.drain() + self._outq.drain(), at_stop=True)

    def summary(self) -> dict:
        s = self.stats
        return {
            "source": self.source.info.description,
            "live": self.live,
            "sinks": [sink.description for sink in self.sinks],
            "pieces": [str(path) for sink in self.sinks for path in getattr(sink, "paths", [])],  # outputs cut by --segment
            "backend": {"name": self.backend.name, "device": str(self.backend.device), "precision": self.backend.precision,
                        "infer_scale": getattr(self.backend, "infer_scale", 1.0), "levels": getattr(self.backend, "levels", "off"),
                        "flip_average": bool(getattr(self.backend, "flip_average", False))},
            "frames_in": s.frames_in,
            "frames_out": s.frames_out,
            "passed": s.passed,  # written as they came, already in colour (--color-frames pass)
            "dropped": s.dropped,
            "discarded": s.discarded,  # read, then left unwritten when the run stopped or failed
            "decode_errors": self.source.decode_errors,
            **source_losses(self.source),  # a recorded video's damaged stretches, and where it ended short of its header
            "discontinuities": getattr(self.source, "discontinuities", 0),  # where a recorded video's clock jumped back (timeline kept going)
            "reconnects": self.source.reconnects,
            "stale": self.source.stale,  # live: frames of a connection's opening burst, late on arrival, never read in
            "resolution_changes": s.resolution_changes,
            "fps": round(s.fps(), 3),
            "wall_s": round(s.wall_s, 3),
            "latency_ms": s.times.summary(),
            # CPU a frame: the process (inference workers, codec threads) and each engine thread
            "cpu": s.cpu_summary(),
            "stopped_by": self.stop_reason or "end of input",
        }
