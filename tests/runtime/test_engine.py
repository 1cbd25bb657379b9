"""The engine: drops only on live sources with bounded lag, never on files; errors still finalize."""
import signal
import sys
import threading
import time

import numpy as np
import pytest

from nirvision.errors import InputError
from nirvision.io import open_sink, open_source
from nirvision.io.base import Frame, Sink
from nirvision.runtime.engine import Engine, EngineOptions
from nirvision.runtime.stats import STAGES
from tests.io.media import ListSource, RecordingSink, StubBackend, read_video, run_in_thread, wait_for

QUEUE = 2


def indexed_frames(n, h=24, w=32):
    """Frame i is filled with the value i, so the backend can tell which frame it got."""
    return [np.full((h, w), i, np.uint8) for i in range(n)]


def run_recording(source, delay):
    """Run with a slow backend that records (frame index, frames the source had produced)."""
    seen = []
    backend = StubBackend(delay=delay, on_call=lambda f: seen.append((int(f[0, 0, 0]), source.frames_read)))
    summary = Engine(source, [], backend, EngineOptions(queue_size=QUEUE)).run()
    return summary, seen


class SteppedSource(ListSource):
    """A live source that reads a frame only when let (``let``): the test, not the machine's
    speed, decides how far the camera gets ahead of inference."""

    def __init__(self, images):
        super().__init__(images, live=True)
        self._cond = threading.Condition()
        self._allowed = 0
        self._idle = False  # back in next() for a frame not yet let: every frame read was handed on
        self._ended = False

    def __iter__(self):
        for i, img in enumerate(self.images):
            with self._cond:
                self._idle = True
                self._cond.notify_all()
                assert self._cond.wait_for(lambda: self._allowed > 0, 60), "never let read on"
                self._allowed, self._idle = self._allowed - 1, False
            self.frames_read += 1
            yield Frame(img, index=i, pts=i, time_base=self.info.time_base, t_read=time.perf_counter())
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def let(self, n, wait=True):
        """Let ``n`` more frames be read and (``wait``) wait until the reader has handed them all on."""
        with self._cond:
            self._allowed += n
            self._cond.notify_all()
            assert not wait or self._cond.wait_for(lambda: self._ended or (self._idle and not self._allowed), 60), "the reader stalled"


def test_live_source_drops_oldest_with_bounded_lag():
    # the camera reads 4 frames while inference runs a frame: the queue keeps the newest 2
    source = SteppedSource(indexed_frames(60))
    seen = []

    def on_call(f):  # (frame index, frames the source had read) as inference takes the frame
        seen.append((int(f[0, 0, 0]), source.frames_read))
        source.let(4)

    source.let(1, wait=False)  # frame 0 (the run has not started: nothing reads it yet)
    sink = RecordingSink()
    summary = Engine(source, [sink], StubBackend(on_call=on_call), EngineOptions(queue_size=QUEUE)).run()
    assert summary["frames_in"] == 60
    assert summary["frames_out"] + summary["dropped"] == 60 and summary["frames_out"] == len(sink.written)
    # frame 0, then each time the older of the newest two (3: 1 and 2 were dropped for 3 and 4), then
    # the two left at the end; when inference takes frame i, only the one behind it in the queue is newer
    want = [0] + list(range(3, 56, 4)) + [58, 59]
    assert [i for i, _ in seen] == want
    assert [produced for _, produced in seen] == [1] + [i + 2 for i in range(3, 56, 4)] + [60, 60]
    assert summary["dropped"] >= 60 - len(want)  # (the writer's queue drops too, if the writer falls behind)
    written = [i for i, _, _ in sink.written]
    assert written == sorted(written) and set(written) <= set(want) and written[-1] == 59  # in order, the newest made it


def test_file_like_source_never_drops():
    source = ListSource(indexed_frames(30), live=False)
    summary, seen = run_recording(source, delay=0.01)
    assert summary["dropped"] == 0 and summary["frames_out"] == 30
    assert [i for i, _ in seen] == list(range(30))


def test_summary_fields():
    summary = Engine(open_source("synthetic:32x24@25:5"), [], StubBackend(), {"queue_size": 2}).run()
    for key in ("frames_in", "frames_out", "dropped", "decode_errors", "reconnects", "fps", "wall_s"):
        assert key in summary
    assert summary["frames_in"] == summary["frames_out"] == 5 and summary["fps"] > 0
    for stage in STAGES:
        assert summary["latency_ms"][stage]["mean"] >= 0 and summary["latency_ms"][stage]["p95"] >= 0
    cpu = summary["cpu"]
    assert cpu["process_ms_per_frame"] > 0 and cpu["cores"] >= 0
    for thread in ("reader", "writer", "inference_loop"):
        assert 0 <= cpu[f"{thread}_ms_per_frame"] <= cpu["process_ms_per_frame"] + 1e-6


class FailingSink(Sink):
    description = "failing"

    def __init__(self, after):
        self.after, self.n, self.closed = after, 0, False

    def write(self, frame, image):
        self.n += 1
        if self.n > self.after:
            raise OSError(28, "No space left on device")

    def close(self):
        self.closed = True


def test_sink_error_stops_the_run_and_finalizes_the_others(tmp_path):
    source = open_source("synthetic:32x24@25:40")
    video = open_sink(str(tmp_path / "out.mp4"), source.info)
    bad = FailingSink(after=5)
    engine = Engine(source, [video, bad], StubBackend())
    with pytest.raises(OSError, match="No space"):
        engine.run()
    assert bad.closed
    frames = read_video(tmp_path / "out.mp4")["times"]
    # what was written before the error plays: frames 0-5 (the video is written first, then the 6th write fails), no later one
    assert len(frames) == 6
    stats = engine.stats  # frames read after the failure are counted, not lost from the figures
    assert stats.frames_out == 5 and stats.frames_in == stats.frames_out + stats.discarded and stats.discarded > 0


def test_source_error_is_raised_after_finalizing(tmp_path):
    (tmp_path / "zero.mp4").write_bytes(b"")
    with pytest.raises(InputError):
        open_source(str(tmp_path / "zero.mp4"))

    class Broken(ListSource):
        def __iter__(self):
            yield from list(super().__iter__())[:3]
            raise InputError("broken input")

    source = Broken(indexed_frames(10))
    with pytest.raises(InputError, match="broken input"):
        Engine(source, [open_sink(str(tmp_path / "out.mp4"), source.info)], StubBackend()).run()
    assert len(read_video(tmp_path / "out.mp4")["times"]) == 3


def test_request_stop_finalizes_a_playable_file(tmp_path):
    source = open_source("synthetic:32x24@25:100000")
    engine = Engine(source, [open_sink(str(tmp_path / "out.mp4"), source.info)], StubBackend(delay=0.005))
    thread, box = run_in_thread(engine.run)
    wait_for(lambda: engine.stats.frames_out >= 10, 60, "ten frames written")
    engine.request_stop("test")
    thread.join(60)
    assert not thread.is_alive()
    summary = box["result"]
    assert summary["stopped_by"] == "test"
    assert len(read_video(tmp_path / "out.mp4")["times"]) == summary["frames_out"] >= 10
    # every frame read is accounted for: written, or left in the queues when the stop came
    assert summary["dropped"] == 0 and summary["discarded"] <= 2 * 4 + 1
    assert summary["frames_in"] == summary["frames_out"] + summary["discarded"]


class OverlappingStub(StubBackend):
    """Keeps up to three frames in flight, each finishing ``delay`` after it was submitted."""

    max_in_flight = 3

    def submit(self, frames):
        from concurrent.futures import ThreadPoolExecutor
        pool = getattr(self, "_pool", None) or ThreadPoolExecutor(3)
        self._pool = pool
        future = pool.submit(self.infer_uint8, frames)
        return Pending(future)


class Pending:
    def __init__(self, future):
        self.future, self.seconds = future, 0.0

    def done(self):
        return self.future.done()

    def result(self):
        return self.future.result()


def test_frames_in_flight_at_a_stop_are_written_not_lost(tmp_path):
    # frames 0-9 written, 10-12 in flight (their inference held) when the stop comes; the writer's
    # queue (4) has room for all three: they are finished and written after the stop, in order
    # (a full queue at a stop refuses them: test_a_frame_refused_at_a_stop_leaves_no_hole)
    source = ListSource(indexed_frames(250))
    seen, held = [], threading.Event()
    backend = OverlappingStub(on_call=lambda f: seen.append(int(f[0, 0, 0])))
    real_infer = backend.infer_uint8

    def infer(frames):
        out = real_infer(frames)
        if int(frames[0, 0, 0]) >= 10:
            assert held.wait(60), "never released"
        return out

    backend.infer_uint8 = infer
    recording = RecordingSink()
    engine = Engine(source, [open_sink(str(tmp_path / "out.mp4"), source.info), recording], backend, EngineOptions(queue_size=4))
    thread, box = run_in_thread(engine.run)
    try:
        wait_for(lambda: len(recording.written) == 10 and len(seen) == 13, 60, "frames 0-9 written, 10-12 in flight")
        engine.request_stop("test")
    finally:
        held.set()
        thread.join(60)
    assert not thread.is_alive() and "error" not in box, box.get("error")
    summary = box["result"]
    written = summary["frames_out"]
    # every frame whose inference had started is written: 0-12, and 13 if the loop took it as it let go of 10
    assert seen == list(range(len(seen))) and written == len(seen) in (13, 14)
    assert len(read_video(tmp_path / "out.mp4")["times"]) == written
    assert summary["frames_in"] == written + summary["discarded"] and summary["dropped"] == 0
    assert summary["discarded"] <= 4 + 1  # the reader's queue and the frame in its hand
    assert [(i, int(image[0, 0, 0])) for i, image, _ in recording.written] == [(i, i) for i in range(written)]


class GatedSink(RecordingSink):
    """Holds its first write until ``gate`` is set, so that the writer's queue fills."""

    def __init__(self):
        super().__init__()
        self.gate = threading.Event()

    def write(self, frame, image):
        self.gate.wait(60)
        super().write(frame, image)


def test_a_frame_refused_at_a_stop_leaves_no_hole():
    """The writer's queue is full at the stop: the frame that found it full is discarded, and so is
    every later one, even once the writer has made room: what is written is an unbroken run."""
    sink = GatedSink()
    results_gate = threading.Event()

    def infer(frames):  # frames from 4 on finish only when the test says so
        if int(frames[0, 0, 0]) >= 4:
            results_gate.wait(60)
        return np.stack([frames, 255 - frames, frames // 2], axis=-1)

    backend = OverlappingStub()
    backend.infer_uint8 = infer
    engine = Engine(ListSource(indexed_frames(40)), [sink], backend, EngineOptions(queue_size=QUEUE))
    thread, box = run_in_thread(engine.run)
    # the writer holds frame 0, its queue holds 1 and 2; frame 3 waits for room, 4 and 5 are in flight
    wait_for(lambda: len(engine._outq) == QUEUE and len(engine._inq) == QUEUE, 60, "the queues full")
    engine.request_stop("test")
    wait_for(lambda: engine.stats.discarded >= 1, 60, "frame 3 refused")
    sink.gate.set()
    wait_for(lambda: len(sink.written) == 3, 60, "frames 0-2 written")
    results_gate.set()
    thread.join(60)
    summary = box["result"]
    assert [i for i, _, _ in sink.written] == [0, 1, 2]
    assert summary["frames_out"] == 3 and summary["frames_in"] == 3 + summary["discarded"]


def test_real_model_through_the_engine(tmp_path):
    """The eager backend with a randomly initialised network (a one-scale config for speed)."""
    from nirvision.api import load_chain
    from nirvision.runtime.backends import create_backend
    from tests.io.media import TINY_MODEL

    (tmp_path / "tiny.yaml").write_text(TINY_MODEL)
    chain, _, _ = load_chain(model=str(tmp_path / "tiny.yaml"))
    backend = create_backend("eager", chain, "cpu", "fp32")
    source = open_source("synthetic:40x30@25:4")
    summary = Engine(source, [open_sink(str(tmp_path / "png"), source.info)], backend).run()
    assert summary["frames_out"] == 4 and summary["backend"]["name"] == "eager"
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == [f"frame_{i:06d}.png" for i in range(4)]


class FailingBackend(StubBackend):
    def infer_uint8(self, frames):
        if self.calls >= 4:
            raise RuntimeError("device lost")
        return super().infer_uint8(frames)


def test_backend_error_finalizes_what_was_written(tmp_path):
    source = open_source("synthetic:32x24@25:50")
    with pytest.raises(RuntimeError, match="device lost"):
        Engine(source, [open_sink(str(tmp_path / "out.mp4"), source.info)], FailingBackend()).run()
    assert len(read_video(tmp_path / "out.mp4")["times"]) == 4


class StuckSource(ListSource):
    """A live source that, after its frames, blocks in a read that close() does not end (an
    RTSP read or reconnection inside its timeout) until the test releases it."""

    def __init__(self, images):
        super().__init__(images, live=True)
        self.release = threading.Event()

    def __iter__(self):
        yield from super().__iter__()
        self.release.wait(120)


class WatchedSink(Sink):
    """Wraps a sink: records whether the source was still stuck when it was closed; ``gate``
    (an Event) holds close() until set, once ``closing`` is set."""

    def __init__(self, inner, source, gate=None):
        self.inner, self.source, self.gate = inner, source, gate
        self.description = inner.description
        self.closing, self.closed_while_stuck, self.closed = threading.Event(), None, False

    def write(self, frame, image):
        self.inner.write(frame, image)

    def close(self):
        self.closing.set()
        if self.gate is not None:
            self.gate.wait(60)
        self.closed_while_stuck = not self.source.release.is_set()
        self.inner.close()
        self.closed = True


def test_outputs_are_finalized_before_waiting_for_a_stuck_reader(tmp_path):
    source = StuckSource(indexed_frames(8))
    sink = WatchedSink(open_sink(str(tmp_path / "out.mp4"), source.info), source)
    engine = Engine(source, [sink], StubBackend(), EngineOptions(queue_size=QUEUE, join_timeout=120))
    thread, box = run_in_thread(engine.run)
    try:
        wait_for(lambda: engine.stats.frames_out + engine.stats.dropped == 8, 60, "eight frames written or dropped")
        engine.request_stop("test")
        wait_for(lambda: sink.closed, 60, "the output closed while the reader is stuck")
        assert sink.closed_while_stuck
        assert len(read_video(tmp_path / "out.mp4")["times"]) == engine.stats.frames_out >= 1  # plays while the reader still hangs
    finally:
        source.release.set()
        thread.join(60)
    assert box["result"]["stopped_by"] == "test"


def test_a_second_interrupt_does_not_cut_finalizing_short(tmp_path):
    """Ctrl-C (KeyboardInterrupt in the main thread) while the outputs are being finalized:
    the file still gets its index, then the interrupt goes on up."""
    source = ListSource(indexed_frames(6))
    gate = threading.Event()
    sink = WatchedSink(open_sink(str(tmp_path / "out.mp4"), source.info), source, gate)
    source.release = threading.Event()
    source.release.set()
    hit = threading.Event()

    def on_sigint(signum, frame):
        hit.set()
        raise KeyboardInterrupt

    def main_thread_waits_for_the_outputs():
        f = sys._current_frames().get(threading.main_thread().ident)
        names = []
        while f is not None:
            names.append(f.f_code.co_name)
            f = f.f_back
        return names[0] == "wait" and "_finish" in names  # blocked in Event.wait() inside Engine._finish

    def interrupt():
        sink.closing.wait(60)
        wait_for(main_thread_waits_for_the_outputs, 60, "the main thread to wait for the outputs", step=0.01)
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
        hit.wait(60)
        gate.set()

    old = signal.signal(signal.SIGINT, on_sigint)
    try:
        helper = threading.Thread(target=interrupt, daemon=True)
        helper.start()
        with pytest.raises(KeyboardInterrupt):
            Engine(source, [sink], StubBackend()).run()
        helper.join(60)
    finally:
        signal.signal(signal.SIGINT, old)
        gate.set()
    assert hit.is_set() and sink.closed
    assert len(read_video(tmp_path / "out.mp4")["times"]) == 6


class PreparingBackend(StubBackend):
    """A backend whose first frame of a size would be slow to build: records prepare() and
    whether each frame found it ready; its prepare can fail."""

    def __init__(self, fail=False):
        super().__init__()
        self.prepared, self.ready_at_frame, self.fail = [], [], fail

    def prepare(self, shape):
        if self.fail:
            raise RuntimeError("no memory for the engine")
        self.prepared.append(tuple(shape))

    def infer_uint8(self, frames):
        self.ready_at_frame.append((1, 1, *frames.shape[1:]) in self.prepared)
        return super().infer_uint8(frames)


@pytest.mark.parametrize("live", [True, False])
def test_live_sources_build_the_backend_before_the_first_frame(live, caplog):
    source = ListSource(indexed_frames(5, h=24, w=32), live=live, pace=0.05)
    source.info.width, source.info.height = 32, 24
    backend = PreparingBackend()
    summary = Engine(source, [], backend).run()
    assert summary["frames_out"] == 5
    if live:  # built for the camera's size before reading: no frame waits for it, none dropped
        assert backend.prepared == [(1, 1, 24, 32)] and backend.ready_at_frame == [True] * 5 and summary["dropped"] == 0
    else:  # files never drop a frame: the first one builds it
        assert backend.prepared == []
    failing = PreparingBackend(fail=True)
    live_source = ListSource(indexed_frames(3), live=True, pace=0.02)
    live_source.info.width, live_source.info.height = 32, 24
    assert Engine(live_source, [], failing).run()["frames_out"] == 3  # a failed warm-up is said, not fatal
    assert "preparing the backend for 32x24 failed (no memory for the engine)" in caplog.text


def test_ctrl_c_while_the_backend_is_built_still_finalizes(tmp_path):
    class Interrupted(PreparingBackend):
        def prepare(self, shape):
            raise KeyboardInterrupt

    source = ListSource(indexed_frames(50), live=True, pace=0.01)
    source.info.width, source.info.height = 32, 24
    sink = open_sink(str(tmp_path / "out.mkv"), source.info)
    summary = Engine(source, [sink], Interrupted()).run()
    assert summary["stopped_by"] == "interrupted" and summary["frames_out"] <= 1
    assert sink._closed


def test_current_fps_falls_when_frames_stop(monkeypatch):
    from nirvision.runtime import stats as stats_module
    from nirvision.runtime.stats import RunStats

    clock = {"t": 100.0}
    monkeypatch.setattr(stats_module.time, "perf_counter", lambda: clock["t"])
    s = RunStats()
    for i in range(26):  # 25 frames a second
        clock["t"] = 100.0 + i * 0.04
        s._recent_out.append(clock["t"])
    assert s.current_fps() == pytest.approx(25.0)
    clock["t"] += 0.06  # a little late: still the rate of the window
    assert s.current_fps() == pytest.approx(25.0)
    clock["t"] += 10.0  # the stream is gone: the wait counts
    assert s.current_fps() < 2.5
    for i in range(5):  # back after the outage, at 15 frames a second: the rate since, not the outage's
        clock["t"] += 1 / 15
        s._recent_out.append(clock["t"])
    assert s.current_fps() == pytest.approx(15.0)
    back = RunStats()  # one frame since the outage: the window as it is (the outage in it)
    for t in (0.0, 0.04, 0.08, 10.0):
        back._recent_out.append(100.0 + t)
    clock["t"] = 110.0
    assert back.current_fps() == pytest.approx(3 / 10.0)


@pytest.mark.parametrize("in_flight", [1, 3])
def test_after_a_failed_frame_nothing_later_is_written_and_every_frame_is_counted(tmp_path, in_flight):
    class FailsAtTen(OverlappingStub):
        max_in_flight = in_flight

        def infer_uint8(self, frames):
            if int(frames[0, 0, 0]) == 10:
                raise RuntimeError("inference failed")
            return super().infer_uint8(frames)

    source = ListSource(indexed_frames(40))
    sink, recording = open_sink(str(tmp_path / "out.mkv"), source.info), RecordingSink()
    engine = Engine(source, [sink, recording], FailsAtTen(delay=0.005), EngineOptions(queue_size=QUEUE))
    with pytest.raises(RuntimeError, match="inference failed"):
        engine.run()
    s = engine.stats
    assert s.frames_out == 10 and s.frames_in == s.frames_out + s.discarded + s.dropped
    # the output holds frames 0-9 and no frame after the failed one (the stub's red channel is the index)
    assert [(i, int(image[0, 0, 0])) for i, image, _ in recording.written] == [(i, i) for i in range(10)]
    assert len(read_video(tmp_path / "out.mkv")["times"]) == 10


def test_a_broken_frame_is_counted_when_it_stops_the_run(tmp_path):
    frames = indexed_frames(20)
    frames[5] = np.full((24, 32), np.nan, np.float32)
    engine = Engine(ListSource(frames), [], StubBackend(), EngineOptions(queue_size=QUEUE))
    with pytest.raises(ValueError, match="frame 5"):
        engine.run()
    s = engine.stats
    assert s.frames_out == 5 and s.frames_in == s.frames_out + s.discarded
