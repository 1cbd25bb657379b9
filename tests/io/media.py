"""Media made at test time (PyAV, OpenCV) and small stand-ins, shared by tests/io and tests/runtime."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from nirvision.io.base import Frame, Sink, Source, SourceInfo
from nirvision.runtime.backends.base import Backend

REPO = Path(__file__).resolve().parents[2]

TINY_MODEL = """\
name: tiny
nir_to_gray: {type: mpfnet, in_channels: 1, out_channels: 1, width: 4, depth: 1, scales: 1, max_width_mult: 1, ca_reduction: 1, stem: 1}
colorizer: {type: mpfnet, in_channels: 1, out_channels: 3, width: 4, depth: 1, scales: 1, max_width_mult: 1, ca_reduction: 1, stem: 1}
"""


def frame_image(i: int, h: int, w: int) -> np.ndarray:
    """A gray frame whose left half tells its index (value 8 * (i % 30))."""
    img = np.full((h, w), 128, np.uint8)
    img[:, : w // 2] = 8 * (i % 30)
    return img


def make_clip(path: Path, pts_ms: list[int], size=(64, 48), audio_packets: int = 0, codec="libx264", audio_codec="aac", audio_start_ms: int = 0,
              tags: dict | None = None) -> None:
    """A video whose frames sit at ``pts_ms`` (variable frame rate), with audio if asked
    (``audio_packets`` frames of 1024 samples at 8 kHz from ``audio_start_ms``) and container ``tags``."""
    w, h = size
    out = av.open(str(path), "w")
    out.metadata.update(tags or {})
    vs = out.add_stream(codec, rate=25)
    vs.width, vs.height = w, h
    vs.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
    vs.time_base = vs.codec_context.time_base = Fraction(1, 1000)
    aus = None
    if audio_packets:
        aus = out.add_stream(audio_codec, rate=8000)
        aus.layout = "mono"
    for i, p in enumerate(pts_ms):
        f = av.VideoFrame.from_ndarray(cv2.cvtColor(frame_image(i, h, w), cv2.COLOR_GRAY2RGB), format="rgb24")
        f.pts, f.time_base = p, Fraction(1, 1000)
        for pk in vs.encode(f):
            out.mux(pk)
    for pk in vs.encode():
        out.mux(pk)
    if aus is not None:
        t = np.arange(1024 * audio_packets, dtype=np.float32) / 8000
        wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        fmt = aus.codec_context.format.name
        if fmt.startswith("s16"):
            wave = (wave * 32767).astype(np.int16)
        elif fmt.startswith("s32"):
            wave = (wave * 2**31).astype(np.int32)
        for k in range(audio_packets):
            af = av.AudioFrame.from_ndarray(wave[None, k * 1024:(k + 1) * 1024], format=fmt, layout="mono")
            af.sample_rate, af.pts = 8000, k * 1024 + audio_start_ms * 8
            for pk in aus.encode(af):
                out.mux(pk)
        for pk in aus.encode():
            out.mux(pk)
    out.close()


def corrupt_packets(path: Path, which: list[int], seed: int = 0) -> None:
    """Overwrite the middle half of the given video packets with random bytes."""
    with av.open(str(path)) as c:
        spans = [(p.pos, p.size) for p in c.demux(video=0) if p.size]
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(seed)
    for k in which:
        pos, size = spans[k]
        data[pos + size // 4: pos + size // 4 + size // 2] = rng.integers(0, 256, size // 2, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


def read_video(path: Path) -> dict:
    """Everything a test compares: frame times (s), sizes, the decoded RGB images (``left``), audio packets (time, bytes)."""
    out = {"times": [], "sizes": [], "left": [], "audio": []}
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            out["times"].append(float(f.pts * f.time_base))
            img = f.to_ndarray(format="rgb24")
            out["sizes"].append(img.shape[:2])
            out["left"].append(img)
    with av.open(str(path)) as c:
        if c.streams.audio:
            for p in c.demux(audio=0):
                if p.size:
                    out["audio"].append((float(p.pts * p.time_base), bytes(p)))
    return out


class StubBackend(Backend):
    """A stand-in for the model: RGB = (x, 255 - x, x // 2); optional delay; records calls."""

    name = "stub"

    def __init__(self, delay: float = 0.0, on_call=None):
        self.device = "cpu"
        self.precision = "fp32"
        self.delay = delay
        self.on_call = on_call
        self.calls = 0

    def infer(self, x):  # pragma: no cover - the engine uses infer_uint8
        raise NotImplementedError

    def infer_uint8(self, frames: np.ndarray) -> np.ndarray:
        self.calls += 1
        if self.on_call:
            self.on_call(frames)
        if self.delay:
            time.sleep(self.delay)
        return np.stack([frames, 255 - frames, frames // 2], axis=-1)


class ListSource(Source):
    """Frames from a list of images; ``live`` and ``pace`` (seconds per frame) as asked."""

    def __init__(self, images, live=False, pace=0.0, fps=25):
        super().__init__()
        self.images = list(images)
        self.pace = pace
        self.info = SourceInfo(kind="test", description="list", live=live, fps=Fraction(fps), time_base=Fraction(1, fps), frames=len(self.images))

    def __iter__(self):
        for i, img in enumerate(self.images):
            if self.pace:
                time.sleep(self.pace)
            self.frames_read += 1
            yield Frame(img, index=i, pts=i, time_base=self.info.time_base, t_read=time.perf_counter())


def run_cli(args: list[str], cwd: Path, timeout: float = 120, **popen) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "nirvision", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env, **popen)


def start_cli(args: list[str], cwd: Path, **popen) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "nirvision", *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **popen)


def progress_past(proc: subprocess.Popen, total: int, frames: int = 5):
    """A predicate for ``wait_for``: reads one line of ``proc``'s stderr and holds once a progress
    bar says ``frames`` of ``total`` are written (fails at once if the process ended)."""
    def check() -> bool:
        line = proc.stderr.readline()
        assert line or proc.poll() is None, f"the command ended early: {proc.stderr.read()}"
        m = re.search(rf"\] (\d+)/{total} ", line)
        return bool(m) and int(m.group(1)) >= frames

    return check


def wait_for(predicate, timeout: float, what: str, step: float = 0.05) -> None:
    """Wait until ``predicate()`` holds; fail the test naming ``what`` after ``timeout`` s."""
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(step)


def run_in_thread(fn) -> tuple[threading.Thread, dict]:
    box: dict = {}

    def target():
        try:
            box["result"] = fn()
        except BaseException as exc:  # noqa: BLE001
            box["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    return t, box


class RecordingSink(Sink):
    """Keeps (frame index, RGB image, NIR image) of every frame written."""

    def __init__(self):
        self.written: list[tuple[int, np.ndarray, np.ndarray]] = []

    def write(self, frame, image):
        self.written.append((frame.index, image.copy(), frame.image.copy()))


def run_recorded(spec: str, backend) -> tuple[dict, list]:
    """Run source ``spec`` through ``backend`` (closed after) into a RecordingSink: (summary, written)."""
    from nirvision.io import open_source
    from nirvision.runtime.engine import Engine

    sink = RecordingSink()
    try:
        summary = Engine(open_source(spec), [sink], backend).run()
    finally:
        backend.close()
    return summary, sink.written


def make_video(path: Path, frames: int, size=(64, 48), rate: int = 25, options: dict | None = None, sample_aspect_ratio=None,
               codec="libx264", streams: int = 1) -> None:
    """A constant-rate video of ``frames`` frames as ``frame_image`` draws them, with encoder
    ``options`` (``{"bf": "2"}``), a pixel aspect ratio if given, and ``streams`` video streams
    (each further one half the size of the one before)."""
    w, h = size
    out = av.open(str(path), "w")
    vss = []
    for k in range(streams):
        vs = out.add_stream(codec, rate=rate, options=options or {})
        vs.width, vs.height = w >> k, h >> k
        vs.pix_fmt = "yuv420p"
        if sample_aspect_ratio:
            vs.codec_context.sample_aspect_ratio = sample_aspect_ratio
        vss.append(vs)
    for i in range(frames):
        for vs in vss:
            f = av.VideoFrame.from_ndarray(cv2.cvtColor(frame_image(i, vs.height, vs.width), cv2.COLOR_GRAY2RGB), format="rgb24")
            f.pts, f.time_base = i, Fraction(1, rate)
            for pk in vs.encode(f):
                out.mux(pk)
    for vs in vss:
        for pk in vs.encode():
            out.mux(pk)
    out.close()


# display matrices (a, b, c, d of the tkhd box, 16.16) that PyAV reports as frame.rotation
DISPLAY_MATRICES = {-90: (0, 0x10000, 0xFFFF0000, 0), 90: (0, 0xFFFF0000, 0x10000, 0), 180: (0xFFFF0000, 0, 0, 0xFFFF0000)}


def rotate_mp4(path: Path, rotation: int) -> None:
    """Give the first track of an MP4 written by PyAV a display matrix: ``rotation`` as
    ``frame.rotation`` reports it (-90: players turn the picture 90 degrees clockwise)."""
    import struct

    a, b, c, d = DISPLAY_MATRICES[rotation]
    data = bytearray(path.read_bytes())
    i = data.find(b"tkhd")
    at = i + 4 + 4 + 20 + 16  # past the type, version / flags, times, track id and duration, reserved, layer ... volume
    data[at:at + 36] = struct.pack(">9I", a, b, 0, c, d, 0, 0, 0, 0x40000000)
    path.write_bytes(bytes(data))
