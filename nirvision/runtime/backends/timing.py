"""Benchmarking backends and the whole engine on the same frames (``nirvision bench``).

Each backend is built and warmed up (the first calls export, compile or build; they are not
timed); then the backends take turns over the benchmark frames, each fed as the engine feeds
it (``submit``, with as many frames in flight as it takes): ms per frame and FPS are wall time
per frame, so throughput. Its uint8 outputs are compared with eager fp32's on the same frames
(PSNR and AE). The engine (decode -> infer -> encode) then runs an H.264 clip made from the
same images into an H.264 file with the fastest backend, and its FPS is divided by that
backend's bare FPS on the clip's frames, measured just before and after. H.264 in yuv420p
needs even sides, so with the engine an odd size is rounded up to even before anything is
measured (every row then runs the frames the engine runs; ``size_asked`` keeps the size given).

Every row also gives the rate it reached in GFLOP/s (the chain's multiply-adds x 2 per frame,
``gflop_per_frame``, times FPS), and the run measures the machine's fp32 matrix-multiply rate
with the same threads (``matmul_gflops``): what a dense fp32 kernel can reach here, so a row
near it has no headroom left but fewer operations (int8, a smaller model).

Other processes on the machine slow the rows unevenly (PyTorch's spinning OpenMP threads far
more than one-thread ONNX Runtime sessions: eager, the divisor of every ratio, took 26 to 2251
ms a frame at 64x64 on 2 shared cores while ONNX Runtime stayed at 7-20), and taking turns does
not even that out. So every row records the machine's 1-minute load average when its size's
turns began and ended (``load_before``, ``load_after``; the whole machine's, in a container the
host's), how much of that was other processes' (``load_others``: the load average less the
bench's own share, see ``OwnLoad``), the cores (``cpus``), and the process's CPU time per frame
during its turns (``cpu_ms_per_frame``, all threads); ``load_warning`` says when the others'
load left fewer cores than the bench uses.
"""
from __future__ import annotations

import copy
import logging
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ...models import NIRColorizerNet
from .base import Backend, BackendUnavailable, run_in_order
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
    ms_median: float | None = None  # median over turns, robust to bursts of load; None with fewer than MEDIAN_TURNS turns
    turns: int | None = None  # timed turns (a turn: one frame, or TURN_DEPTHS x the frames in flight; see time_interleaved)
    cpu_ms_per_frame: float | None = None  # the process's CPU time (all threads) per frame during the row's turns
    load_before: float | None = None  # the machine's 1-minute load average when this size's turns began
    load_after: float | None = None  # and when they ended
    load_others: float | None = None  # estimated: the higher of the two less the bench's own share (OwnLoad)
    cpus: int | None = None  # the machine's cores (what the load average is out of)
    speedup_vs_eager_fp32: float | None = None
    psnr_vs_fp32: float | None = None
    ae_vs_fp32: float | None = None
    engine_over_bare: float | None = None  # engine rows: engine FPS / the same backend's bare FPS
    bare_fps: float | None = None  # engine rows: that backend alone, same frames, around the engine run
    stage_ms: dict | None = None  # engine rows: mean ms per frame of each stage (decode, pre, infer, post, encode)
    cpu_ms: dict | None = None  # engine rows: CPU ms per frame of the engine's process and threads, and of the bare backend
    gflop_per_frame: float | None = None  # the chain's multiply-adds x 2 for one frame at this size
    gflops: float | None = None  # the rate reached: gflop_per_frame * fps
    matmul_gflops: float | None = None  # fp32 torch.mm 1024x1024 on this device with the same threads: a dense kernel's rate
    threads: int = 0
    workers: int = 1  # copies running frames side by side (FrameParallel), sharing the threads
    double_buffer: bool | None = None  # CUDA frame pipeline: uploads overlapped with compute (None: no such pipeline)
    device: str = "cpu"
    frames_source: str = ""
    size_asked: str | None = None  # the size asked for, when it was odd and ``size`` is it rounded up to even
    encoder: str | None = None  # engine rows: the H.264 encoder of the engine's output and its settings
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
            try:
                nir = to_nir(img, name=str(p))
            except ValueError as exc:  # pixels that are no image (float outside [0, 1], ...): the message names the file
                raise BackendUnavailable(f"benchmark frame {exc}") from None
            frames.append(cv2.resize(nir, (w, h), interpolation=cv2.INTER_AREA))
        while len(frames) < count:  # a small folder: go round again
            frames.append(frames[len(frames) % len(paths)])
        return np.stack(frames), f"{folder} (resized)"
    from ...io import open_source

    with open_source(f"synthetic:{w}x{h}@25:{count}") as src:
        frames = [to_nir(f.image) for f in src]
    return np.stack(frames), "synthetic"


def run_frames(backend: Backend, frames: np.ndarray, count: int | None = None, out: np.ndarray | None = None) -> None:
    """Frames ``0 .. count-1`` (cycling ``frames``) through ``backend`` as the engine feeds it:
    one at a time, with up to ``backend.max_in_flight`` submitted before the oldest is
    collected; outputs land in ``out`` (N, H, W, 3) when given."""
    run_in_order(backend.submit, frames, getattr(backend, "max_in_flight", 1), count, out)


TURN_DEPTHS = 4
MEDIAN_TURNS = 3  # fewer turns than this give no median (with one or two it is the mean)
BUSY_MARGIN = 1.0  # load average above the cores the bench leaves free by this much: other processes take the bench's cores


@dataclass
class Timed:
    """One backend's share of ``time_interleaved``: seconds per frame of each frame's turn, the
    outputs, the process's CPU seconds in its turns, and the number of turns."""

    times: np.ndarray
    outs: np.ndarray
    cpu_s: float
    turns: int


def load_average() -> float | None:
    """The machine's 1-minute load average (runnable threads, all processes), or None where the
    system does not give one."""
    try:
        return float(os.getloadavg()[0])
    except (OSError, AttributeError):
        return None


def machine_cpus() -> int:
    """The machine's cores, what the load average is counted against."""
    return os.cpu_count() or 1


class OwnLoad:
    """This process's share of the machine's 1-minute load average since it was made.

    The kernel's load average is an exponential average (time constant 60 s) of the threads
    running or waiting to run; this process's threads count in it as the CPU they use (a thread
    that waits for a core counts without using one, so under contention the others' share comes
    out a little high, which is when it matters). After ``t`` seconds at ``c`` cores busy the
    process adds about ``c * (1 - exp(-t / 60))``: a bench of 20 s has raised it by a quarter of
    its threads, not by all of them."""

    def __init__(self) -> None:
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()

    def __call__(self) -> float:
        wall = time.perf_counter() - self.wall0
        if wall <= 0:
            return 0.0
        busy = (time.process_time() - self.cpu0) / wall
        return busy * (1.0 - math.exp(-wall / 60.0))


def load_warning(load: float | None, others: float | None, cpus: int, threads: int) -> str | None:
    """A warning when other processes' load (``others``, of the load average ``load``) took
    cores the bench uses, else None: they may use the cores the bench leaves free
    (``cpus - threads``) and ``BUSY_MARGIN`` more before the times are said to be unreliable."""
    if load is None or others is None:
        return None
    own = min(threads, cpus)
    if others <= cpus - own + BUSY_MARGIN:
        return None
    return (f"load average {load:.1f} on {cpus} cores, about {max(others, 0):.1f} of it from other processes (the bench runs {threads} "
            f"thread{'s' if threads != 1 else ''}): other processes are using the CPU, so the times are slower than on an idle "
            "machine and the ratios over eager are not reliable (eager's threads suffer most)")


def records_load_warning(records: list[BenchRecord]) -> str | None:
    """``load_warning`` for the row that saw the most load of other processes while it was timed."""
    seen = [r for r in records if r.load_others is not None and r.cpus]
    if not seen:
        return None
    r = max(seen, key=lambda r: r.load_others)
    return load_warning(max(v for v in (r.load_before, r.load_after) if v is not None), r.load_others, r.cpus, r.threads)


def time_interleaved(backends: list[Backend], frames: np.ndarray, warmup: int = 2, progress=None) -> list[Timed]:
    """Per backend: seconds per frame of each frame's turn, the outputs, the CPU time and turns.

    After ``warmup`` untimed frames each, the backends take turns over the frames, so a burst
    of load from other processes on a shared machine hits all of them alike and their ratios
    stay fair. A turn is one frame when every backend runs one at a time, else ``TURN_DEPTHS``
    times the most frames any backend keeps in flight (8 for two workers: each turn ends by
    waiting for the last frame, which leaves a worker idle, so short turns would understate
    their throughput); each backend is fed as the engine feeds it, and the turn's wall time is
    shared by its frames: throughput, not one frame's latency (so a median over the frames is a
    median over turns). The process's CPU time (all its threads) is summed over each backend's
    turns. ``progress(done, total)`` is called after each turn with the frames timed so far."""
    depth = max(max(1, int(getattr(b, "max_in_flight", 1))) for b in backends)
    turn = 1 if depth == 1 else TURN_DEPTHS * depth
    for b in backends:
        run_frames(b, frames, max(warmup, turn if warmup else 0))
    times = [np.empty(len(frames)) for _ in backends]
    outs = [np.empty(frames.shape + (3,), dtype=np.uint8) for _ in backends]
    cpu = [0.0 for _ in backends]
    starts = range(0, len(frames), turn)
    for i in starts:
        chunk = frames[i : i + turn]
        for k, b in enumerate(backends):
            cpu0, start = time.process_time(), time.perf_counter()
            run_frames(b, chunk, out=outs[k][i : i + turn])
            times[k][i : i + turn] = (time.perf_counter() - start) / len(chunk)
            cpu[k] += time.process_time() - cpu0
        if progress is not None:
            progress(min(i + turn, len(frames)), len(frames))
    return [Timed(t, o, c, len(starts)) for t, o, c in zip(times, outs, cpu)]


def time_bare(backend: Backend, frames: np.ndarray, total: int) -> float:
    """Frames per second of ``backend`` alone over ``total`` frames (cycling ``frames``), fed as
    the engine feeds it."""
    start = time.perf_counter()
    run_frames(backend, frames, total)
    return total / (time.perf_counter() - start)


CLIP_KINDS = ("pan", "cuts")
PAN_HOLD = 10  # frames per benchmark image in a "pan" clip (0.4 s at 25 FPS)


def clip_frames(frames: np.ndarray, count: int, kind: str = "pan") -> np.ndarray:
    """The ``count`` frames (N, H, W) of the engine's benchmark clip, made from ``frames``.

    ``pan``: each image becomes a shot of ``PAN_HOLD`` frames in which the view slowly pans
    (2 px right a frame and 1 px down every other frame, over a slightly enlarged copy), so consecutive frames
    are alike, as in recorded video, and the codecs see motion, not stills. ``cuts``: the
    images cycled, a scene cut every frame, the codecs' worst case (at 640x480 about 8 ms of
    CPU to decode and 19 to encode a frame against 3 and 8 for ``pan``; measured)."""
    if kind not in CLIP_KINDS:
        raise ValueError(f"benchmark clip {kind!r}: expected one of {', '.join(CLIP_KINDS)}")
    n, h, w = frames.shape
    if kind == "cuts":
        return np.stack([frames[i % n] for i in range(count)])
    import cv2

    out = np.empty((count, h, w), dtype=np.uint8)
    for i in range(count):
        shot, t = divmod(i, PAN_HOLD)
        if t == 0:
            big = cv2.resize(frames[shot % n], (w + 2 * PAN_HOLD, h + PAN_HOLD), interpolation=cv2.INTER_LINEAR)
        out[i] = big[t // 2 : t // 2 + h, 2 * t : 2 * t + w]
    return out


def write_clip(path: Path, frames: np.ndarray, count: int | None = None, fps: int = 25) -> Path:
    """``frames`` (N, H, W) uint8, cycled to ``count``, as an H.264 clip: the kind of input the
    engine meets in batch work (a gray video; x264 at crf 10 keeps them close to the originals)."""
    import av

    count = len(frames) if count is None else count
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


def even_size(size: tuple[int, int]) -> tuple[int, int]:
    """``size`` (W, H) with odd sides rounded up to even: the engine's H.264 clip (yuv420p)
    cannot hold odd sides, and the bench times every row on the frames the engine runs."""
    w, h = size
    return w + w % 2, h + h % 2


def time_engine(backend: Backend, frames: np.ndarray, preset: str = "veryfast") -> dict:
    """Run the engine on ``frames`` written as an H.264 clip into an H.264 file (x264 ``preset``);
    its summary, with ``encoder`` saying what encoded the output.

    The source is a video, not a PNG folder: recorded night videos are what batch users feed
    the engine, and the decoder in the loop is then the one they run. With a CPU backend the
    encoder gets one thread, as ``nirvision colorize`` gives it."""
    from ...io import open_sink, open_source
    from ..engine import Engine

    with tempfile.TemporaryDirectory(prefix="nirvision-bench-") as tmp:
        clip = write_clip(Path(tmp) / "clip.mp4", frames)
        source = open_source(str(clip))
        try:
            sink = open_sink(str(Path(tmp) / "out.mp4"), source.info, preset=preset, threads=1 if backend.device.type == "cpu" else None)
        except BaseException:
            source.close()
            raise
        return {**Engine(source, [sink], backend).run(), "encoder": sink.encoder}


def chain_gflop(net: NIRColorizerNet, h: int, w: int) -> float:
    """The chain's GFLOP (multiply-adds x 2) for one (1, 1, h, w) frame, counted on a weightless
    copy on the meta device (shapes only: no arithmetic, the network itself untouched)."""
    from ...models.profile import count_flops

    return count_flops(copy.deepcopy(net).to("meta"), (1, 1, h, w)) / 1e9


def matmul_gflops(device: torch.device, size: int = 1024, repeats: int = 10) -> float:
    """fp32 GFLOP/s of ``torch.mm`` on ``size`` x ``size`` matrices with the current threads (best
    of ``repeats``): a dense kernel's rate on this machine, the ceiling fp32 convolutions approach."""
    a = torch.rand(size, size, device=device)
    b = torch.rand(size, size, device=device)
    best = float("inf")
    for i in range(repeats + 2):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t = time.perf_counter()
        torch.mm(a, b)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= 2:  # the first calls set up the kernel
            best = min(best, time.perf_counter() - t)
    return 2 * size**3 / best / 1e9


def steady_heap() -> bool:
    """Ask glibc's malloc to keep freed memory for reuse (no trimming, large blocks from the heap
    rather than fresh ``mmap`` pages) for the rest of the process; False where that cannot be set.

    A bench holds many backends in one process, and their allocators change glibc's dynamic
    thresholds: with ONNX Runtime sessions beside it, eager paper at 256x256 took 513 ms a frame
    instead of 352 (measured on the Xeon, session 5), its activations page-faulting in anew
    each frame (high system time). Eager is the reference every ratio divides by, so the bench
    gives every backend the same steady heap, as each has when it runs alone."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's malloc.h
    return bool(mallopt(m_mmap_threshold, 1 << 30)) and bool(mallopt(m_trim_threshold, 1 << 30))


def run_bench(net: NIRColorizerNet, model: str, backends: list[str], precisions: list[str], sizes: list[tuple[int, int]],
              frames_count: int = 20, folder: str | Path | None = None, device: str = "cpu", engine: bool = True,
              warmup: int = 2, backend_options: dict | None = None, engine_frames: int = 40,
              workers: list[int | str] | None = None, engine_clip: str = "pan",
              double_buffer: list[bool] | None = None, engine_preset: str = "veryfast", progress=None) -> list[BenchRecord]:
    """Time every (backend, precision, workers) at every size against eager fp32 in the same run, then the engine.

    ``workers`` lists worker counts to try (``auto`` allowed); counts above 1 apply to
    backends that can run frames side by side (ONNX Runtime and OpenVINO on the CPU) and are left out for
    the others. The engine runs with the fastest backend on a clip of ``engine_frames`` frames
    made from the same images (``clip_frames``: ``engine_clip`` pan or cuts); that backend's
    bare FPS on the clip's frames is measured right before and right after, and
    ``engine_over_bare`` divides by their mean; with the engine, odd sizes are rounded up to
    even first (``even_size``), so that all of this happens at one size; its output is encoded
    with x264's ``engine_preset``. ``double_buffer`` lists the settings of the
    CUDA frame pipeline to time (e.g. ``[True, False]``) for backends that have one, on CUDA.
    ``progress(text)``, when given, hears what the run is doing (building, timing turns, the
    engine): a bench of the paper model runs for minutes."""
    say = progress or (lambda text: None)
    from . import create_backend, resolve_device
    from .auto import accepted_options
    from .parallel import parallel, resolve_workers

    dev = resolve_device(device)
    if not steady_heap():
        log.info("bench: glibc's malloc options could not be set; backends may page-fault their activations anew each frame")
    threads = torch.get_num_threads()
    cpus = machine_cpus()
    own = OwnLoad()
    load = load_average()
    busy = load_warning(load, load, cpus, threads)  # the bench has not run yet: all of it is others'
    if busy:  # said now: the user may rather stop and run later than wait minutes for such numbers
        say(busy)
    peak = matmul_gflops(dev)
    records: list[BenchRecord] = []
    combos = [("eager", "fp32")] + [(b, p) for b in backends for p in precisions if (b, p) != ("eager", "fp32")]
    for asked in sizes:
        w, h = even_size(asked) if engine else asked
        size = f"{w}x{h}"
        size_asked = f"{asked[0]}x{asked[1]}" if (w, h) != tuple(asked) else None
        if size_asked:
            log.warning("bench %s: rounded up to %s, as H.264 (yuv420p) needs even sides: every row runs at %s", size_asked, size, size)
            say(f"{size_asked}: rounded up to {size} (H.264 in yuv420p needs even sides; every row runs at {size})")
        frames, origin = load_frames((w, h), frames_count, folder)
        gflop = chain_gflop(net, h, w)
        built: list[tuple[BenchRecord, Backend]] = []
        for name, precision in combos:
            done: set[tuple[int, bool | None]] = set()
            pipelined = dev.type == "cuda" and name != "auto" and "double_buffer" in accepted_options(name)
            for asked, db in [(a, d) for a in workers or [1] for d in (double_buffer or [None])]:
                db = db if pipelined else None
                rec = BenchRecord(model, name, precision, size, len(frames), threads=threads, device=str(dev), frames_source=origin,
                                  gflop_per_frame=gflop, matmul_gflops=peak, size_asked=size_asked)
                try:
                    opts = dict(backend_options or {}) if name in ("onnxruntime", "openvino", "tensorrt", "auto") else {}
                    if db is not None:
                        opts["double_buffer"] = db
                    backend = create_backend(name, net, dev, precision, **opts)
                    k = resolve_workers(asked, backend, threads)
                    if k > 1 and not backend.can_replicate:
                        k = 1  # backends that cannot be copied run one at a time, whatever --workers lists
                    if (k, db) in done:
                        backend.close()  # the same as a row already timed
                        continue
                    backend = parallel(backend, k, threads)
                    done.add((k, db))
                    rec.workers, rec.double_buffer = k, db
                    if name == "auto":
                        rec.backend = f"auto->{backend.name}"
                    say(f"{size}: building {rec.backend} {precision}" + (f" x{k} workers" if k > 1 else "") + " (warm-up and any export or compile, untimed)")
                    backend.infer_uint8(frames[:1])  # export / compile / build now, untimed
                    if hasattr(backend, "prepare"):
                        backend.prepare((1, 1, h, w))
                except BackendUnavailable as exc:
                    rec.skipped = str(exc)
                    records.append(rec)
                    log.warning("bench %s: %s %s skipped: %s", size, name, precision, exc)
                    break
                records.append(rec)
                built.append((rec, backend))
        if not built or built[0][0].backend != "eager":
            raise BackendUnavailable(f"bench {size}: eager fp32, the reference, could not run")
        say(f"{size}: timing {len(built)} rows in turns over {len(frames)} frames")
        quarters: set[int] = set()  # the turns are told once a quarter of the frames

        def turns(done: int, total: int) -> None:
            if 4 * done // total not in quarters:
                quarters.add(4 * done // total)
                say(f"{size}: timed {done}/{total} frames of every row")

        load_before, own_before = load_average(), own()
        results = time_interleaved([b for _, b in built], frames, warmup, progress=turns)
        load_after, own_after = load_average(), own()
        others = max((v - o for v, o in ((load_before, own_before), (load_after, own_after)) if v is not None), default=None)
        ref_s, ref_out = float(np.mean(results[0].times)), results[0].outs
        for (rec, _), timed in zip(built, results):
            secs, outs = timed.times, timed.outs
            sec = float(np.mean(secs))
            rec.ms_per_frame, rec.fps = sec * 1000, 1.0 / sec
            rec.turns = timed.turns
            rec.ms_median = float(np.median(secs)) * 1000 if timed.turns >= MEDIAN_TURNS else None
            rec.cpu_ms_per_frame = 1000 * timed.cpu_s / len(frames)
            rec.load_before, rec.load_after, rec.load_others, rec.cpus = load_before, load_after, others, cpus
            rec.speedup_vs_eager_fp32 = ref_s / sec
            rec.gflops = gflop * rec.fps
            rec.psnr_vs_fp32, rec.ae_vs_fp32 = mean_psnr(outs, ref_out), mean_angular_error(outs, ref_out)
            log.info("bench %s: %s %s %.1f ms/frame", size, rec.backend, rec.precision, sec * 1000)
        if engine:
            rec_best, backend = min(built, key=lambda rb: rb[0].ms_per_frame)
            clip = clip_frames(frames, engine_frames, engine_clip)
            say(f"{size}: the engine with {backend.name}: {len(clip)} frames of an H.264 clip ({engine_clip}), the bare backend before and after")
            cpu0 = time.process_time()
            before = time_bare(backend, clip, len(clip))
            bare_cpu = time.process_time() - cpu0
            summary = time_engine(backend, clip, engine_preset)
            cpu0 = time.process_time()
            after = time_bare(backend, clip, len(clip))
            bare_cpu += time.process_time() - cpu0
            rec = BenchRecord(model, f"engine[{backend.name}]", rec_best.precision, size, summary["frames_out"], threads=threads,
                              workers=rec_best.workers, device=str(dev), frames_source=f"{origin}, H.264 clip ({engine_clip})",
                              gflop_per_frame=gflop, matmul_gflops=peak, size_asked=size_asked, encoder=summary["encoder"])
            rec.fps = summary["fps"]
            rec.ms_per_frame = 1000.0 / rec.fps if rec.fps else None
            rec.bare_fps = (before + after) / 2
            rec.gflops = gflop * rec.fps if rec.fps else None
            rec.engine_over_bare = rec.fps / rec.bare_fps
            rec.speedup_vs_eager_fp32 = rec.fps * ref_s
            rec.stage_ms = {k: v["mean"] for k, v in summary["latency_ms"].items() if k != "total"}
            rec.cpu_ms = {"bare_ms_per_frame": round(1000 * bare_cpu / (2 * len(clip)), 2), **summary["cpu"]}
            rec.cpu_ms_per_frame = summary["cpu"].get("process_ms_per_frame")
            end = load_average()
            rec.load_before, rec.load_after, rec.cpus = load_before, end, cpus
            rec.load_others = max((v for v in (others, None if end is None else end - own()) if v is not None), default=None)
            records.append(rec)
            log.info("bench %s: engine with %s %s: %.1f FPS, bare %.1f / %.1f FPS; ms per frame by stage: %s", size, backend.name,
                     rec.precision, rec.fps, before, after, ", ".join(f"{k} {v}" for k, v in rec.stage_ms.items()))
        for _, backend in built:
            backend.close()
    return records
