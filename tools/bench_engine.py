"""Whole-engine FPS against bare-backend FPS on the same frames, and memory over a long run.

    python tools/bench_engine.py --model lite --size 160x120 --frames 200          # FPS
    python tools/bench_engine.py --model lite --size 160x120 --frames 5000 --memory-only

FPS: the same synthetic frames go (a) straight through ``backend.infer_uint8`` one by one and
(b) through the engine (synthetic source -> reader -> inference -> writer -> H.264 file), in
alternating rounds so that a shared CPU's load affects both alike. Memory: RSS sampled from
/proc/self/status while the engine runs ``--frames`` frames, reported near the start (after
the first 5% of frames), at the end, and the peak (VmHWM). Prints JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nirvision.api import load_chain, set_threads  # noqa: E402
from nirvision.io import open_sink, open_source  # noqa: E402
from nirvision.runtime.backends import create_backend  # noqa: E402
from nirvision.runtime.engine import Engine, EngineOptions  # noqa: E402


def rss_mb(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bare_fps(backend, frames) -> float:
    t0 = time.perf_counter()
    for f in frames:
        backend.infer_uint8(f[None])
    return len(frames) / (time.perf_counter() - t0)


def engine_run(backend, spec: str, out: Path, progress=None, interval: float = 1.0) -> dict:
    source = open_source(spec)
    sink = open_sink(str(out), source.info)
    return Engine(source, [sink], backend, EngineOptions(progress=progress, status_interval=interval)).run()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="lite", help="lite, paper or a YAML file (random weights)")
    ap.add_argument("--weights", help="a checkpoint instead of random weights")
    ap.add_argument("--size", default="160x120")
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=2, help="alternating bare/engine rounds for FPS")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--backend", default="eager")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--memory-only", action="store_true", help="only the long run for RSS")
    args = ap.parse_args()

    set_threads(args.threads)
    chain, config, _ = load_chain(args.weights, None if args.weights else args.model)
    backend = create_backend(args.backend, chain, "cpu", args.precision)
    result = {"model": config.name, "size": args.size, "threads": args.threads, "backend": args.backend, "precision": args.precision}
    tmp = Path(tempfile.mkdtemp(prefix="nirvision-bench-"))

    if not args.memory_only:
        n = max(1, args.frames // args.rounds)
        spec = f"synthetic:{args.size}@25:{n}"
        frames = [f.image for f in open_source(spec)]
        for f in frames[:3]:  # warm-up
            backend.infer_uint8(f[None])
        bare, eng = [], []
        for r in range(args.rounds):
            bare.append(bare_fps(backend, frames))
            eng.append(engine_run(backend, spec, tmp / f"fps{r}.mp4")["fps"])
        result.update({
            "frames_per_round": n, "bare_fps": [round(v, 2) for v in bare], "engine_fps": [round(v, 2) for v in eng],
            "engine_over_bare": round(sum(eng) / sum(bare), 3),
        })
    else:
        samples = []
        spec = f"synthetic:{args.size}@25:{args.frames}"
        summary = engine_run(backend, spec, tmp / "long.mp4", progress=lambda st: samples.append((st["frames_out"], rss_mb())), interval=2.0)
        start = next((mb for n, mb in samples if n >= args.frames * 0.05), samples[0][1] if samples else float("nan"))
        result.update({
            "frames": summary["frames_out"], "engine_fps": summary["fps"], "wall_s": summary["wall_s"],
            "rss_mb_start": round(start, 1), "rss_mb_end": round(rss_mb(), 1), "rss_mb_peak": round(rss_mb("VmHWM"), 1),
            "rss_samples": [(n, round(mb, 1)) for n, mb in samples[:: max(1, len(samples) // 20)]],
            "latency_ms": summary["latency_ms"],
        })
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
