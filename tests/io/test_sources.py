"""Sources: synthetic clips, video files (timestamps, corrupted packets), image folders, specs."""
import logging
from fractions import Fraction

import cv2
import numpy as np
import pytest

from nirvision.errors import InputError
from nirvision.io import open_source, redact_url, source_kind
from nirvision.io.synthetic import parse_synthetic
from tests.io.media import corrupt_packets, frame_image, make_clip


def test_synthetic_spec_and_determinism():
    assert parse_synthetic("synthetic:640x480@25:250") == (640, 480, Fraction(25), 250)
    assert parse_synthetic("synthetic:64x48") == (64, 48, Fraction(25), 250)
    a = [f.image for f in open_source("synthetic:64x48@10:6", seed=3)]
    b = [f.image for f in open_source("synthetic:64x48@10:6", seed=3)]
    c = [f.image for f in open_source("synthetic:64x48@10:6", seed=4)]
    assert len(a) == 6 and a[0].shape == (48, 64) and a[0].dtype == np.uint8
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0])
    assert not np.array_equal(a[0], a[5])  # it moves
    assert a[0].std() > 10  # textured, not flat


@pytest.mark.parametrize("spec", ["synthetic:", "synthetic:64", "synthetic:4x4", "synthetic:64x48@0:5", "synthetic:64x48:0"])
def test_synthetic_bad_spec(spec):
    with pytest.raises(InputError, match="synthetic"):
        open_source(spec)


def test_file_source_keeps_variable_timestamps(tmp_path):
    pts = [0, 40, 80, 200, 240, 500, 520, 900]
    make_clip(tmp_path / "vfr.mp4", pts)
    src = open_source(str(tmp_path / "vfr.mp4"))
    frames = list(src)
    assert [round(f.time, 6) for f in frames] == [p / 1000 for p in pts]
    assert all(f.image.shape == (48, 64) for f in frames)
    # luma decodes back to the values written (within codec error)
    assert [int(np.median(f.image[:, :20])) for f in frames] == pytest.approx([8 * i for i in range(len(pts))], abs=3)
    assert src.decode_errors == 0


def test_corrupted_packets_are_skipped_and_counted(tmp_path):
    path = tmp_path / "broken.avi"
    make_clip(path, list(range(0, 480, 40)), codec="mjpeg")
    corrupt_packets(path, [3, 7])
    src = open_source(str(path))
    frames = list(src)
    assert src.decode_errors == 2
    # the two broken frames are missing; every other frame keeps its own time and picture
    kept = [k for k in range(12) if k not in (3, 7)]
    assert [round(f.time, 6) for f in frames] == [round(0.04 * k, 6) for k in kept]
    assert [f.index for f in frames] == list(range(10))
    assert [int(np.median(f.image[:, :20])) for f in frames] == pytest.approx([8 * k for k in kept], abs=3)


def test_image_folder_in_name_order(tmp_path):
    for name, size in [("img10.png", (40, 30)), ("img2.png", (64, 48)), ("a.jpg", (32, 24))]:
        cv2.imwrite(str(tmp_path / name), np.full((size[1], size[0], 3), 100, np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    frames = list(open_source(str(tmp_path)))
    assert [f.name for f in frames] == ["a.jpg", "img2.png", "img10.png"]
    assert [f.image.shape for f in frames] == [(24, 32), (48, 64), (30, 40)]
    assert [f.name for f in open_source(str(tmp_path / "img*.png"))] == ["img2.png", "img10.png"]


def test_unreadable_image_is_counted(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), frame_image(1, 24, 32))
    (tmp_path / "b.png").write_bytes(b"\x89PNG but not really")
    src = open_source(str(tmp_path))
    assert [f.name for f in src] == ["a.png"] and src.decode_errors == 1


@pytest.mark.parametrize("spec,kind", [("in.mp4", "file"), ("rtsp://h/x", "rtsp"), ("0", "camera"), ("/dev/video3", "camera"), ("synthetic:8x8", "synthetic"), ("frames/*.png", "images")])
def test_source_kinds(spec, kind):
    assert source_kind(spec) == kind


@pytest.mark.parametrize("spec,needle", [
    ("missing.mp4", "not found"),
    ("ftp://user:pw@host/x.mp4", "unknown scheme 'ftp'"),
    ("/dev/video97", "does not exist"),
    ("empty_dir", "holds no images"),
    ("nothing/*.png", "glob 'nothing/\\*.png': matches no files"),
])
def test_bad_sources_name_the_input(tmp_path, monkeypatch, spec, needle):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(InputError, match=needle) as info:
        open_source(spec)
    assert "pw@" not in str(info.value)


def test_redact_url():
    assert redact_url("rtsp://admin:s3cret@10.0.0.1:554/live") == "rtsp://admin:***@10.0.0.1:554/live"
    assert redact_url("rtsp://10.0.0.1/live") == "rtsp://10.0.0.1/live"


class FakeCapture:
    """cv2.VideoCapture stand-in: frame reads follow a script of True (a frame) / False (a failure)."""

    script: list = []
    opened = 0

    def __init__(self, *args):
        FakeCapture.opened += 1

    def isOpened(self):
        return True

    def set(self, *args):
        return True

    def get(self, prop):
        return {cv2.CAP_PROP_FRAME_WIDTH: 32, cv2.CAP_PROP_FRAME_HEIGHT: 24, cv2.CAP_PROP_FPS: 30}.get(prop, 0)

    def read(self):
        ok = FakeCapture.script.pop(0) if FakeCapture.script else False
        return (True, np.full((24, 32, 3), 90, np.uint8)) if ok else (False, None)

    def release(self):
        pass


def test_camera_reopens_after_a_failed_read(tmp_path, monkeypatch):
    from nirvision.io import ReconnectPolicy, camera_source

    device = tmp_path / "video0"
    device.write_text("")
    monkeypatch.setattr(camera_source, "camera_device", lambda spec: device)
    monkeypatch.setattr(camera_source.cv2, "VideoCapture", FakeCapture)
    FakeCapture.script, FakeCapture.opened = [True, True, False, True, True], 0
    src = camera_source.CameraSource("0", policy=ReconnectPolicy(attempts=2, initial_delay=0.01), max_frames=4)
    frames = list(src)
    assert src.live and src.info.width == 32
    assert len(frames) == 4 and frames[0].image.shape == (24, 32) and int(frames[0].image[0, 0]) == 90
    assert src.reconnects == 1 and FakeCapture.opened == 2
    assert all(b.pts > a.pts for a, b in zip(frames, frames[1:]))


def test_camera_lost_for_good_raises_stream_lost(tmp_path, monkeypatch):
    from nirvision.io import ReconnectPolicy, StreamLost, camera_source

    device = tmp_path / "video0"
    device.write_text("")
    monkeypatch.setattr(camera_source, "camera_device", lambda spec: device)
    monkeypatch.setattr(camera_source.cv2, "VideoCapture", FakeCapture)
    FakeCapture.script = [True]
    src = camera_source.CameraSource("0", policy=ReconnectPolicy(attempts=2, initial_delay=0.01))
    with pytest.raises(StreamLost, match="reopening failed 2 time"):
        list(src)


def test_images_of_other_pixel_types_are_skipped_and_counted(tmp_path):
    """A float TIFF in 0..255 and an int16 TIFF: counted as undecodable, the rest goes on."""
    img = frame_image(3, 24, 32)
    cv2.imwrite(str(tmp_path / "a.png"), img)
    cv2.imwrite(str(tmp_path / "b.tif"), img.astype(np.float32))
    cv2.imwrite(str(tmp_path / "c.tif"), img.astype(np.int16))
    cv2.imwrite(str(tmp_path / "d.png"), img.astype(np.uint16) * 257)  # 16 bit: scaled to 8
    src = open_source(str(tmp_path))
    frames = list(src)
    assert [f.name for f in frames] == ["a.png", "d.png"] and src.decode_errors == 2
    assert np.array_equal(frames[0].image, img) and np.array_equal(frames[1].image, img)


@pytest.mark.parametrize("url,shown", [
    ("rtsp://10.0.0.1:554/user=admin&password=hunter2&channel=1&stream=0.sdp", "rtsp://10.0.0.1:554/user=admin&password=***&channel=1&stream=0.sdp"),
    ("rtsp://10.0.0.1/live?PWD=hunter2", "rtsp://10.0.0.1/live?PWD=***"),
    ("rtsp://10.0.0.1/cam?user=a&pass=hunter2", "rtsp://10.0.0.1/cam?user=a&pass=***"),
    ("rtsp://admin:hunter2/x@10.0.0.1/live", "rtsp://admin:***@10.0.0.1/live"),
    ("rtsp://admin:hun@ter2@10.0.0.1:554/live", "rtsp://admin:***@10.0.0.1:554/live"),
    ("rtsp://admin:hunter2@10.0.0.1:99999/live", "rtsp://admin:***@10.0.0.1:99999/live"),
    ("rtsp://10.0.0.1/compass=1", "rtsp://10.0.0.1/compass=1"),
    # unencoded characters that break the URL: still masked, in the URL and wherever else it appears
    ("rtsp://admin:hun#ter2@10.0.0.1/live", "rtsp://admin:***@10.0.0.1/live"),
    ("rtsp://admin:hun?ter2@10.0.0.1/live", "rtsp://admin:***@10.0.0.1/live"),
    ("rtsp://admin:hun ter2@10.0.0.1/live", "rtsp://admin:***@10.0.0.1/live"),
])
def test_redact_url_masks_every_password(url, shown):
    from nirvision.io.redact import redact_text, url_secrets

    assert redact_url(url) == shown
    secret = next((s for s in ("hun@ter2", "hun#ter2", "hun?ter2", "hun ter2") if s in url), "hunter2")
    assert secret not in redact_text(f"cannot open {url}: error", url_secrets(url))


def _blackhole():
    """A TCP listener on 127.0.0.1 that accepts and never answers: a camera that hangs."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held = []

    def accept():
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    return server, held


@pytest.mark.parametrize("sig,code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_signal_while_the_first_connection_hangs_stops_the_command(tmp_path, sig, code):
    import signal
    import time

    from tests.io.media import start_cli

    server, held = _blackhole()
    try:
        port = server.getsockname()[1]
        proc = start_cli(["colorize", f"rtsp://u:pw@127.0.0.1:{port}/x", "-o", str(tmp_path / "o.mp4"), "--model", "lite", "--threads", "1",
                          "--reconnect", "forever", "--open-timeout", "2", "--read-timeout", "1", "--no-progress"], tmp_path)
        deadline = time.monotonic() + 60
        while not held and time.monotonic() < deadline:  # the command is inside av.open, connected to the silent server
            time.sleep(0.05)
        assert held, "the command never connected"
        time.sleep(0.3)
        proc.send_signal(getattr(signal, sig))
        try:
            _, err = proc.communicate(timeout=20)  # one attempt's timeout at most, not forever
        except Exception:
            proc.kill()
            raise
        assert proc.returncode == code, err
        assert ("interrupted" in err) if sig == "SIGINT" else ("stopped by SIGTERM while connecting" in err)
        assert "u:pw@" not in err
    finally:
        server.close()
        for s in held:
            s.close()


def test_a_server_that_never_answers_is_said_to_time_out(tmp_path, capsys):
    from nirvision.cli import main

    server, held = _blackhole()
    try:
        port = server.getsockname()[1]
        code = main(["colorize", f"rtsp://u:pw@127.0.0.1:{port}/x", "-o", str(tmp_path / "o.mp4"), "--model", "lite", "--reconnect", "0",
                     "--open-timeout", "1", "--read-timeout", "1", "--no-progress"])
        err = capsys.readouterr().err
        assert code == 2 and "cannot connect (no answer within 1 s, --open-timeout)" in err and "u:pw@" not in err
    finally:
        server.close()
        for s in held:
            s.close()


def test_an_image_glob_with_double_star_reaches_into_subfolders(tmp_path):
    import cv2

    from nirvision.io.image_source import list_images

    for rel in ("cam1/0001.png", "cam1/night/0002.png", "cam2/0001.png"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(tmp_path / rel), np.zeros((8, 8), np.uint8))
    found = [p.relative_to(tmp_path).as_posix() for p in list_images(str(tmp_path / "**" / "*.png"))]
    assert found == ["cam1/0001.png", "cam1/night/0002.png", "cam2/0001.png"]
    assert [f.name for f in open_source(str(tmp_path / "**" / "*.png"))] == found


def test_a_variable_rate_avi_counts_its_frames_not_its_clock_ticks(tmp_path, caplog):
    """AVI keeps variable frame rates as a slot a millisecond, most empty: its header's count
    and rate are the slots' (480 and 1000 for 12 frames at 40 ms)."""
    path = tmp_path / "vfr.avi"
    make_clip(path, [40 * i for i in range(12)], codec="mjpeg")
    src = open_source(str(path))
    assert src.info.frames == 12 and src.info.fps == 25
    with caplog.at_level(logging.WARNING):
        frames = list(src)
    assert [round(f.time, 3) for f in frames] == [0.04 * i for i in range(12)]
    assert not [r for r in caplog.records if "header announces" in r.getMessage()]  # not taken for a truncated file
    # frames 31-40 ms apart (FFmpeg then guesses the clock's 1000 a second too), with a range
    times = [0]
    for i in range(59):
        times.append(times[-1] + (31, 35, 40)[i % 3] + (500 if i % 10 == 9 else 0))
    make_clip(path, times, codec="mjpeg")
    src = open_source(str(path))
    assert src.info.frames == 60 and abs(float(src.info.fps) - 60 / (times[-1] / 1000)) < 1.5  # the average rate, about 14
    ranged = open_source(str(path), start=2, end=4)
    inside = [t for t in times if 2000 <= t < 4000]
    assert ranged.info.frames == len(inside) == len(list(ranged))


def test_the_synthetic_scheme_in_any_case():
    src = open_source("SYNTHETIC:64x48@5:3")
    assert src.info.kind == "synthetic" and (src.info.width, src.info.height) == (64, 48) and len(list(src)) == 3


def test_a_tiff_of_several_pages_is_read_as_its_first_and_said(tmp_path, caplog):
    import logging

    import cv2

    folder = tmp_path / "tiffs"
    folder.mkdir()
    pages = [np.full((24, 32), v, np.uint8) for v in (10, 120, 230)]
    assert cv2.imwritemulti(str(folder / "stack.tif"), pages)
    cv2.imwrite(str(folder / "one.tif"), pages[1])
    with caplog.at_level(logging.WARNING):
        frames = list(open_source(str(folder)))
    assert [int(f.image.mean()) for f in frames] == [120, 10]  # one.tif, then stack.tif's first page
    said = [r.getMessage() for r in caplog.records if "pages" in r.getMessage()]
    assert said == [f"{folder / 'stack.tif'}: a TIFF of 3 pages; only its first is read (one picture a file: split it into files to colorize every page)"]
