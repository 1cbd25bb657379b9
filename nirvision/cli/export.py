"""``nirvision export``: build compiled artefacts (ONNX files, TensorRT engines) ahead of time.

    nirvision export --backend onnxruntime --sizes 640x480 --weights W
    nirvision export --backend openvino --sizes 640x480,1920x1080
    nirvision export --backend tensorrt --precision fp16 --sizes 1920x1080 --device cuda

Artefacts go to the cache (``$NIRVISION_CACHE`` or ``~/.cache/nirvision``), keyed so that the
engine finds them for the same weights, input size, precision, library versions and GPU.
Each size's line names the file and says whether it was there already (``cached``) or built
now; ``nirvision cache`` lists and clears the cache. int8 models come from
``python -m calibrate``, which needs calibration frames.
"""
from __future__ import annotations

import sys
import time

from ..errors import InputError

EXPORTABLE = ("onnxruntime", "openvino", "tensorrt", "compile")


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="build ONNX files / TensorRT engines for given sizes ahead of time")
    p.add_argument("--backend", default="onnxruntime", choices=EXPORTABLE, help="whose artefacts to build")
    p.add_argument("--precision", default="auto", help="auto (default: as colorize: fp16 on CUDA, bf16 for openvino on a CPU with "
                   "native bf16, else fp32), fp32, bf16 (openvino), fp16 (CUDA), int8 (checks the calibrated model is there)")
    p.add_argument("--sizes", required=True, help="comma-separated WIDTHxHEIGHT of the frames to be colorized")
    p.add_argument("--batch", type=int, default=1, help="frames per inference call (the engine uses 1)")
    p.add_argument("--model", default="lite", help="lite, paper or a YAML path: the model --random-init builds (the bundled weights are lite; --weights files carry their own)")
    p.add_argument("--weights", help="checkpoint (default: the bundled weights)")
    p.add_argument("--random-init", action="store_true", help="export a randomly initialised --model (for benchmarks)")
    p.add_argument("--device", default="auto")
    p.add_argument("--cache", help="artefact cache folder")
    p.set_defaults(func=run)


MAX_BATCH = 64


def run(args) -> int:
    from ..api import load_chain
    from ..runtime.backends import create_backend
    from .bench import parse_sizes

    sizes = parse_sizes(args.sizes)
    if not 1 <= args.batch <= MAX_BATCH:
        raise InputError(f"--batch {args.batch}: expected 1 to {MAX_BATCH} frames per call (the engine uses 1)")
    if args.random_init and args.weights:
        raise InputError("give --weights or --random-init, not both")
    if args.model != "lite" and not (args.weights or args.random_init):
        raise InputError(f"--model {args.model}: the bundled weights are lite; expected --weights FILE for trained {args.model} weights, "
                         "or --random-init to export a randomly initialised one (for benchmarks)")
    net, config, meta = load_chain(args.weights, args.model if args.random_init else None)
    options = {"cache_dir": args.cache} if args.cache and args.backend != "compile" else {}
    backend = create_backend(args.backend, net.eval(), args.device, args.precision, **options)
    cache = getattr(backend, "cache", None)  # the artefact cache of backends that keep files (not compile's)
    for w, h in sizes:
        shape = (args.batch, 1, h, w)
        start = time.perf_counter()
        name = f"{args.backend} {backend.precision} {w}x{h} (batch {args.batch})"
        print(f"{name}: building...", file=sys.stderr, flush=True)
        seen = len(cache.history) if cache is not None else 0
        backend.prepare(shape)
        took = time.perf_counter() - start
        used = cache.history[seen:] if cache is not None else []
        if not used:
            print(f"{name}: ready in {took:.1f} s")
        for use in dict((u.path, u) for u in used).values():  # each file once, as it ended (a rebuilt entry: built)
            print(f"{name}: {use.path.absolute()} " + (f"(built in {use.seconds:.1f} s)" if use.built else "(cached)"))
    if args.backend == "compile":
        print("note: torch.compile keeps its kernels in inductor's own cache; the compiled graph lives in this process only")
    if args.backend == "openvino":
        print("note: the ONNX files are cached; OpenVINO compiles them again in about a second when a run starts")
    backend.close()
    return 0
