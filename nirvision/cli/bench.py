"""``nirvision bench``: ms per frame and FPS of each backend and precision, and of the whole engine.

    nirvision bench --backends eager,compile,onnxruntime,openvino --precisions fp32,bf16,int8 \\
        --sizes 256x256,640x480 --model lite --frames DIR --json bench.json

On a machine other processes keep busy the times, and the ratios over eager most of all, are
not what it gives idle: the run warns (at the start and after the table) when the load average
leaves fewer cores than the bench uses, and the JSON records keep the load average and the CPU
time of each row.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import InputError


def _size(text: str, flag: str = "--sizes") -> tuple[int, int]:
    from ..io.synthetic import MAX_SIDE

    try:
        w, h = (int(v) for v in text.strip().lower().split("x"))
    except ValueError:
        raise InputError(f"{flag} {text!r}: not WIDTHxHEIGHT (e.g. 640x480)") from None
    if not (8 <= w <= MAX_SIDE and 8 <= h <= MAX_SIDE):
        raise InputError(f"{flag} {text}: width and height must lie in 8..{MAX_SIDE}")
    return w, h


def _list(text: str, allowed: tuple[str, ...], what: str) -> list[str]:
    items = list(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))  # each once, in order
    bad = [t for t in items if t not in allowed]
    if bad or not items:
        raise InputError(f"--{what}: {', '.join(bad) or 'nothing given'}; expected a comma-separated list of {', '.join(allowed)}")
    return items


def parse_sizes(text: str, flag: str = "--sizes") -> list[tuple[int, int]]:
    """Comma-separated WIDTHxHEIGHT, each once in order; at least one."""
    sizes = list(dict.fromkeys(_size(s.strip()) for s in text.split(",") if s.strip()))
    if not sizes:
        raise InputError(f"{flag} {text!r}: nothing given; expected comma-separated WIDTHxHEIGHT (e.g. 256x256,640x480)")
    return sizes


def _workers(text: str) -> list[int | str]:
    out: list[int | str] = []
    for t in (t.strip() for t in text.split(",")):
        if t == "auto" or (t.isdigit() and int(t) >= 1):
            out.append(t if t == "auto" else int(t))
        else:
            raise InputError(f"--workers: {t!r} is not a positive integer or auto (e.g. 1,2)")
    return out


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="time backends and the whole engine on the same frames")
    p.add_argument("--backends", default="eager,onnxruntime,openvino", help="comma-separated: auto, eager, compile, onnxruntime, openvino, "
                   "tensorrt (default: eager,onnxruntime,openvino; one that cannot run here is listed as skipped, with the reason)")
    p.add_argument("--precisions", default="fp32", help="comma-separated: fp32, fp16, bf16, int8 (int8 needs `python -m calibrate` first)")
    p.add_argument("--sizes", default="256x256,640x480", help="comma-separated WIDTHxHEIGHT")
    p.add_argument("--model", default="lite", help="lite, paper or a YAML path: lite times the bundled weights (as colorize and calibrate "
                   "use them) unless --random-init; paper and YAML models, which have no bundled weights, a seeded random init")
    p.add_argument("--weights", help="checkpoint to benchmark (PSNR on real frames needs trained weights to mean much)")
    p.add_argument("--random-init", action="store_true", help="time a seeded random --model even where weights are bundled "
                   "(the one `python -m calibrate --random-init` calibrates)")
    p.add_argument("--frames", help="folder of NIR images (resized to each size); default: a synthetic clip")
    p.add_argument("--count", type=int, default=20, help="timed frames per backend and size (the median column is over turns: one frame, "
                   "or 4 x the frames a row keeps in flight, 8 with 2 workers; '-' with fewer than 3)")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls first (export, compile, caches)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--threads", type=int, help="CPU threads (torch, ONNX Runtime and OpenVINO)")
    p.add_argument("--workers", default="1,auto", help="comma-separated worker counts (or auto) for backends that run frames side by side "
                   "(ONNX Runtime and OpenVINO on the CPU: each worker a session of threads/workers threads); others run with 1")
    p.add_argument("--cache", help="artefact cache folder (default: $NIRVISION_CACHE or ~/.cache/nirvision)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random init (--random-init, or a model without bundled weights); calibrate uses the same")
    p.add_argument("--engine-frames", type=int, default=40, help="frames the engine runs (the benchmark frames, cycled); fewer for slow models")
    p.add_argument("--engine-clip", default="pan", choices=("pan", "cuts"),
                   help="the engine's input clip: pan (default: each image a 10-frame shot with a slow pan, like recorded video) "
                   "or cuts (a new image every frame: the codecs' worst case)")
    p.add_argument("--preset", default="veryfast", help="x264 preset of the engine's H.264 output (default: veryfast, as colorize's); "
                   "on a CPU the encoder shares the cores with inference, and a faster preset leaves more to it")
    p.add_argument("--double-buffer", default="on", choices=("on", "off", "both"),
                   help="CUDA: time the frame pipeline with uploads overlapped (on), frame by frame (off), or both in the same run")
    p.add_argument("--no-engine", action="store_true", help="time bare backends only")
    p.add_argument("--json", help="write the records to this file")
    p.add_argument("--plot", metavar="PNG", help="draw the FPS of every row as bars, a group per size, into this image")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=run)


def _progress(text: str) -> None:
    print(f"nirvision bench: {text}", file=sys.stderr, flush=True)


def run(args) -> int:
    import torch

    from ..api import load_chain
    from ..runtime.backends import BACKEND_NAMES, PRECISIONS
    from ..io.video_sink import check_preset
    from ..runtime.backends.timing import MEDIAN_TURNS, TURN_DEPTHS, records_load_warning, run_bench

    backends = _list(args.backends, BACKEND_NAMES, "backends")
    precisions = _list(args.precisions, PRECISIONS, "precisions")
    sizes = parse_sizes(args.sizes)
    workers = _workers(args.workers)
    check_preset(args.preset)
    for flag, value, least in (("--count", args.count, 1), ("--engine-frames", args.engine_frames, 1), ("--warmup", args.warmup, 0)):
        if value < least:
            raise InputError(f"{flag} {value}: expected at least {least}")
    from ..io.specs import check_report_path

    if args.frames and not Path(args.frames).is_dir():
        raise InputError(f"--frames {args.frames}: expected a folder of NIR images")
    inputs = [args.frames]
    if args.plot:  # said now, not after minutes of timing
        check_report_path(args.plot, "--plot", (".png", ".jpg", ".jpeg"), inputs)
    if args.json:
        check_report_path(args.json, "--json", (".json",), inputs)
    from ..api import set_threads

    set_threads(args.threads)
    torch.manual_seed(args.seed)  # random init is reproducible: int8 models calibrated for it are found again
    if args.random_init and args.weights:
        raise InputError("give --weights or --random-init, not both")
    # the default (lite, no --weights) is the bundled weights, as colorize and calibrate take them:
    # an int8 model calibrated with `python -m calibrate` is then the one found here
    random_init = args.random_init or (not args.weights and args.model != "lite")
    net, config, meta = load_chain(args.weights, args.model if random_init else None)
    options = {"cache_dir": args.cache} if args.cache else {}
    records = run_bench(net.eval(), config.name, backends, precisions, sizes, args.count, args.frames, args.device,
                        engine=not args.no_engine, warmup=args.warmup, backend_options=options, engine_frames=args.engine_frames,
                        workers=workers, engine_clip=args.engine_clip,
                        double_buffer={"on": [True], "off": [False], "both": [True, False]}[args.double_buffer], engine_preset=args.preset,
                        progress=None if args.quiet else _progress)
    weights = meta.get("weights") or "random init"
    print(f"model {config.name} ({weights}), {torch.get_num_threads()} threads, {args.count} frames per row, frames: {records[0].frames_source if records else '-'}")
    if records:
        print(f"fp32 matrix multiply here (torch.mm 1024x1024, {records[0].threads} threads, {records[0].device}): {records[0].matmul_gflops:.0f} GFLOP/s, "
              "what dense fp32 kernels approach; GFLOP/s below: the chain's multiply-adds x 2 per frame x FPS")
    names = [r.backend if r.skipped else r.backend + (f" x{r.workers} workers" if r.workers > 1 else "") + (" (no 2-buf)" if r.double_buffer is False else "")
             for r in records]
    width = max([26] + [len(n) for n in names])  # engine[onnxruntime] x2 workers is 30
    print(f"{'size':>9s}  {'backend':{width}s} {'prec':5s} {'ms/frame':>9s} {'median':>7s} {'FPS':>7s} {'x eager':>7s} {'GFLOP/s':>7s} {'PSNR/fp32':>9s} {'AE/fp32':>7s} {'eng/bare':>8s}")
    fmt = lambda v, spec: format(v, spec) if v is not None else format("-", ">" + spec.split(".")[0])  # noqa: E731
    for r, name in zip(records, names):
        if r.skipped:
            print(f"{r.size:>9s}  {name:{width}s} {r.precision:5s} skipped: {r.skipped}")
            continue
        print(f"{r.size:>9s}  {name:{width}s} {r.precision:5s} {fmt(r.ms_per_frame, '9.1f')} {fmt(r.ms_median, '7.1f')} {fmt(r.fps, '7.1f')} {fmt(r.speedup_vs_eager_fp32, '7.2f')} {fmt(r.gflops, '7.1f')} "
              f"{fmt(r.psnr_vs_fp32, '9.2f')} {fmt(r.ae_vs_fp32, '7.3f')} {fmt(r.engine_over_bare, '8.2f')}")
    if any(r.turns is not None and r.ms_median is None for r in records):
        print(f"median: over the turns the rows take (one frame each, or {TURN_DEPTHS} x the frames in flight); '-' with fewer than {MEDIAN_TURNS} turns "
              "(more --count)")
    encoders = sorted({r.encoder for r in records if r.encoder})
    if encoders:
        print(f"engine rows: H.264 clip in, {', '.join(encoders)} out")
    busy = records_load_warning(records)
    if busy:  # also with --quiet: the numbers above are not what this machine gives idle
        print(f"nirvision bench: warning: {busy}", file=sys.stderr)
    if args.json:
        try:
            Path(args.json).write_text(json.dumps([r.to_dict() for r in records], indent=2))
        except OSError as exc:
            raise InputError(f"--json {args.json}: cannot be written ({exc.strerror or exc})") from None
        print(f"records written to {args.json}")
    if args.plot:
        from ..visual import save_bench_chart

        threads = records[0].threads if records else torch.get_num_threads()
        save_bench_chart(args.plot, records, title=f"nirvision bench: {config.name} ({weights}), FPS on {records[0].device if records else 'cpu'}, {threads} threads")
        print(f"chart written to {args.plot}")
    return 0
