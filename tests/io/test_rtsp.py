"""RTSP against GStreamer's RTSP server on 127.0.0.1 (tools/rtsp_server.py, system Python + gi).

Killed and restarted -> the engine reconnects and the output plays; frozen (SIGSTOP) -> no
hang, reconnection attempts; nothing listening -> a clear error, or retries by option;
passwords never reach logs or errors.
"""
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from nirvision.errors import InputError
from nirvision.io import ReconnectPolicy, StreamLost, open_sink
from nirvision.io.rtsp_source import BurstFilter, RTSPSource
from nirvision.runtime.engine import Engine, EngineOptions
from tests.io.media import REPO, StubBackend, read_video, run_cli, run_in_thread, start_cli, wait_for

pytestmark = pytest.mark.rtsp

SYSTEM_PYTHON = "/usr/bin/python3"
SECRET = "pa55-w0rd-xyz"
FAST = ReconnectPolicy(attempts=3, initial_delay=0.2, max_delay=1.0)


def _server_available() -> bool:
    if not Path(SYSTEM_PYTHON).exists():
        return False
    probe = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer, Gst; Gst.init(None); assert Gst.ElementFactory.find('x264enc')"
    return subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True).returncode == 0


AVAILABLE = _server_available()
skip_without_server = pytest.mark.skipif(not AVAILABLE, reason="GStreamer RTSP server (gst-rtsp-server, python3-gi, x264enc) not installed; tools/install-test-deps.sh installs it")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """tools/rtsp_server.py on a port; start, kill, freeze and thaw it."""

    def __init__(self, port: int, auth: bool = False, pattern: str = "ball"):
        self.port = port
        self.auth = auth
        self.pattern = pattern
        self.proc = None

    @property
    def url(self) -> str:
        return f"rtsp://viewer:{SECRET}@127.0.0.1:{self.port}/test"

    def start(self) -> None:
        auth = ["--user", "viewer", "--password", SECRET] if self.auth else []
        self.proc = subprocess.Popen([SYSTEM_PYTHON, str(REPO / "tools" / "rtsp_server.py"), "--port", str(self.port), "--size", "64x48", "--fps", "25", "--pattern", self.pattern, *auth],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("READY"), f"RTSP server did not start: {line}{self.proc.stderr.read() if self.proc.poll() is not None else ''}"

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.kill()
            self.proc.wait()

    def freeze(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)


@pytest.fixture
def server():
    if not AVAILABLE:
        pytest.skip("GStreamer RTSP server not installed")
    srv = Server(free_port())
    srv.start()
    yield srv
    srv.kill()


def no_secret_in(caplog, *texts):
    for record in caplog.records:
        assert SECRET not in record.getMessage()
    for text in texts:
        assert SECRET not in str(text)


def start_engine(server, tmp_path, policy=FAST):
    source = RTSPSource(server.url, open_timeout=3, read_timeout=2, policy=policy)
    sink = open_sink(str(tmp_path / "out.mp4"), source.info)
    engine = Engine(source, [sink], StubBackend())
    thread, box = run_in_thread(engine.run)
    return engine, thread, box


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_burst_filter_keeps_the_newest_of_an_opening_burst_then_every_frame():
    clock = FakeClock()
    burst = BurstFilter(0.04, clock)
    passed = []
    for i in range(6):  # buffered while connecting: 40 ms of stream apart, arriving 1 ms apart
        passed += burst.offer(i, i * 0.04)
        clock.now += 0.001
    assert passed == [] and burst.stale == 5  # frame 5 held: the next arrival tells
    clock.now += 0.035
    passed += burst.offer(6, 6 * 0.04)  # at the camera's pace: the burst is over
    assert passed == [5, 6] and burst.over
    clock.now += 0.001  # from now on a frame goes on as it comes, however close to the last
    assert burst.offer(7, 7 * 0.04) == [7] and burst.stale == 5 and burst.flush() == []


def test_burst_filter_passes_a_paced_stream_whole_and_frames_without_times():
    clock = FakeClock()
    burst = BurstFilter(0.04, clock)
    assert burst.offer("a", None) == []  # held until the next arrival says it was not late
    clock.now += 0.04
    assert burst.offer("b", None) == ["a", "b"] and burst.stale == 0
    lone = BurstFilter(0.04, clock)
    assert lone.offer("only", 0.0) == [] and lone.flush() == ["only"]  # a stream that ends gives its held frame
    late = BurstFilter(0.04, clock)
    for i in range(3):  # a burst looked for past its window is not one: the 10 s bound
        late.offer(i, i * 0.04)
        clock.now += 6
    assert late.over and late.stale == 0


class BurstArrivals:
    """The clock of a connection's BurstFilter: the first 10 frames come 1 ms apart, as the
    frames FFmpeg buffered while connecting do, then one every 40 ms. (A real burst needs the
    server to have run ahead while the client waited: on a loaded machine it may not have;
    the filter's reading of real arrival times is tested with FakeClock above.)"""

    def __init__(self):
        self.now, self.calls = 100.0, 0

    def __call__(self):
        self.calls += 1  # the first call is the filter's start
        self.now += 0.001 if self.calls <= 11 else 0.04
        return self.now


@skip_without_server
def test_a_connections_opening_burst_is_left_out_not_dropped(server, tmp_path, monkeypatch):
    # the frames buffered while connecting come at once and late: the newest goes on, the
    # others are stale (not read in, not drops), and the output has no hole where they were
    from nirvision.io import rtsp_source

    real = rtsp_source.BurstFilter
    monkeypatch.setattr(rtsp_source, "BurstFilter", lambda interval: real(interval, BurstArrivals()))
    source = RTSPSource(server.url, open_timeout=3, read_timeout=2, policy=FAST, max_frames=25)
    sink = open_sink(str(tmp_path / "out.mp4"), source.info)
    # (frames are not dropped for a slow machine here: what is left out is the burst's doing alone)
    summary = Engine(source, [sink], StubBackend(), EngineOptions(drop=False)).run()
    assert summary["stale"] == 9 and summary["reconnects"] == 0  # frames 1-9 of the burst; the 10th went on
    assert summary["frames_in"] == summary["frames_out"] == 25 and summary["dropped"] == 0
    times = read_video(tmp_path / "out.mp4")["times"]
    assert len(times) == 25 and times[0] == 0 and max(b - a for a, b in zip(times, times[1:])) < 0.2  # no hole where the burst was


@skip_without_server
def test_killed_and_restarted_server_reconnects_and_output_plays(server, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    # retried until the server is back: its restart takes a second or more on a loaded machine,
    # longer than FAST's three attempts (0.2 + 0.4 + 0.8 s)
    engine, thread, box = start_engine(server, tmp_path, ReconnectPolicy(attempts=None, initial_delay=0.2, max_delay=1.0))
    wait_for(lambda: engine.stats.frames_out >= 10, 60, "ten frames before the kill")
    server.kill()
    server.start()
    wait_for(lambda: engine.source.reconnects >= 1 or not thread.is_alive(), 60, "a reconnection")
    before = engine.stats.frames_out
    wait_for(lambda: engine.stats.frames_out >= before + 10 or not thread.is_alive(), 60, "frames after the reconnection")
    engine.request_stop("test")
    thread.join(60)
    assert "error" not in box, box.get("error")
    summary = box["result"]
    assert summary["reconnects"] >= 1 and summary["frames_out"] >= before + 10  # frames after the reconnection too
    video = read_video(tmp_path / "out.mp4")
    assert len(video["times"]) == summary["frames_out"]
    assert all(b > a for a, b in zip(video["times"], video["times"][1:]))  # one increasing timeline
    no_secret_in(caplog)


@skip_without_server
def test_frozen_server_does_not_hang(server, tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    engine, thread, box = start_engine(server, tmp_path, ReconnectPolicy(attempts=2, initial_delay=0.2, max_delay=0.5))
    wait_for(lambda: engine.stats.frames_out >= 5, 60, "five frames before the freeze")
    server.freeze()
    try:
        # read timeout 2 s, then 2 attempts of at most 3 s each: the run must end on its own
        thread.join(60)
        assert not thread.is_alive(), "the engine hung on a frozen server"
    finally:
        server.thaw()
    assert isinstance(box.get("error"), StreamLost)
    attempts = [r for r in caplog.records if "cannot connect" in r.getMessage() and "retrying" in r.getMessage()]
    assert len(attempts) == 2
    assert len(read_video(tmp_path / "out.mp4")["times"]) == engine.stats.frames_out >= 5
    no_secret_in(caplog, box["error"])


@skip_without_server
def test_frozen_then_thawed_server_is_picked_up_again(server, tmp_path):
    engine, thread, box = start_engine(server, tmp_path, ReconnectPolicy(attempts=None, initial_delay=0.2, max_delay=1.0))
    wait_for(lambda: engine.stats.frames_out >= 5, 60, "five frames before the freeze")
    server.freeze()
    wait_for(lambda: engine.source.disconnects >= 1 or not thread.is_alive(), 30, "the disconnect (read timeout)")
    server.thaw()
    wait_for(lambda: engine.source.reconnects >= 1 or not thread.is_alive(), 60, "a reconnection")
    before = engine.stats.frames_out
    wait_for(lambda: engine.stats.frames_out > before or not thread.is_alive(), 60, "frames after the thaw")
    engine.request_stop("test")
    thread.join(60)
    assert "error" not in box, box.get("error")
    assert box["result"]["reconnects"] >= 1 and box["result"]["frames_out"] > before  # frames came again after the thaw


@skip_without_server
def test_stop_while_reconnecting_forever_ends_cleanly(server, tmp_path):
    engine, thread, box = start_engine(server, tmp_path, ReconnectPolicy(attempts=None, initial_delay=0.2, max_delay=0.5))
    wait_for(lambda: engine.stats.frames_out >= 5, 60, "five frames before the kill")
    server.kill()
    wait_for(lambda: engine.source.disconnects >= 1, 30, "the disconnect")
    engine.request_stop("SIGINT")
    thread.join(60)
    assert not thread.is_alive() and "error" not in box, box.get("error")
    assert box["result"]["stopped_by"] == "SIGINT"
    assert len(read_video(tmp_path / "out.mp4")["times"]) == box["result"]["frames_out"] >= 5


def test_a_stop_while_a_silent_server_is_connecting_is_answered_at_once():
    # a port that accepts the connection and never answers: the opening would take --open-timeout
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        stop = threading.Event()
        url = f"rtsp://viewer:{SECRET}@127.0.0.1:{silent.getsockname()[1]}/test"
        box = {}
        thread = threading.Thread(target=lambda: box.setdefault("error", _raises(lambda: RTSPSource(url, open_timeout=30, read_timeout=30, stop=stop))))
        thread.start()
        time.sleep(0.5)
        began = time.monotonic()
        stop.set()
        thread.join(10)
        assert not thread.is_alive() and time.monotonic() - began < 2.0
        assert isinstance(box["error"], KeyboardInterrupt)  # stopped while connecting, as the CLI expects


def _raises(fn):
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001
        return exc
    return None


@skip_without_server
def test_a_stop_during_a_frozen_read_ends_the_run_without_waiting_out_the_read_timeout(server, tmp_path):
    source = RTSPSource(server.url, open_timeout=3, read_timeout=30, policy=FAST)
    sink = open_sink(str(tmp_path / "out.mp4"), source.info)
    engine = Engine(source, [sink], StubBackend())
    thread, box = run_in_thread(engine.run)
    wait_for(lambda: engine.stats.frames_out >= 5, 60, "five frames before the freeze")
    server.freeze()
    try:
        time.sleep(0.5)
        began = time.monotonic()
        engine.request_stop("SIGTERM")
        thread.join(20)
        assert not thread.is_alive() and time.monotonic() - began < 8.0  # not the 30 s read timeout
    finally:
        server.thaw()
    summary = box["result"]
    assert summary["stopped_by"] == "SIGTERM"
    assert summary["frames_in"] == summary["frames_out"] + summary["dropped"] + summary["discarded"]
    assert len(read_video(tmp_path / "out.mp4")["times"]) == summary["frames_out"] >= 5


def test_a_camera_off_for_long_is_said_a_few_times_then_once_a_minute(caplog):
    caplog.set_level(logging.DEBUG, logger="nirvision.io.rtsp_source")
    url = f"rtsp://viewer:{SECRET}@127.0.0.1:{free_port()}/test"
    with pytest.raises(InputError, match="after 10 attempts"):
        RTSPSource(url, open_timeout=2, read_timeout=2, policy=ReconnectPolicy(attempts=9, initial_delay=0.01, max_delay=0.01))
    retries = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retries) == 9 and [r.levelno for r in retries] == [logging.WARNING] * 5 + [logging.DEBUG] * 4
    no_secret_in(caplog)


@skip_without_server
@pytest.mark.parametrize("what", ["password", "path"])
def test_a_camera_that_refuses_the_user_or_the_path_is_not_retried(tmp_path, caplog, what):
    srv = Server(free_port(), auth=True)
    srv.start()
    try:
        url = srv.url.replace(SECRET, "wrong-" + SECRET) if what == "password" else srv.url.replace("/test", "/nothere")
        began = time.monotonic()
        with pytest.raises(InputError) as info:
            RTSPSource(url, open_timeout=3, read_timeout=3, policy=ReconnectPolicy(attempts=None))  # forever: still not retried
        assert time.monotonic() - began < 10
        expected = {"password": "401 Unauthorized", "path": "404 Not Found"}[what]
        assert "the camera refused the stream" in str(info.value) and expected in str(info.value)
        assert ("user and password" if what == "password" else "stream path") in str(info.value)
        assert not [r for r in caplog.records if "retrying" in r.getMessage()]
        no_secret_in(caplog, info.value)
    finally:
        srv.kill()


def test_nothing_listening_is_a_clear_error(caplog):
    url = f"rtsp://viewer:{SECRET}@127.0.0.1:{free_port()}/test"
    with pytest.raises(InputError, match="cannot connect") as info:
        RTSPSource(url, open_timeout=2, read_timeout=2, policy=ReconnectPolicy(attempts=0))
    assert "rtsp://viewer:***@127.0.0.1" in str(info.value)
    no_secret_in(caplog, info.value)


def test_nothing_listening_retries_by_option(caplog):
    caplog.set_level(logging.WARNING)
    url = f"rtsp://viewer:{SECRET}@127.0.0.1:{free_port()}/test"
    with pytest.raises(InputError, match="after 3 attempts") as info:
        RTSPSource(url, open_timeout=2, read_timeout=2, policy=ReconnectPolicy(attempts=2, initial_delay=0.05))
    assert sum("retrying" in r.getMessage() for r in caplog.records) == 2
    no_secret_in(caplog, info.value)


def test_cli_nothing_listening_exit_2_without_password(tmp_path):
    url = f"rtsp://viewer:{SECRET}@127.0.0.1:{free_port()}/live"
    r = run_cli(["-vv", "colorize", url, "-o", "out.mp4", "--reconnect", "1", "--open-timeout", "2", "--model", "lite"], cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("nirvision colorize: error: RTSP source rtsp://viewer:***@127.0.0.1")
    assert SECRET not in r.stderr + r.stdout and "Traceback" not in r.stderr


@skip_without_server
def test_cli_lost_stream_without_retries_is_a_failure_and_output_plays(server, tmp_path, tiny_model):
    proc = start_cli(["colorize", server.url, "-o", "out.mp4", "--reconnect", "0", "--read-timeout", "2", "--model", str(tiny_model),
                      "--threads", "1", "--status-interval", "0.2", "--stats-json", "s.json"], cwd=tmp_path)

    def frames_written():
        line = proc.stderr.readline()
        assert line or proc.poll() is None, f"colorize ended early: {proc.stderr.read()}"
        return line.split(" ")[0].isdigit() and int(line.split(" ")[0]) >= 5

    wait_for(frames_written, 120, "a status line with five frames")
    server.kill()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("nirvision colorize: failed: StreamLost: RTSP source rtsp://viewer:***@127.0.0.1") and SECRET not in err
    stats = __import__("json").loads((tmp_path / "s.json").read_text())
    assert len(read_video(tmp_path / "out.mp4")["times"]) == stats["frames_out"] >= 5


@skip_without_server
def test_password_protected_stream(tmp_path, caplog):
    srv = Server(free_port(), auth=True)
    srv.start()
    try:
        source = RTSPSource(srv.url, open_timeout=3, read_timeout=2, policy=ReconnectPolicy(attempts=0))
        frame = next(iter(source))
        source.close()
        assert frame.image.shape == (48, 64)
        with pytest.raises(InputError, match="401") as info:
            RTSPSource(srv.url.replace(SECRET, SECRET + "-wrong"), open_timeout=3, read_timeout=2, policy=ReconnectPolicy(attempts=0))
        assert "viewer:***@" in str(info.value)
        no_secret_in(caplog, info.value)
    finally:
        srv.kill()


@skip_without_server
def test_colour_stream_passes_through_and_a_black_and_white_one_is_colorized(server):
    bars = Server(free_port(), pattern="smpte")  # colour bars: a camera by day; the fixture's ball: white on black, by night
    bars.start()
    try:
        for srv, colour in ((bars, True), (server, False)):
            source = RTSPSource(srv.url, open_timeout=3, read_timeout=2, policy=ReconnectPolicy(attempts=0), color_frames="pass")
            frames = [f for _, f in zip(range(3), source)]
            source.close()
            assert len(frames) == 3
            for frame in frames:
                assert frame.image.shape == (48, 64)
                if colour:
                    assert frame.color.shape == (48, 64, 3) and frame.color.dtype.name == "uint8"
                    # the first bars: white, yellow, cyan, green (within H.264's loss)
                    row = frame.color[10].astype(int)
                    for x, rgb in ((2, (255, 255, 255)), (14, (255, 255, 0)), (22, (0, 255, 255)), (30, (0, 255, 0))):
                        assert np.abs(row[x] - rgb).max() < 40, (x, row[x])
                else:
                    assert frame.color is None
    finally:
        bars.kill()
