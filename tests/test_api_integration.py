"""nirvision used as a library by a service: runs at once, threads that end with the call, live
options and a stop from another thread, no telemetry, bounded sessions, clear input errors, and
the package data that the model card names."""
from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch

from nirvision.api import Colorizer
from nirvision.errors import InputError
from nirvision.runtime.backends.levels import LevelsInference
from nirvision.runtime.engine import Engine, EngineOptions
from nirvision.runtime.levels import LevelsBand
from tests.helpers import nir_frames, tiny_chain
from tests.io.media import REPO, ListSource, RecordingSink, StubBackend, read_video, run_in_thread, wait_for

BAND = LevelsBand(low=(50.0, 80.0), high=(200.0, 240.0), low_mean=65.0, high_mean=220.0, images=10)


def write_clip(path: Path, frames: np.ndarray, rate: int = 25) -> Path:
    """Gray frames (N, H, W) as an H.264 video."""
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=rate)
        vs.height, vs.width = frames.shape[1:]
        vs.pix_fmt = "yuv420p"
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(cv2.cvtColor(f, cv2.COLOR_GRAY2RGB), format="rgb24")
            vf.pts, vf.time_base = i, Fraction(1, rate)
            for pk in vs.encode(vf):
                out.mux(pk)
        for pk in vs.encode():
            out.mux(pk)
    return path


def pngs(folder: Path) -> list[np.ndarray]:
    return [cv2.imread(str(p)) for p in sorted(folder.glob("*.png"))]


def stub_colorizer(backend=None) -> Colorizer:
    return Colorizer(backend or StubBackend(), None)


def engine_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("nirvision-") and t.is_alive()}


# 1. runs at once on one Colorizer ---------------------------------------------------------------

class LockStep(StubBackend):
    """Each frame waits for the other run's at a barrier: two runs take turns, frame by frame."""

    barrier: threading.Barrier | None = None

    def infer_uint8(self, frames):
        if self.barrier is not None:
            self.barrier.wait(timeout=120)
        return super().infer_uint8(frames)


def test_two_colorize_video_runs_at_once_on_one_colorizer_level_each_stream_as_alone(tmp_path):
    dark = write_clip(tmp_path / "dark.mp4", (nir_frames(10, 48, 64, seed=1) * 0.3).astype(np.uint8))
    bright = write_clip(tmp_path / "bright.mp4", np.clip(nir_frames(10, 48, 64, seed=2).astype(int) + 40, 0, 255).astype(np.uint8))
    inner = LockStep()
    colorizer = stub_colorizer(LevelsInference(inner, "stretch", BAND))
    for clip in (dark, bright):
        colorizer.colorize_video(clip, f"{tmp_path / ('alone_' + clip.stem)}/")
    inner.barrier = threading.Barrier(2)
    runs = [run_in_thread(lambda clip=clip: colorizer.colorize_video(clip, f"{tmp_path / ('both_' + clip.stem)}/")) for clip in (dark, bright)]
    for thread, box in runs:
        thread.join(300)
        assert "error" not in box, box.get("error")
    for clip in (dark, bright):
        alone, both = pngs(tmp_path / f"alone_{clip.stem}"), pngs(tmp_path / f"both_{clip.stem}")
        assert len(alone) == len(both) == 10
        assert all(np.array_equal(a, b) for a, b in zip(alone, both)), clip.stem


# 2. no engine thread outlives the call ------------------------------------------------------------

class SlowLastWords(threading.Event):
    """The writer's ``_written``: set as the last thing it does, then a pause before its thread
    ends (where it frees its last frames), so that a run that does not join it returns first."""

    thread: threading.Thread | None = None

    def set(self):
        super().set()
        self.thread = threading.current_thread()
        time.sleep(0.3)


def test_engine_run_returns_only_once_the_writer_thread_has_ended():
    engine = Engine(ListSource(list(nir_frames(3, 24, 32))), [RecordingSink()], StubBackend(), EngineOptions(join_timeout=120))
    engine._written = SlowLastWords()
    assert engine.run()["frames_out"] == 3
    writer = engine._written.thread
    assert writer is not None and writer.name == "nirvision-writer"
    assert not writer.is_alive()


def test_no_engine_thread_is_alive_after_colorize_video(tmp_path):
    colorizer = stub_colorizer()
    before = engine_threads()
    for i in range(3):
        summary = colorizer.colorize_video("synthetic:32x24@25:4", [str(tmp_path / f"v{i}.mkv"), f"{tmp_path / f'p{i}'}/"])
        assert summary["frames_out"] == 4
        assert engine_threads() - before == set(), [t.name for t in engine_threads() - before]


# 3. live source options and a stop from another thread --------------------------------------------

@pytest.mark.parametrize("option, value, says", [
    ("reconnect", -1, "reconnect -1: expected a number of attempts (0 or more) or 'forever'"),
    ("reconnect", "often", "reconnect 'often': expected"),
    ("reconnect", True, "reconnect True: expected"),
    ("reconnect", 1.5, "reconnect 1.5: expected"),
    ("open_timeout", 0, "open_timeout 0: expected a positive number of seconds"),
    ("open_timeout", "10", "open_timeout '10': expected a positive number of seconds"),
    ("read_timeout", float("inf"), "read_timeout inf: expected a positive number of seconds"),
    ("read_timeout", -2.0, "read_timeout -2.0: expected"),
    ("stop", True, "stop True: expected a threading.Event"),
])
def test_live_options_are_checked_before_anything_is_opened(tmp_path, option, value, says):
    with pytest.raises(InputError) as info:
        stub_colorizer().colorize_video("synthetic:32x24@25:2", str(tmp_path / "out.mp4"), **{option: value})
    assert f"colorize_video: {says}" in str(info.value)
    assert not (tmp_path / "out.mp4").exists()


def test_live_options_are_taken_by_any_source():
    """As the command's: defaults for sources they do not concern, not errors."""
    summary = stub_colorizer().colorize_video("synthetic:32x24@25:2", "null:", reconnect="forever", open_timeout=3, read_timeout=2.5)
    assert summary["frames_out"] == 2


def test_a_stop_from_another_thread_ends_a_live_run_and_finalizes_its_output(tmp_path):
    stop, flowing = threading.Event(), threading.Event()
    out = tmp_path / "live.mp4"

    def progress(status):
        if status["frames_out"] >= 3:
            flowing.set()

    thread, box = run_in_thread(lambda: stub_colorizer().colorize_video("synthetic:64x48@25:100000", str(out), live=True, stop=stop, progress=progress))
    assert flowing.wait(120), box.get("error")
    stop.set()
    thread.join(120)
    assert not thread.is_alive() and "error" not in box, box.get("error")
    summary = box["result"]
    assert summary["stopped_by"] == "stopped" and summary["frames_out"] >= 3
    assert len(read_video(out)["times"]) == summary["frames_out"]  # finalized: every frame counted plays
    assert not any(t.name == "nirvision-stop" for t in threading.enumerate())


def test_a_stop_set_before_the_call_opens_no_output(tmp_path):
    stop = threading.Event()
    stop.set()
    summary = stub_colorizer().colorize_video("synthetic:32x24@25:50", str(tmp_path / "out.mp4"), stop=stop)
    assert summary["frames_out"] == 0 and summary["stopped_by"] == "stopped" and summary["sinks"] == []
    assert not (tmp_path / "out.mp4").exists()
    assert stop.is_set()  # only read: the caller's event is the caller's


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.rtsp
def test_a_stop_while_a_stream_is_being_reached_returns_without_waiting_out_the_open_timeout(tmp_path):
    with socket.socket() as silent:  # accepts the connection and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        silent.settimeout(120)
        stop = threading.Event()
        url = f"rtsp://127.0.0.1:{silent.getsockname()[1]}/test"
        thread, box = run_in_thread(lambda: stub_colorizer().colorize_video(url, str(tmp_path / "out.mp4"), open_timeout=600, read_timeout=600, stop=stop))
        conn, _ = silent.accept()  # the source is connecting now
        with conn:
            stop.set()
            thread.join(120)  # far less than the open timeout
            assert not thread.is_alive()
    assert "error" not in box, box.get("error")
    assert box["result"]["frames_out"] == 0 and box["result"]["stopped_by"] == "stopped" and box["result"]["live"]
    assert not (tmp_path / "out.mp4").exists()


@pytest.mark.rtsp
def test_reconnect_and_open_timeout_reach_the_stream():
    url = f"rtsp://127.0.0.1:{free_port()}/test"  # nothing listening
    with pytest.raises(InputError, match="cannot connect .* after 2 attempts"):
        stub_colorizer().colorize_video(url, "null:", reconnect=1, open_timeout=2)


@pytest.mark.rtsp
def test_reconnect_forever_outlasts_the_default_and_a_stop_ends_it(tmp_path, caplog):
    from tests.io.test_rtsp import AVAILABLE, Server

    if not AVAILABLE:
        pytest.skip("GStreamer RTSP server not installed")
    caplog.set_level("WARNING", logger="nirvision.io.rtsp_source")
    server = Server(free_port())
    server.start()
    try:
        stop, status = threading.Event(), {}
        out = tmp_path / "cam.mp4"
        thread, box = run_in_thread(lambda: stub_colorizer().colorize_video(server.url, str(out), reconnect="forever", open_timeout=3,
                                                                              read_timeout=2, stop=stop, progress=status.update))
        wait_for(lambda: status.get("frames_out", 0) >= 5 or "error" in box, 60, "five frames")
        server.kill()
        retries = lambda: sum("retrying" in r.getMessage() for r in caplog.records)  # noqa: E731
        wait_for(lambda: retries() >= 4 or "error" in box, 120, "a fourth retry (the default, 3, gives up after the third)")
        stop.set()
        thread.join(120)
        assert not thread.is_alive() and "error" not in box, box.get("error")
    finally:
        server.kill()
    summary = box["result"]
    assert summary["stopped_by"] == "stopped" and summary["frames_out"] >= 5
    assert len(read_video(out)["times"]) == summary["frames_out"]


# 4. no OpenVINO telemetry -------------------------------------------------------------------------

def test_openvino_is_imported_without_its_telemetry(tmp_path):
    pytest.importorskip("openvino")
    home = tmp_path / "home"
    (home / "intel").mkdir(parents=True)
    (home / "intel" / "openvino_telemetry").write_text("0")  # opted out: should the check fail, nothing is sent meanwhile
    code = ("import sys\n"
            "from nirvision.runtime.backends.openvino import import_openvino\n"
            "import_openvino()\n"
            "print('imported during:', 'openvino_telemetry' in sys.modules)\n"
            "import openvino.tools.ovc.telemetry_utils as t\n"
            "print('sender:', t.tm.__name__)\n"
            "import openvino_telemetry\n"
            "print('importable after:', openvino_telemetry.__name__)\n")
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "TF_BUILD", "JENKINS_URL")}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**env, "HOME": str(home)}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "imported during: False" in done.stdout
    assert "sender: openvino.tools.ovc.telemetry_stub" in done.stdout
    assert "importable after: openvino_telemetry" in done.stdout
    assert sorted(p.name for p in (home / "intel").iterdir()) == ["openvino_telemetry"]  # no client id, no stats


# 5. sessions kept for the sizes used last ---------------------------------------------------------

def test_runners_are_kept_for_the_frame_sizes_used_last(tmp_path):
    from nirvision.runtime.backends.exported import MAX_SIZES, ExportedGraphBackend

    class Counting(ExportedGraphBackend):
        name = "counting"

        def model_path(self, shape, uint8_io=False):
            return tmp_path / "unused.onnx"

        def _build(self, shape, uint8_io, path):
            built.append(shape)
            return object()

        def _run(self, runner, data):
            return np.zeros((len(data), *data.shape[-2:], 3), np.uint8)

    built: list = []
    backend = Counting(tiny_chain(), torch.device("cpu"), "fp32", cache_dir=tmp_path)
    sizes = [(16 + 8 * k, 24) for k in range(MAX_SIZES + 1)]
    for h, w in sizes[:MAX_SIZES]:
        backend.runner((1, 1, h, w), True)
    backend.runner((3, 1, *sizes[0]), True)  # another batch of the first size: that size is the newest now
    assert len(built) == MAX_SIZES + 1
    backend.runner((1, 1, *sizes[MAX_SIZES]), True)  # one size too many: the least recently used (the second) goes
    kept = {k[0][2:] for k in backend.runners}
    assert kept == set(sizes) - {sizes[1]} and len(kept) == MAX_SIZES
    assert ((1, 1, *sizes[0]), True) in backend.runners and ((3, 1, *sizes[0]), True) in backend.runners
    count = len(built)
    backend.runner((1, 1, *sizes[0]), True)  # kept: not built again
    assert len(built) == count
    backend.runner((1, 1, *sizes[1]), True)  # released: built again (from the cache, for a real backend)
    assert len(built) == count + 1 and len({k[0][2:] for k in backend.runners}) == MAX_SIZES


def test_onnxruntime_rebuilds_a_released_session_from_the_cached_export(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    from nirvision.runtime.backends import create_backend, exported

    monkeypatch.setattr(exported, "MAX_SIZES", 1)
    ort = create_backend("onnxruntime", tiny_chain(), "cpu", "fp32", cache_dir=tmp_path)
    a, b = nir_frames(1, 32, 40), nir_frames(1, 24, 40)
    first = ort.infer_uint8(a)
    ort.infer_uint8(b)
    assert [k[0] for k in ort.runners] == [(1, 1, 24, 40)]  # a's session released
    files = sorted((p.name, p.stat().st_mtime_ns) for p in (tmp_path / "onnx-u8").glob("*.onnx"))
    assert len(files) == 2  # its export stays on disk
    assert np.array_equal(ort.infer_uint8(a), first)
    assert sorted((p.name, p.stat().st_mtime_ns) for p in (tmp_path / "onnx-u8").glob("*.onnx")) == files  # loaded, not exported again


# 6. weights that are not a path -------------------------------------------------------------------

def test_weights_in_memory_or_as_file_objects_get_a_short_clear_error():
    from nirvision.resources import default_weights_path

    path = default_weights_path()
    data = path.read_bytes()
    with open(path, "rb") as f:
        for weights, what in ((data, f"({len(data)} bytes)"), (io.BytesIO(data), "(a file object, BytesIO)"),
                              (f, "(a file object, BufferedReader)"), (bytearray(b"PK\0\0"), "(4 bytes)"), (42, "42"),
                              (list(range(1000)), "(a list)")):
            with pytest.raises(InputError) as info:
                Colorizer.load(weights)
            assert len(str(info.value)) < 300 and str(info.value).startswith(f"weights {what}: expected a path to a checkpoint file")


def test_weights_as_a_bytes_path_load():
    from nirvision.resources import default_weights_path

    colorizer = Colorizer.load(os.fsencode(default_weights_path()), device="cpu")
    assert colorizer.meta["weights"] == str(default_weights_path())


# 7. bad frames and options: InputError ----------------------------------------------------------

@pytest.mark.parametrize("frame, says, also", [
    (np.zeros((8, 8), np.int64), "frame 0: expected uint8, uint16 or float (16, 32 or 64-bit) pixels, got int64", ValueError),
    (np.zeros((8, 8), np.uint32), "got uint32", ValueError),
    (np.zeros((8, 8), np.uint8).tolist(), "frame 0: expected a numpy array, got list", TypeError),
    (torch.zeros(8, 8, dtype=torch.uint8), "frame 0: expected a numpy array, got Tensor", TypeError),
    (np.uint8(3), "frame 0: expected a numpy array, got uint8", TypeError),
    (np.zeros(8, np.uint8), "frame 0: expected an H x W (or H x W x 1/3/4) image, got shape (8,)", ValueError),
    (np.full((8, 8), 1.0000001), "frame 0: float frames must lie in [0, 1], got [1.0000001, 1.0000001]", ValueError),
    (np.full((8, 8), -1e-9, np.float32), "got [-1e-09, -1e-09]", ValueError),
    (np.full((8, 8), 255.0, np.float32), "got [255, 255]", ValueError),
])
def test_bad_frames_are_input_errors(frame, says, also):
    with pytest.raises(InputError) as info:
        stub_colorizer()(frame)
    assert says in str(info.value) and isinstance(info.value, also)  # and still what they were (ValueError, TypeError)


def test_bad_batches_are_input_errors():
    c = stub_colorizer()
    with pytest.raises(InputError, match=r"colorize_batch: frames must share one size, got \[\(8, 8\), \(8, 9\)\]"):
        c.colorize_batch([np.zeros((8, 8), np.uint8), np.zeros((8, 9), np.uint8)])
    with pytest.raises(InputError, match="colorize_batch: no frames given"):
        c.colorize_batch([])
    with pytest.raises(InputError, match="colorize_video: no outputs given"):
        c.colorize_video("synthetic:32x24@25:2", [])


@pytest.mark.parametrize("option, says", [
    ({"levels": "bad"}, "levels 'bad': expected one of: off, auto, stretch"),
    ({"workers": 0}, "workers: expected a positive integer or 'auto', got 0"),
    ({"infer_scale": 2}, "infer scale 2: expected a number from 0.05 to 1"),
])
def test_bad_options_are_input_errors(option, says):
    with pytest.raises(InputError) as info:
        Colorizer.load(model="lite", device="cpu", **option)
    assert says in str(info.value)


# 8. what the package ships ------------------------------------------------------------------------

def test_package_data_ships_the_weights_folder_and_what_the_model_card_names(monkeypatch):
    import runpy
    import re

    import setuptools

    seen: dict = {}
    monkeypatch.setattr(setuptools, "setup", lambda **kw: seen.update(kw))
    monkeypatch.chdir(REPO)
    runpy.run_path(str(REPO / "setup.py"))
    shipped = set()
    for package, patterns in seen["package_data"].items():
        folder = REPO / seen.get("package_dir", {}).get(package, package.replace(".", "/"))
        shipped |= {p.relative_to(REPO) for pattern in patterns for p in folder.glob(pattern)}
    weights = REPO / "nirvision" / "weights"
    data_files = {p.relative_to(REPO) for folder in (weights, REPO / "configs") for p in folder.rglob("*")
                  if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts}
    assert data_files - shipped == set()
    card = (weights / "mpfnet-lite.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`([\w.-]+\.(?:png|pt|md|json))`", card)) & {p.name for p in weights.iterdir()}
    assert "mpfnet-lite-curves.png" in named
    assert {Path("nirvision/weights") / n for n in named} <= shipped
