"""Counters and per-stage latencies of one engine run, summarised as a JSON-ready dict."""
from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np

# decode: the reader's time for the source's next frame (demux + decode), less what the source
#   says it spent waiting; wait (live sources that tell it, as RTSP, summary only where measured):
#   waiting for the camera, its outages and reconnections included; pre: reduction to one uint8
#   NIR channel; infer: Backend.infer_uint8; post: composing views (side by side); encode: all
#   sinks' writes; total (summary only): from leaving the source to written, the end-to-end
#   latency per frame.
STAGES = ("decode", "pre", "infer", "post", "encode")
OPTIONAL = ("wait",)  # in the summary only where measured
WINDOW = 4096  # p95 over the most recent samples, so that memory stays flat on endless streams


class StageTimes:
    """Per-stage latency in ms: the mean over the whole run and the p95 over a recent window."""

    def __init__(self, stages=STAGES + OPTIONAL + ("total",), window: int = WINDOW):
        self._recent = {s: deque(maxlen=window) for s in stages}
        self._sum = dict.fromkeys(stages, 0.0)
        self._count = dict.fromkeys(stages, 0)
        self._lock = threading.Lock()

    def add(self, stage: str, seconds: float) -> None:
        ms = seconds * 1000.0
        with self._lock:
            self._recent[stage].append(ms)
            self._sum[stage] += ms
            self._count[stage] += 1

    def summary(self) -> dict[str, dict[str, float | None]]:
        out = {}
        with self._lock:
            for stage, recent in self._recent.items():
                n = self._count[stage]
                if not n and stage in OPTIONAL:
                    continue
                out[stage] = {
                    "mean": round(self._sum[stage] / n, 3) if n else None,
                    "p95": round(float(np.percentile(np.fromiter(recent, float), 95)), 3) if recent else None,
                }
        return out


def source_losses(source) -> dict:
    """What the source lost of its input, for the run's summary: ``damage``, the stretches of a
    recorded video that could not be decoded and were read through (``{"from": s, "to": s,
    "packets": n}`` each, times as players count them), and ``shortfall``, where it ended short
    of what its header announces (``{"frames", "expected", "seconds", "expected_seconds"}``:
    truncated, or damaged so that reading stopped), else None. Read at the end of a run (the
    source knows a shortfall once it has ended); sources that cannot tell (streams, cameras,
    pictures) have neither."""
    damage = getattr(source, "damage", None) or []
    shortfall = getattr(source, "shortfall", None)
    return {"damage": [dict(d) for d in damage], "shortfall": dict(shortfall) if shortfall else None}


def live_state(source) -> dict:
    """A live source's state for status lines and ``/status.json``, where it tells one
    (``outage()``, as RTSP): ``{"state": "streaming"}`` while frames come; while they do not,
    the state (``reconnecting``, ``stalled``), ``outage_s`` (seconds without frames) and
    ``waiting`` (what the run waits for, as at the start: ``reconnecting to rtsp://...``).
    Empty for sources that cannot tell."""
    outage = getattr(source, "outage", None)
    if not callable(outage):
        return {}
    now = outage()
    if now is None:
        return {"state": "streaming"}
    state, seconds, waiting = now
    return {"state": state, "outage_s": round(seconds, 1), "waiting": waiting}


def process_cpu_s() -> float:
    """User plus system CPU seconds of this process so far, all threads."""
    return time.process_time()


OUTAGE_S = 1.0  # a pause between frames this long (and 5 times the usual) is an outage, not the rate


class RunStats:
    """What the engine counts; the reader, inference and writer threads each own their fields."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.end: float | None = None
        self.frames_in = 0  # taken from the source by the reader
        self.frames_inferred = 0
        self.passed = 0  # of frames_out: written as they came, without inference (frames already in colour)
        self.frames_out = 0  # handed to the sinks
        self.dropped = 0  # live sources only: oldest frames dropped when inference fell behind
        self.discarded = 0  # read but not written: queued or in flight when the run stopped or failed
        self.resolution_changes = 0
        self.times = StageTimes()
        self._recent_out = deque(maxlen=64)  # perf_counter of recent writes, for the current FPS
        self.cpu_start = process_cpu_s()
        self.cpu_end: float | None = None
        self.thread_cpu: dict[str, float] = {}  # CPU seconds of each engine thread, set as it ends

    def cpu_summary(self) -> dict[str, float | None]:
        """CPU per frame written, in ms: the whole process (codec and inference threads
        included) and each engine thread, and the cores the run kept busy on average."""
        n = self.frames_out
        used = (self.cpu_end or process_cpu_s()) - self.cpu_start
        out: dict[str, float | None] = {"process_ms_per_frame": round(1000 * used / n, 2) if n else None}
        for name, secs in self.thread_cpu.items():
            out[f"{name}_ms_per_frame"] = round(1000 * secs / n, 2) if n else None
        out["cores"] = round(used / self.wall_s, 2) if self.wall_s > 0 else None
        return out

    def wrote(self) -> None:
        self.frames_out += 1
        self._recent_out.append(time.perf_counter())

    @property
    def wall_s(self) -> float:
        return (self.end or time.perf_counter()) - self.start

    def current_fps(self) -> float:
        """Frames a second over the recent window; when no frame has come for more than twice
        the window's mean interval (a stream lost, a camera gone dark) the wait counts too, so
        the figure falls towards 0 instead of showing the last rate."""
        recent = list(self._recent_out)  # a copy: the writer appends meanwhile
        if len(recent) < 2:
            return 0.0
        gaps = np.diff(recent)
        usual = float(np.median(gaps))
        outage = np.flatnonzero(gaps > max(OUTAGE_S, 5 * usual))
        if len(outage) and len(recent) - outage[-1] - 1 >= 2:  # frames since a stream came back: its rate now, not the outage's
            recent = recent[outage[-1] + 1:]
        span = recent[-1] - recent[0]
        if span <= 0:
            return 0.0
        waited = time.perf_counter() - recent[-1]
        if waited > 2 * span / (len(recent) - 1):
            span += waited
        return (len(recent) - 1) / span

    def fps(self) -> float:
        return self.frames_out / self.wall_s if self.wall_s > 0 else 0.0
