"""Benchmarking backends and the whole engine on the same frames (``nirvision bench``).

Each backend is built and warmed up (the first calls export, compile or build; they are not
timed); then the backends take turns frame by frame over the benchmark frames, each called
as the engine calls it: ms per frame and FPS are from wall time around ``infer_uint8``. Its uint8 outputs are compared with
eager fp32's on the same frames (PSNR and AE). The engine (decode -> infer -> encode) then
runs the same frames from a folder of PNGs into an H.264 file with the fastest backend, and its FPS
is divided by that backend's bare FPS measured just before and after.
"""
from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ...models import NIRColorizerNet
from .base import Backend, BackendUnavailable
from .compare import mean_angular_error, mean_psnr

log = logging.getLogger(__name__)


@dataclass
class BenchRecord:
    model: str
    backend: str
    precision: str
    size: str  # WIDTHxHEIGHT
    frames: int
    fps: float | None = None
    ms_per_frame: float | None = None  # mean over the frames
    ms_median: float | None = None  # robust to bursts of load from other processes
    speedup_vs_eager_fp32: float | None = None
    psnr_vs_fp32: float | None = None
    ae_vs_fp32: float | None = None
    engine_over_bare: float | None = None  # engine rows: engine FPS / the same backend's bare FPS
    bare_fps: float | None = None  # engine rows: that backend alone, same frames, around the engine run
    stage_ms: dict | None = None  # engine rows: mean ms per frame of each stage (decode, pre, infer, post, encode)
    threads: int = 0
    device: str = "cpu"
    frames_source: str = ""
    skipped: str | None = None

    def to_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def load_frames(size: tuple[int, int], count: int, folder: str | Path | None = None) -> tuple[np.ndarray, str]:
    """``count`` NIR frames (N, H, W) uint8 at ``size`` (W, H): real images from ``folder``
    (resized, evenly spread over the folder), else a synthetic NIR clip."""
    import cv2

    from ..frames import to_nir

    w, h = size
    if folder is not None:
        paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")) if Path(folder).is_dir() else []
        if not paths:
            raise BackendUnavailable(f"benchmark frames {folder}: expected a folder of images, found none")
        step = max(1, len(paths) // count)
        frames = []
        for p in paths[::step][:count]:
            img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
            if img is None:
                raise BackendUnavailable(f"benchmark frame {p}: cannot be read as an image")
            frames.append(cv2.resize(to_nir(img, name=str(p)), (w, h), interpolation=cv2.INTER_AREA))
        while len(frames) < count:  # a small folder: go round again
            frames.append(frames[len(frames) % len(paths)])
        return np.stack(frames), f"{folder} (resized)"
    from ...io import open_source

    with open_source(f"synthetic:{w}x{h}@25:{count}") as src:
        frames = [to_nir(f.image) for f in src]
    return np.stack(frames), "synthetic"


def time_interleaved(backends: list[Backend], frames: np.ndarray, warmup: int = 2) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per backend: seconds of each frame's call and the outputs.

    After ``warmup`` untimed calls each, the backends take turns frame by frame, so a burst
    of load from other processes on a shared machine hits all of them alike and their
    ratios stay fair."""
    for b in backends:
        for i in range(warmup):
            b.infer_uint8(frames[i % len(frames)][None])
    times = [np.empty(len(frames)) for _ in backends]
    outs = [np.empty(frames.shape + (3,), dtype=np.uint8) for _ in backends]
    for i in range(len(frames)):
        for k, b in enumerate(backends):
            start = time.perf_counter()
            outs[k][i] = b.infer_uint8(frames[i][None])[0]
            times[k][i] = time.perf_counter() - start
    return list(zip(times, outs))


def time_bare(backend: Backend, frames: np.ndarray, total: int) -> float:
    """Frames per second of ``backend`` alone over ``total`` frames (cycling ``frames``)."""
    start = time.perf_counter()
    for i in range(total):
        backend.infer_uint8(frames[i % len(frames)][None])
    return total / (time.perf_counter() - start)


def write_clip(path: Path, frames: np.ndarray, count: int, fps: int = 25) -> Path:
    """``frames`` (N, H, W) uint8, cycled to ``count``, as an H.264 clip: the kind of input the
    engine meets in batch work (a gray video; x264 at crf 10 keeps them close to the originals)."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps, options={"crf": "10", "preset": "veryfast"})
        stream.height, stream.width = frames.shape[1] + frames.shape[1] % 2, frames.shape[2] + frames.shape[2] % 2
        stream.pix_fmt = "yuv420p"
        for i in range(count):
            f = frames[i % len(frames)]
            f = np.pad(f, ((0, f.shape[0] % 2), (0, f.shape[1] % 2)), mode="edge")
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="gray")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def time_engine(backend: Backend, frames: np.ndarray, min_frames: int = 40) -> dict:
    """Run the engine on ``frames`` (an H.264 clip source, an H.264 file sink); its summary.

    The frames are cycled up to ``min_frames`` so the run's fixed costs (opening the encoder,
    starting threads, flushing) weigh on the FPS as little as they do in a real clip. The
    source is a video, not a PNG folder: recorded night videos are what batch users feed the
    engine, and the decoder in the loop is then the one they run."""
    from ...io import open_sink, open_source
    from ..engine import Engine

    with tempfile.TemporaryDirectory(prefix="nirvision-bench-") as tmp:
        clip = write_clip(Path(tmp) / "clip.mp4", frames, max(len(frames), min_frames))
        source = open_source(str(clip))
        sink = open_sink(str(Path(tmp) / "out.mp4"), source.info)
        return Engine(source, [sink], backend).run()


def run_bench(net: NIRColorizerNet, model: str, backends: list[str], precisions: list[str], sizes: list[tuple[int, int]],
              frames_count: int = 20, folder: str | Path | None = None, device: str = "cpu", engine: bool = True,
              warmup: int = 2, backend_options: dict | None = None, engine_frames: int = 40) -> list[BenchRecord]:
    """Time every (backend, precision) at every size against eager fp32 in the same run, then the engine.

    The engine runs with the fastest backend on the same frames (cycled to ``engine_frames``);
    that backend's bare FPS over the same number of frames is measured right before and right
    after, and ``engine_over_bare`` divides by their mean."""
    from . import create_backend, resolve_device

    dev = resolve_device(device)
    threads = torch.get_num_threads()
    records: list[BenchRecord] = []
    combos = [("eager", "fp32")] + [(b, p) for b in backends for p in precisions if (b, p) != ("eager", "fp32")]
    for w, h in sizes:
        frames, origin = load_frames((w, h), frames_count, folder)
        size = f"{w}x{h}"
        built: list[tuple[BenchRecord, Backend]] = []
        for name, precision in combos:
            rec = BenchRecord(model, name, precision, size, len(frames), threads=threads, device=str(dev), frames_source=origin)
            records.append(rec)
            try:
                opts = dict(backend_options or {}) if name in ("onnxruntime", "tensorrt", "auto") else {}
                backend = create_backend(name, net, dev, precision, **opts)
                if name == "auto":
                    rec.backend = f"auto->{backend.name}"
                backend.infer_uint8(frames[:1])  # export / compile / build now, untimed
            except BackendUnavailable as exc:
                rec.skipped = str(exc)
                log.warning("bench %s: %s %s skipped: %s", size, name, precision, exc)
                continue
            built.append((rec, backend))
        if not built or built[0][0].backend != "eager":
            raise BackendUnavailable(f"bench {size}: eager fp32, the reference, could not run")
        results = time_interleaved([b for _, b in built], frames, warmup)
        ref_s, ref_out = float(np.mean(results[0][0])), results[0][1]
        for (rec, _), (secs, outs) in zip(built, results):
            sec = float(np.mean(secs))
            rec.ms_per_frame, rec.fps = sec * 1000, 1.0 / sec
            rec.ms_median = float(np.median(secs)) * 1000
            rec.speedup_vs_eager_fp32 = ref_s / sec
            rec.psnr_vs_fp32, rec.ae_vs_fp32 = mean_psnr(outs, ref_out), mean_angular_error(outs, ref_out)
            log.info("bench %s: %s %s %.1f ms/frame", size, rec.backend, rec.precision, sec * 1000)
        if engine:
            rec_best, backend = min(built, key=lambda rb: rb[0].ms_per_frame)
            n = max(len(frames), engine_frames)
            before = time_bare(backend, frames, n)
            summary = time_engine(backend, frames, engine_frames)
            after = time_bare(backend, frames, n)
            rec = BenchRecord(model, f"engine[{backend.name}]", rec_best.precision, size, summary["frames_out"], threads=threads, device=str(dev), frames_source=origin)
            rec.fps = summary["fps"]
            rec.ms_per_frame = 1000.0 / rec.fps if rec.fps else None
            rec.bare_fps = (before + after) / 2
            rec.engine_over_bare = rec.fps / rec.bare_fps
            rec.speedup_vs_eager_fp32 = rec.fps * ref_s
            rec.stage_ms = {k: v["mean"] for k, v in summary["latency_ms"].items() if k != "total"}
            records.append(rec)
            log.info("bench %s: engine with %s %s: %.1f FPS, bare %.1f / %.1f FPS; ms per frame by stage: %s", size, backend.name,
                     rec.precision, rec.fps, before, after, ", ".join(f"{k} {v}" for k, v in rec.stage_ms.items()))
        for _, backend in built:
            backend.close()
    return records
