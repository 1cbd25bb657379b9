"""Fixes from an 11-minute live RTSP soak test.

A stalled camera is said after --read-timeout (not twice that), and the timeline keeps the
outage at its real length (the frame FFmpeg gives out at the timeout does not date the frames
after the reconnection early); the status line, the engine's status and ``/status.json`` say a
live source is down (0 fps) instead of a rate slowly falling; ``wait`` (for the camera) is kept
out of ``decode``; a live source that changes size says the backend is built for the new size,
what it took and how to avoid it; ``--keep`` removes the lock files a killed run left beside the
pieces it deletes; a stop while connecting is said once. The RTSP source runs on scripted
connections and a scripted clock (no server, no timing), but for one test against the server.
"""
from __future__ import annotations

import io
import logging
import re
import signal
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime
from fractions import Fraction
from types import SimpleNamespace

import av
import numpy as np
import pytest

from nirvision.cli.colorize import Progress
from nirvision.io import ReconnectPolicy, rtsp_source
from nirvision.io.base import Frame, SourceInfo
from nirvision.io.http_sink import HttpViewSink
from nirvision.io.output_lock import LOCK_SUFFIX, OutputClaim, lock_path
from nirvision.io.rtsp_source import TIME_BASE, LiveClock, RTSPSource
from nirvision.io.segment_sink import SegmentSink
from nirvision.runtime.engine import Engine, EngineOptions
from tests.io.media import ListSource, StubBackend, start_cli

SECRET = "S3cretCamPW"
URL = f"rtsp://cam:{SECRET}@127.0.0.1:554/test"


class Clock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def video_frame(stream_s: float, size=(48, 64)) -> av.VideoFrame:
    vf = av.VideoFrame.from_ndarray(np.zeros(size, np.uint8), format="gray")
    vf.pts, vf.time_base = round(stream_s * 90000), Fraction(1, 90000)
    return vf


class Packet:
    def __init__(self, stream_s: float):
        self.frame = video_frame(stream_s)

    def decode(self):
        return [self.frame]


class Connection:
    """One scripted RTSP connection, as PyAV gives it: ``steps`` run at each read, in order:
    ("wait", s) the clock goes on s seconds, ("hook", fn) fn() is called (the read is under
    way), ("packet", stream_s) a packet with that frame is read, ("timeout",) the read timeout
    ends the read with FFmpeg's "Immediate exit requested". ``opening``: (seconds, hook) the
    connection takes to open, and what to call once it is open."""

    def __init__(self, clock: Clock, steps, opening=(0.0, None)):
        self.clock, self.steps, self.opening = clock, steps, opening
        self.streams = SimpleNamespace(video=[SimpleNamespace(average_rate=Fraction(10), guessed_rate=None,
                                                              codec_context=SimpleNamespace(width=64, height=48))])

    def demux(self, _stream):
        for step in self.steps:
            if step[0] == "wait":
                self.clock.t += step[1]
            elif step[0] == "hook":
                step[1]()
            elif step[0] == "packet":
                yield Packet(step[1])
            else:
                raise av.error.ExitError(-1414092869, "Immediate exit requested")

    def close(self):
        pass


def paced(first: float, count: int, interval: float = 0.1):
    """Steps of ``count`` frames at the camera's pace from stream time ``first``."""
    return [s for i in range(count) for s in (("wait", interval), ("packet", round(first + i * interval, 3)))]


def scripted_source(monkeypatch, clock: Clock, connections, read_timeout: float = 5.0) -> RTSPSource:
    pending = iter(connections)

    def open_once(_self):
        conn = next(pending)
        conn.asked_at, (seconds, hook) = clock.t, conn.opening
        clock.t += seconds
        if hook is not None:
            hook()
        return conn

    monkeypatch.setattr(RTSPSource, "_open_once", open_once)
    real = rtsp_source.BurstFilter
    monkeypatch.setattr(rtsp_source, "BurstFilter", lambda interval: real(interval, clock))
    source = RTSPSource(URL, open_timeout=10, read_timeout=read_timeout, policy=ReconnectPolicy(attempts=None, initial_delay=0.5))
    source.now = clock
    return source


def frames_of(source: RTSPSource, count: int) -> list[Frame]:
    out = []
    for frame in source:
        out.append(frame)
        if len(out) == count:
            break
    source.close()
    return out


# 1. a stall: said after --read-timeout, and the outage kept at its real length -------------------

def test_a_frame_that_came_late_does_not_shorten_the_gap_after_a_reconnection():
    clock = LiveClock(lambda: 0.0)
    for i in range(11):  # stream times 0.0 .. 1.0, each read as it was sent
        clock.pts(i / 10, arrival=100.0 + i / 10)
    clock.pts(1.1, arrival=106.1)  # sent at 101.1, given out by FFmpeg at the read timeout, 5 s late
    clock.new_connection()
    # back at 120.0: 18.9 s after the last frame was sent, so 1.1 + 18.9 on the output clock (was 15.0)
    assert clock.pts(50.0, arrival=120.0) == round(20.0 / TIME_BASE)
    assert clock.pts(50.1, arrival=120.1) == round(20.1 / TIME_BASE)


def test_a_stalled_camera_is_said_after_the_read_timeout_and_the_outage_keeps_its_length(monkeypatch, caplog):
    caplog.set_level(logging.WARNING, logger="nirvision.io.rtsp_source")
    clock = Clock()
    seen = {}
    first = Connection(clock, paced(0.0, 11) + [
        # the camera stops after sending the frame of 1.1 s, which FFmpeg's parser holds back
        # until the read timeout interrupts the read; the read after that would wait it again
        # (FFmpeg's interrupt fires a little after the timeout: 5.05 s)
        ("wait", 3.0), ("hook", lambda: seen.setdefault("stalled", source.outage())),
        ("wait", 2.05), ("packet", 1.1), ("wait", 5.05), ("timeout",)])

    def reopened():
        seen["state"] = source.outage()

    second = Connection(clock, paced(500.0, 5), opening=(13.95, reopened))  # back at 1020.1, 13.95 s after the stall was said
    source = scripted_source(monkeypatch, clock, [first, second])
    frames = frames_of(source, 14)
    times = [round(f.time, 3) for f in frames]
    assert times[:12] == [round(i / 10, 3) for i in range(12)]  # the late frame keeps its place
    assert second.asked_at == pytest.approx(1006.15)  # at the read timeout after the stall (was 1011.2, twice that)
    # the last frame, of 1.1 s, was sent at 1001.2 (the anchor: the frame of 0.0 read at 1000.1);
    # the next was read at 1020.2: 1.1 + 19.0 = 20.1 (was 15.15, every frame after dated 5 s early)
    assert times[12:] == [20.1, 20.2]
    assert source.disconnects == 1 and source.reconnects == 1
    lost = [r.getMessage() for r in caplog.records if "disconnected" in r.getMessage()]
    assert lost == ["rtsp://cam:***@127.0.0.1:554/test: disconnected (no data for 5 s, --read-timeout)"]
    # what the camera kept the reader waiting: every read, the stall and the reconnection
    assert source.waited_s == pytest.approx(1020.3 - 1000.0)
    assert seen["stalled"] == ("stalled", pytest.approx(3.0), "stalled: no data from rtsp://cam:***@127.0.0.1:554/test")
    # without frames since the stalled read began (1001.1), not since the late frame came out of it (1006.15)
    assert seen["state"] == ("reconnecting", pytest.approx(19.0), "reconnecting to rtsp://cam:***@127.0.0.1:554/test")


def test_a_camera_that_ends_the_stream_is_reconnecting_until_frames_come_again(monkeypatch):
    clock = Clock()
    seen = []
    first = Connection(clock, paced(0.0, 3))  # the stream ends (a killed server): no timeout
    second = Connection(clock, [("wait", 0.1), ("hook", lambda: seen.append(source.outage())), ("packet", 0.0)] + paced(0.1, 3),
                        opening=(4.0, lambda: seen.append(source.outage())))
    source = scripted_source(monkeypatch, clock, [first, second])
    it = iter(source)
    for _ in range(3):
        next(it)
        assert source.outage() is None  # frames come
    next(it)
    assert seen == [("reconnecting", pytest.approx(4.0), "reconnecting to rtsp://cam:***@127.0.0.1:554/test"),
                    ("reconnecting", pytest.approx(4.1), "reconnecting to rtsp://cam:***@127.0.0.1:554/test")]
    next(it)
    assert source.outage() is None
    source.close()


# 4. the status line, the engine's status and /status.json say the stream is down --------------

def test_an_outage_shows_0_fps_and_the_state_in_the_status_line_and_status_json(monkeypatch):
    clock = Clock()
    seen = {}
    engine_box = {}

    def reopened():
        seen["status"] = engine_box["engine"].status()
        seen["report"] = engine_box["view"].report()
        try:
            urllib.request.urlopen(engine_box["view"].url + "health", timeout=30)
        except urllib.error.HTTPError as exc:
            seen["health"] = (exc.code, exc.read().decode())

    first = Connection(clock, paced(0.0, 5))
    second = Connection(clock, paced(9.0, 2), opening=(58.0, reopened))
    source = scripted_source(monkeypatch, clock, [first, second])
    engine = Engine(source, [], StubBackend())
    for _ in range(5):  # the writer wrote five frames: a rate to show, but for the outage
        engine.stats.wrote()
    view = HttpViewSink("http://127.0.0.1:0")
    try:
        view.watch(engine.status)
        view.write(Frame(np.zeros((4, 4), np.uint8), 0), np.zeros((4, 4, 3), np.uint8))  # a frame a moment ago (the real clock)
        engine_box.update(engine=engine, view=view)
        assert engine.status()["state"] == "streaming" and "waiting" not in engine.status()
        frames_of(source, 6)
    finally:
        view.close()
    status = seen["status"]
    assert status["fps"] == 0.0  # not the last rate falling slowly
    assert (status["state"], status["outage_s"], status["waiting"]) == ("reconnecting", 58.0, "reconnecting to rtsp://cam:***@127.0.0.1:554/test")
    report = seen["report"]
    assert (report["state"], report["fps"], report["waiting"]) == ("reconnecting", 0.0, "reconnecting to rtsp://cam:***@127.0.0.1:554/test")
    assert SECRET not in str(report)
    # /health: down for 58 s (the outage), though the view's last frame is recent on the real clock
    assert report["healthy"] is False and report["last_frame_age_s"] < 58
    assert seen["health"] == (503, "no frame for 58 s (reconnecting to rtsp://cam:***@127.0.0.1:554/test)\n")
    out = io.StringIO()
    Progress(out)({**status, "frames_out": 2324, "elapsed_s": 331.0})
    assert out.getvalue() == "2324 frames  0.0 fps (reconnecting, 58 s without frames)  dropped 0  reconnects 0  decode errors 0  331 s\n"
    out = io.StringIO()
    Progress(out)({**status, "fps": 10.0, "frames_out": 100, "elapsed_s": 10.0, "state": "streaming", "waiting": None})
    assert out.getvalue() == "100 frames  10.0 fps  dropped 0  reconnects 0  decode errors 0  10 s\n"


# 3. decode is decoding: the wait for the camera is a stage of its own -------------------------

class WaitingSource(ListSource):
    """A live source that waits ``wait_s`` for each frame and says so (``waited_s``), as RTSP does."""

    def __init__(self, images, wait_s: float):
        super().__init__(images, live=True)
        self.wait_s, self.waited_s = wait_s, 0.0

    def __iter__(self):
        for i, img in enumerate(self.images):
            t0 = time.perf_counter()
            threading.Event().wait(self.wait_s)  # the camera, or an outage
            self.waited_s += time.perf_counter() - t0
            self.frames_read += 1
            yield Frame(img, index=i, pts=i, time_base=self.info.time_base, t_read=time.perf_counter())


def test_the_wait_for_a_live_camera_is_not_counted_as_decoding():
    source = WaitingSource([np.zeros((8, 8), np.uint8)] * 3, wait_s=0.3)
    summary = Engine(source, [], StubBackend(), EngineOptions(drop=False)).run()
    latency = summary["latency_ms"]
    assert latency["wait"]["mean"] >= 300.0
    assert latency["decode"]["mean"] < latency["wait"]["mean"]  # what is left: the source's own work, not the 300 ms
    assert summary["frames_out"] == 3
    # a recorded source tells no wait: no such stage in its summary
    summary = Engine(ListSource([np.zeros((8, 8), np.uint8)] * 2), [], StubBackend()).run()
    assert "wait" not in summary["latency_ms"] and summary["latency_ms"]["decode"]["mean"] is not None


# 2. a live source that changes size: the build for the new size is said ------------------------

class BuildsPerSize(StubBackend):
    """A stand-in for ONNX Runtime: a model is built for each frame size (``build_s`` each)."""

    name = "onnxruntime"

    def __init__(self, build_s: float = 0.0):
        super().__init__()
        self.build_s, self.log = build_s, []

    def prepare(self, shape):
        self.log.append(("prepare", tuple(shape)))
        threading.Event().wait(self.build_s)

    def infer_uint8(self, frames):
        self.log.append(("infer", frames.shape))
        return super().infer_uint8(frames)


def engine_messages(caplog, source, backend):
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="nirvision.runtime.engine"):
        summary = Engine(source, [], backend, EngineOptions(drop=False)).run()
    return summary, [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "nirvision.runtime.engine" and "size" in r.getMessage()]


def test_a_live_source_changing_size_says_the_backend_is_built_for_it_and_what_it_took(caplog):
    backend = BuildsPerSize(build_s=1.0)
    summary, said = engine_messages(caplog, ListSource([np.zeros((24, 32), np.uint8), np.zeros((40, 16), np.uint8)], live=True), backend)
    assert summary["resolution_changes"] == 1 and summary["frames_out"] == 2
    assert backend.log == [("infer", (1, 24, 32)), ("prepare", (1, 1, 40, 16)), ("infer", (1, 40, 16))]  # built before the frame goes in
    (level, change), (ready_level, ready) = said
    assert (level, change) == ("WARNING", "engine: the source changed size from 32x24 to 16x40 at frame 1; preparing the backend for "
                                          "16x40 frames (frames are dropped meanwhile)")
    assert ready_level == "WARNING" and re.match(r"engine: backend ready for 16x40 frames in \d+\.\d s", ready)
    assert ", 0 frames dropped meanwhile: onnxruntime exports an ONNX model for each new frame size" in ready
    assert "--backend eager goes on at once at any size" in ready
    assert summary["latency_ms"]["pre"]["mean"] < 500  # the build is not a frame's preprocessing


def test_a_live_source_changing_size_on_a_backend_of_any_size_says_only_the_change(caplog):
    summary, said = engine_messages(caplog, ListSource([np.zeros((24, 32), np.uint8), np.zeros((40, 16), np.uint8)], live=True), StubBackend())
    assert said == [("WARNING", "engine: the source changed size from 32x24 to 16x40 at frame 1")]
    assert summary["frames_out"] == 2


# 5. --keep removes the lock files a killed run left beside the pieces it deletes --------------

def test_keep_removes_the_lock_files_of_the_pieces_it_deletes_unless_a_run_holds_them(tmp_path):
    killed = ["cam_20261130-100000.mp4", "cam_20261130-110000.mp4"]
    for name in killed:  # a killed run's pieces, each with its lock file (no run holds them)
        (tmp_path / name).write_bytes(b"x")
        lock_path(tmp_path / name).write_text("10524 2026-11-30T10:00:00+0000\n")
    gone = lock_path(tmp_path / "cam_20261129-090000.mp4")  # its piece deleted before (by a version that left the lock)
    gone.write_text("10524 2026-11-29T09:00:00+0000\n")
    held = OutputClaim(tmp_path / "cam_20261129-080000.mp4")  # another run is writing that piece: its lock stays
    other = lock_path(tmp_path / "other_20261130-100000.mp4")  # not a piece of this recording
    other.write_text("1 x\n")
    start = datetime(2026, 12, 1, 8, 0, 0).timestamp()
    now = {"t": start}
    info = SourceInfo(kind="rtsp", description="cam", live=True, fps=Fraction(1), time_base=Fraction(1, 1000))

    class Piece:
        def __init__(self, path):
            self.path, self.claim = path, OutputClaim(path)  # as VideoSink claims each piece
            path.write_bytes(b"piece")

        def write(self, frame, image):
            pass

        def write_audio(self, packets):
            pass

        def close(self):
            self.claim.release()

    sink = SegmentSink(tmp_path / "cam.mp4", info, 60, keep=1, open_piece=lambda p, i: Piece(p), clock=lambda: now["t"])
    try:
        for i in range(3 * 60):  # three pieces of a minute
            now["t"] = start + i
            sink.write(Frame(np.zeros((4, 4), np.uint8), index=i, pts=1000 * i, time_base=Fraction(1, 1000)), np.zeros((4, 4, 3), np.uint8))
        sink.close()
        locks = sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(LOCK_SUFFIX))
        assert locks == [held.path.name, other.name]  # the killed run's and the orphan gone; the held one and another name's kept
        assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".mp4") == ["cam_20261201-080200.mp4"]
    finally:
        held.release()
    assert not held.path.exists()


# minor: a stop while connecting is said once -------------------------------------------------

def test_sigterm_while_connecting_is_said_once(tmp_path):
    from tests.io.test_sources import _blackhole

    server, held = _blackhole()  # accepts and never answers: the command waits in the connection
    try:
        proc = start_cli(["colorize", f"rtsp://u:pw@127.0.0.1:{server.getsockname()[1]}/x", "-o", str(tmp_path / "o.mp4"), "--model", "lite",
                          "--threads", "1", "--reconnect", "forever", "--open-timeout", "30", "--read-timeout", "1", "--no-progress"], tmp_path)
        deadline = time.monotonic() + 60
        while not held and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert held, "the command never connected"
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=30)
        except Exception:
            proc.kill()
            raise
        assert proc.returncode == 143, err
        said = [line for line in err.splitlines() if "stopped by SIGTERM" in line]
        assert said == ["nirvision colorize: stopped by SIGTERM while connecting"], err
    finally:
        server.close()
        for s in held:
            s.close()


# against the RTSP server: FFmpeg's late frame at a stall, as the scripted tests assume ---------

@pytest.mark.rtsp
def test_a_frozen_server_is_said_after_the_read_timeout_and_the_outage_keeps_its_length(tmp_path, caplog):
    from tests.io.test_rtsp import AVAILABLE, Server, free_port

    if not AVAILABLE:
        pytest.skip("GStreamer RTSP server not installed")
    caplog.set_level(logging.WARNING, logger="nirvision.io.rtsp_source")
    server = Server(free_port())
    server.start()
    read_timeout = 3.0
    try:
        source = RTSPSource(server.url, open_timeout=3, read_timeout=read_timeout, policy=ReconnectPolicy(attempts=None, initial_delay=0.2, max_delay=0.5))

        def thaw_once_said():  # the reconnection waits for the server: thawed once the stall is said
            deadline = time.monotonic() + 60
            while not source.disconnects and time.monotonic() < deadline:
                time.sleep(0.05)
            server.thaw()

        rows = []  # (arrival, output time, disconnects so far)
        for frame in source:
            rows.append((time.monotonic(), frame.time, source.disconnects))
            if len(rows) == 10:
                server.freeze()
                threading.Thread(target=thaw_once_said, daemon=True).start()
            if source.reconnects and sum(1 for r in rows if r[2]) >= 5:
                break
        source.close()
    finally:
        server.thaw()
        server.kill()
    before = [r for r in rows if not r[2]]
    after = [r for r in rows if r[2]]
    # said at the read timeout after the last frame that came at the camera's pace (was twice that)
    lost = next(r for r in caplog.records if "disconnected" in r.getMessage())
    assert "no data for 3 s, --read-timeout" in lost.getMessage()
    paced_until = max(a for a, _, _ in before if a <= rows[9][0] + 0.5 * read_timeout)
    assert lost.created - (time.time() - time.monotonic()) - paced_until < 1.5 * read_timeout
    # the outage keeps its length: the output clock's gap is the wall clock's (it was short by the read timeout)
    out_gap = after[0][1] - before[-1][1]
    wall_gap = after[0][0] - paced_until
    assert abs(out_gap - wall_gap) < 0.5 * read_timeout, (out_gap, wall_gap)
