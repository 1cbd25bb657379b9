"""``-o http://HOST:PORT``: the colorized frames as Motion JPEG for browsers."""
import re
import socket
import sys
import threading
import time
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest

from nirvision.cli import main
from nirvision.errors import InputError
from nirvision.io import open_sink, open_source
from nirvision.io.base import Frame
from nirvision.runtime.engine import Engine
from tests.io.media import StubBackend, wait_for

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ViewClock:
    """Stands in for the view's ``time`` module: ``monotonic()`` is ``now``, moved by the test."""

    def __init__(self):
        self.now = 1000.0

    def monotonic(self):
        return self.now


@pytest.fixture
def view_clock(monkeypatch):
    """The view's clock (frame ages, /health) under the test's control: what /health says at an age
    does not hang on how quickly a loaded machine answers a request."""
    from nirvision.io import http_sink

    clock = ViewClock()
    monkeypatch.setattr(http_sink, "time", clock)
    return clock


def get(url: str):
    try:
        with NO_PROXY.open(url, timeout=10) as r:
            return r.status, r.headers.get("Content-Type"), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type"), exc.read()


def read_parts(url: str, n: int) -> list[np.ndarray]:
    """The first ``n`` JPEG parts of a multipart/x-mixed-replace stream, decoded (BGR)."""
    r = NO_PROXY.open(url, timeout=10)
    boundary = re.search(r"boundary=(\S+)", r.headers["Content-Type"]).group(1)
    images = []
    with r:
        for _ in range(n):
            assert r.readline().strip() == f"--{boundary}".encode()
            headers = {}
            while (line := r.readline().strip()):
                key, value = line.decode().split(":", 1)
                headers[key.lower()] = value.strip()
            assert headers["content-type"] == "image/jpeg"
            data = r.read(int(headers["content-length"]))
            assert r.read(2) == b"\r\n"
            images.append(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR))
    return images


def test_a_browser_sees_the_colorized_frames_live(tmp_path):
    src = open_source("synthetic:64x48@25:150", live=True)
    sink = open_sink("http://127.0.0.1:0", src.info)
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", sink.url) and sink.port > 0
    code, ctype, _ = get(sink.url + "frame.jpg")
    assert code == 503 and ctype == "text/plain"  # nothing colorized yet
    box = {}
    runner = threading.Thread(target=lambda: box.setdefault("summary", Engine(src, [sink], StubBackend()).run()))
    runner.start()
    wait_for(lambda: get(sink.url + "frame.jpg")[0] == 200, 30, "a first frame to watch")
    code, ctype, body = get(sink.url + "frame.jpg")
    frame = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert code == 200 and ctype == "image/jpeg" and frame.shape == (48, 64, 3)
    # the stub colours NIR x as RGB (x, 255 - x, x // 2): green and red add up to 255 everywhere
    b, g, r = (frame[..., k].astype(int) for k in range(3))
    assert np.abs(r + g - 255).mean() < 6 and np.abs(b - r // 2).mean() < 6
    parts = read_parts(sink.url + "stream.mjpg", 3)
    assert [p.shape for p in parts] == [(48, 64, 3)] * 3
    page = get(sink.url)
    assert page[0] == 200 and b'src="/stream.mjpg"' in page[2] and b"synthetic:64x48@25:150" in page[2]
    assert get(sink.url + "other")[0] == 404
    runner.join(30)
    assert box["summary"]["frames_out"] + box["summary"]["dropped"] == 150 and sink.frames_sent >= 3
    with pytest.raises(OSError):  # closed with the run: nothing listens any more
        socket.create_connection(("127.0.0.1", sink.port), timeout=2).close()


def test_a_viewer_that_stops_reading_never_holds_up_the_engine(monkeypatch):
    from nirvision.io import http_sink
    from tests.io.media import ListSource, run_in_thread

    # the server lets a stalled viewer go after VIEWER_TIMEOUT_S: made longer than the run may
    # take, so that an engine held up by the viewer cannot finish by waiting for that timeout
    monkeypatch.setattr(http_sink, "VIEWER_TIMEOUT_S", 300.0)
    # noise: JPEGs of some 200 kB, as many as it takes to pass what the sockets' buffers hold (4 MB
    # or so), so the viewer's thread really blocks writing; paced, so that it blocks mid-run
    noise = [np.random.default_rng(k).integers(0, 256, (480, 640), dtype=np.uint8) for k in range(4)]
    sink = None
    stuck = {}

    def viewer_in_a_write():
        """Whether the viewer's thread is inside a socket write (of ``_stream``)."""
        for f in sys._current_frames().values():
            names = []
            while f is not None:
                names.append(f.f_code.co_name)
                f = f.f_back
            if "_stream" in names and names[0] == "write":
                return True
        return False

    def viewer_stuck():
        """The viewer has been in one write for 2 s: stuck (a write the sockets have room for
        takes a moment even on a loaded machine)."""
        key = (sink.frames_sent, viewer_in_a_write())
        if key != stuck.get("key"):
            stuck.update(key=key, since=time.monotonic())
        return key[1] and time.monotonic() - stuck["since"] > 2.0

    class UntilTheViewerIsStuck(ListSource):
        """Noise frames, paced, until the viewer is stuck (however long a loaded machine takes to
        fill the sockets' buffers), then 20 more: the run goes on without it."""

        def __iter__(self):
            i, last, deadline = 0, None, time.monotonic() + 60
            while last is None or i <= last:
                if last is None and viewer_stuck():
                    last = i + 20
                assert last is not None or time.monotonic() < deadline, "the viewer never got stuck in a write"
                time.sleep(self.pace)
                self.frames_read += 1
                yield Frame(self.images[i % 4], index=i, pts=i, time_base=self.info.time_base, t_read=time.perf_counter())
                i += 1

    src = UntilTheViewerIsStuck(noise, pace=0.015)  # not live: every frame is written
    sink = open_sink("http://127.0.0.1:0", src.info)
    stalled = socket.create_connection(("127.0.0.1", sink.port))
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")  # and never reads
    try:
        wait_for(lambda: sink.viewers == 1, 10, "the stalled viewer to be counted")
        thread, box = run_in_thread(Engine(src, [sink], StubBackend()).run)
        thread.join(90)  # (the run takes 3-4 s; a generous bound for a loaded machine)
        assert not thread.is_alive(), "the engine was held up by a viewer that stopped reading"
        assert "error" not in box, box.get("error")
        frames = box["result"]["frames_out"]
        assert frames == src.frames_read > 20 and box["result"]["dropped"] == 0
        # the viewer is still stuck in a write (it stopped reading), and missed frames the engine went on with
        assert sink.viewers == 1 and 0 < sink.frames_sent < frames - 20
    finally:
        stalled.close()


def test_bad_view_addresses_are_refused_with_the_reason():
    info = open_source("synthetic:64x48@25:1").info
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        with pytest.raises(InputError, match=rf"output http://127.0.0.1:{busy.getsockname()[1]}: cannot listen there \(.*\); expected a free port"):
            open_sink(f"http://127.0.0.1:{busy.getsockname()[1]}", info)
    finally:
        busy.close()
    for spec in ("http://127.0.0.1", "http://127.0.0.1:8080/live", "https://127.0.0.1:8443", "http://admin:hunter2@127.0.0.1:8080/x", "http://:8080"):
        with pytest.raises(InputError, match="expected http://HOST:PORT") as err:
            open_sink(spec, info)
        assert "hunter2" not in str(err.value)
    for spec in ("http://admin@127.0.0.1:0", "http://:hunter2@127.0.0.1:0", "http://admin:@127.0.0.1:0"):
        with pytest.raises(InputError, match="expected a user and a password") as err:
            open_sink(spec, info)
        assert "hunter2" not in str(err.value)
    view = open_sink("http://127.0.0.1:0", info, segment=60, crf=30)  # video file options do not apply to it
    assert type(view).__name__ == "HttpViewSink"
    view.close()


def test_the_command_line_says_where_to_watch(tiny_model, capsys):
    code = main(["colorize", "synthetic:64x48@25:5", "-o", "http://127.0.0.1:0", "--model", str(tiny_model), "--threads", "1", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 0 and re.search(r"watch at http://127\.0\.0\.1:\d+/\n", err) and "5 frames" in err, err


def test_a_slow_encoding_never_holds_up_write(monkeypatch):
    import nirvision.io.http_sink as http_sink

    real = http_sink.cv2.imencode
    encoding, release, encoded = threading.Event(), threading.Event(), threading.Event()

    def slow_imencode(*args, **kwargs):  # a big frame on a busy machine: the encoding lasts until the test says
        encoding.set()
        release.wait(30)
        try:
            return real(*args, **kwargs)
        finally:
            encoded.set()

    monkeypatch.setattr(http_sink.cv2, "imencode", slow_imencode)
    info = open_source("synthetic:64x48@25:1").info
    sink = open_sink("http://127.0.0.1:0", info)
    try:
        frame = np.zeros((48, 64, 3), np.uint8)
        sink.write(None, frame)
        parts = {}
        reader = threading.Thread(target=lambda: parts.setdefault("got", read_parts(sink.url + "stream.mjpg", 2)), daemon=True)
        reader.start()
        wait_for(lambda: sink.viewers == 1 and encoding.is_set(), 10, "the viewer encoding the first frame")
        for k in range(12):  # while the viewer's encoding is held
            sink.write(None, np.full((48, 64, 3), 10 * k, np.uint8))
        # every write returned while the encoding was still going on (a write that waited for it
        # would have returned only once it ended, 30 s on)
        assert not encoded.is_set()
        release.set()
        reader.join(10)
        assert len(parts["got"]) == 2 and int(np.median(parts["got"][1])) == pytest.approx(110, abs=3)  # then the newest frame
    finally:
        release.set()
        sink.close()


def test_ipv6_loopback():
    try:
        socket.create_server(("::1", 0), family=socket.AF_INET6).close()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    sink = open_sink("http://[::1]:0", open_source("synthetic:64x48@25:1").info)
    try:
        assert re.fullmatch(r"http://\[::1\]:\d+/", sink.url)
        sink.write(None, np.zeros((48, 64, 3), np.uint8))
        code, ctype, body = get(sink.url + "frame.jpg")
        assert code == 200 and ctype == "image/jpeg" and body[:2] == b"\xff\xd8"
    finally:
        sink.close()


def test_a_busy_port_leaves_an_existing_video_output_untouched(tmp_path, tiny_model, capsys):
    (tmp_path / "prev.mp4").write_bytes(b"yesterday's recording")
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        port = busy.getsockname()[1]
        code = main(["colorize", "synthetic:64x48@25:5", "-o", str(tmp_path / "prev.mp4"), "-o", f"http://127.0.0.1:{port}",
                     "--model", str(tiny_model), "--threads", "1", "--no-progress"])
    finally:
        busy.close()
    assert code == 2 and f"output http://127.0.0.1:{port}: cannot listen there" in capsys.readouterr().err
    assert (tmp_path / "prev.mp4").read_bytes() == b"yesterday's recording"  # the view opened (and failed) first


def test_status_and_health_for_monitoring(monkeypatch, view_clock):
    from nirvision.io import http_sink

    monkeypatch.setattr(http_sink, "STALE_S", 1.0)
    src = open_source("synthetic:64x48@25:30", live=True)
    sink = open_sink("http://127.0.0.1:0", src.info)
    try:
        view_clock.now += 0.9
        code, _, body = get(sink.url + "health")
        assert code == 200 and body == b"ok\n"  # just opened: not stale yet
        summary = Engine(src, [sink], StubBackend()).run()  # closes the sink at the end: read what it reports before
    finally:
        sink.close()
    # the engine's counters as the view saw them at the end of the run
    view_clock.now += 0.9
    report = sink.report()
    assert report["frames_out"] == summary["frames_out"] == 30 and report["live"] is True
    assert report["source"].startswith("synthetic") and report["last_frame_age_s"] == 0.9 and report["healthy"]
    view_clock.now += 0.2
    assert not sink.report()["healthy"]


def test_health_turns_503_when_frames_stop(monkeypatch, view_clock):
    import json

    from nirvision.io import http_sink

    monkeypatch.setattr(http_sink, "STALE_S", 0.5)
    src = open_source("synthetic:64x48@25:5", live=True)
    sink = open_sink("http://127.0.0.1:0", src.info)
    try:
        sink.watch(lambda: {"frames_out": 7, "fps": 25.0, "dropped": 1, "reconnects": 2})
        view_clock.now += 0.6
        code, _, body = get(sink.url + "health")
        assert code == 503 and body.startswith(b"no frame yet after")
        sink.write(None, np.zeros((48, 64, 3), np.uint8))
        view_clock.now += 0.4
        code, _, body = get(sink.url + "health")
        assert code == 200
        code, ctype, body = get(sink.url + "status.json")
        status = json.loads(body)
        assert code == 200 and ctype == "application/json"
        assert status["frames_out"] == 7 and status["reconnects"] == 2 and status["healthy"] is True and status["last_frame_age_s"] == 0.4
        view_clock.now += 0.2
        code, _, body = get(sink.url + "health")
        assert code == 503 and re.fullmatch(rb"no frame for \d+ s\n", body)
        assert json.loads(get(sink.url + "status.json")[2])["healthy"] is False
        assert b"/status.json" in get(sink.url)[2]  # the page shows the figures
    finally:
        sink.close()
        src.close()


def test_head_and_options_for_uptime_checkers():
    src = open_source("synthetic:64x48@25:5", live=True)
    sink = open_sink("http://127.0.0.1:0", src.info)
    try:
        sink.write(None, np.zeros((48, 64, 3), np.uint8))
        head = urllib.request.Request(sink.url + "health", method="HEAD")
        with NO_PROXY.open(head, timeout=10) as r:
            assert r.status == 200 and r.read() == b"" and r.headers["Content-Length"] == "3"
        options = urllib.request.Request(sink.url + "health", method="OPTIONS")
        with NO_PROXY.open(options, timeout=10) as r:
            assert r.status == 200 and "HEAD" in r.headers["Allow"]
    finally:
        sink.close()
        src.close()


def test_a_view_with_a_password_asks_for_it_except_for_health(caplog):
    import base64

    src = open_source("synthetic:64x48@25:5", live=True)
    sink = open_sink("http://op%40site:s3cr%3At@127.0.0.1:0", src.info)  # user op@site, password s3cr:t, as typed in a URL
    try:
        sink.write(None, np.zeros((48, 64, 3), np.uint8))
        assert "s3cr" not in sink.description + sink.url + sink.where and "asks for the user and password" in sink.where
        for path in ("", "frame.jpg", "status.json", "stream.mjpg"):
            code, _, body = get(sink.url + path)
            assert code == 401 and b"asks for a user and password" in body, path
        wrong = urllib.request.Request(sink.url + "frame.jpg", headers={"Authorization": "Basic " + base64.b64encode(b"op@site:nope").decode()})
        with pytest.raises(urllib.error.HTTPError) as exc:
            NO_PROXY.open(wrong, timeout=10)
        assert exc.value.code == 401 and exc.value.headers["WWW-Authenticate"].startswith("Basic realm=")
        assert get(sink.url + "health")[0] == 200  # uptime checkers need no password
        right = urllib.request.Request(sink.url + "frame.jpg", headers={"Authorization": "Basic " + base64.b64encode(b"op@site:s3cr:t").decode()})
        with NO_PROXY.open(right, timeout=10) as r:
            assert r.status == 200 and r.headers["Content-Type"] == "image/jpeg" and len(r.read()) > 100
    finally:
        sink.close()
        src.close()
    assert "s3cr" not in caplog.text


def test_a_client_cannot_put_terminal_escapes_into_the_log(caplog):
    import logging

    from nirvision.io.http_sink import printable

    assert printable("/\x1b[31mRED\x1b[0m") == "/\\x1b[31mRED\\x1b[0m" and printable("x" * 300).endswith("x...")
    src = open_source("synthetic:64x48@25:5", live=True)
    sink = open_sink("http://u:pw@127.0.0.1:0", src.info)
    try:
        with caplog.at_level(logging.DEBUG, logger="nirvision.io.http_sink"):
            with socket.create_connection(("127.0.0.1", sink.port), timeout=10) as s:
                s.sendall(b"GET /\x1b[31mRED HTTP/1.1\r\nHost: x\r\nAuthorization: basic dTpwdw==\r\n\r\n")
                assert s.recv(100).startswith(b"HTTP/1.1 404")  # the right user and password, the scheme in lower case: in
            wait_for(lambda: "RED" in caplog.text, 10, "the request logged")
    finally:
        sink.close()
        src.close()
    assert "\x1b" not in caplog.text


def test_a_camera_down_at_the_start_keeps_the_view_answering(tmp_path):
    """The machine boots before its camera: the view and /health answer from the start (503 with
    what the run waits for once the grace is over), not "connection refused"."""
    import json
    import signal
    import subprocess
    import sys

    from tests.io.media import REPO

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        camera = s.getsockname()[1]  # nothing listens there
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "NIRVISION_TEST_STALE_S": "0.5"}
    proc = subprocess.Popen([sys.executable, "-c", "import os; from nirvision.io import http_sink; http_sink.STALE_S = float(os.environ['NIRVISION_TEST_STALE_S']); "
                             "from nirvision.cli import main; raise SystemExit(main())",
                             "colorize", f"rtsp://viewer:s3cret@127.0.0.1:{camera}/live", "-o", "http://127.0.0.1:0", "-o", "rec.mp4",
                             "--reconnect", "forever", "--model", "lite", "--threads", "1"], cwd=tmp_path, stderr=subprocess.PIPE, text=True, env=env)
    try:
        where = None
        deadline = time.monotonic() + 120
        while where is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            assert line or proc.poll() is None, "the command ended early"
            m = re.search(r"watch at (http://127\.0\.0\.1:\d+/)", line)
            where = m and m.group(1)
        assert where, "no 'watch at' line while the camera is down"
        time.sleep(0.6)
        code, _, body = get(where + "health")
        assert code == 503 and f"connecting to rtsp://viewer:***@127.0.0.1:{camera}/live".encode() in body and b"s3cret" not in body
        status = json.loads(get(where + "status.json")[2])
        assert status["healthy"] is False and status["waiting"] == f"connecting to rtsp://viewer:***@127.0.0.1:{camera}/live"
        assert get(where)[0] == 200
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 128 + signal.SIGTERM and "stopped by SIGTERM while connecting" in err and "s3cret" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
