"""``python -m calibrate``: INT8 calibration on real NIR frames, and the reduced-precision error report.

    python -m calibrate --frames /data/vcip2020/train/nir --paired /data/vcip2020/train \\
        --sizes 256x256,640x480 --json calib.json

Calibrates the weights colorize uses: the bundled ones, or ``--weights FILE`` (a trained
checkpoint, which carries its own model); ``--random-init`` (with ``--model``) calibrates a
seeded random network instead, the one ``nirvision bench`` builds, for speed measurements only.
For each size: quantizes the ONNX model to int8 with ONNX Runtime (activations calibrated on
``--num`` frames from ``--frames``, a folder, glob or video) and stores it in the artefact
cache, where ``--precision int8`` finds it; then reports, for every reduced precision and each backend
that runs it (bf16: eager and OpenVINO; int8: ONNX Runtime and OpenVINO), PSNR
and AE against fp32 outputs, and against ground truth when ``--paired DIR`` (nir/ + rgb/)
is given (`--eval 0`: calibrate only, no report). Report frames are left out of calibration. Exit codes: 0 done, 2 bad input, 1 failure.
"""
from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from pathlib import Path

import torch

log = logging.getLogger("calibrate")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number, 0 or more, got {text!r}")
    return value


def check_json_path(text: str, inputs: list[str | None]) -> Path:
    """``--json``: a .json file that can be written and is none of the inputs, checked before any
    work (its folder is made at the end)."""
    from nirvision.io.specs import check_report_path

    return check_report_path(text, "--json", (".json",), inputs)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m calibrate", description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", help="calibration NIR frames: a folder, a glob or a video (default: PAIRED/nir)")
    p.add_argument("--paired", help="folder with nir/ and rgb/ of the same names: report against ground truth")
    p.add_argument("--model", default="lite", help="lite, paper or a YAML path: the model --random-init builds (the bundled weights "
                   "are lite; --weights files carry their own)")
    p.add_argument("--weights", help="checkpoint (default: the bundled weights, which colorize uses)")
    p.add_argument("--random-init", action="store_true", help="calibrate a randomly initialised --model (seeded as nirvision bench's): "
                   "for speed measurements only, colorize never uses it")
    p.add_argument("--sizes", default="256x256", help="comma-separated WIDTHxHEIGHT to calibrate for (one int8 model each)")
    p.add_argument("--num", type=positive_int, default=32, help="calibration frames (spread over the source)")
    p.add_argument("--eval", type=count, default=16, help="report frames (from --paired, else held out of --frames); "
                   "0: calibrate only, no report")
    p.add_argument("--method", default="minmax", choices=["minmax", "percentile", "entropy"], help="activation range calibration")
    p.add_argument("--precisions", help="reduced precisions to report (default: bf16,int8, and fp16 where CUDA is; fp16 asked for "
                   "on the CPU is estimated with PyTorch's CPU fp16 kernels, 30-40x slower than fp32)")
    p.add_argument("--skip-quantize", action="store_true", help="report only, using the int8 model already in the cache")
    p.add_argument("--cache", help="artefact cache folder (default: $NIRVISION_CACHE or ~/.cache/nirvision)")
    p.add_argument("--seed", type=int, default=0, help="seed of --random-init; bench uses the same")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, help="CPU threads for inference")
    p.add_argument("--json", help="write the report as JSON to this file")
    p.add_argument("-v", "--verbose", action="count", default=0)
    return p


def cell(value: float | None, spec: str) -> str:
    """``value`` formatted with ``spec`` (e.g. ``+9.3f``), or ``-`` right-aligned to the same
    width where there is no value (no ground truth, the reference's own row)."""
    if value is not None:
        return format(value, spec)
    width = re.match(r"[+\- ]?0?(\d*)", spec).group(1)
    return "-".rjust(int(width or 0))


def run(args) -> int:
    from nirvision.api import load_chain, set_threads
    from nirvision.errors import InputError
    from nirvision.runtime.backends import PRECISIONS, resolve_device
    from nirvision.runtime.cache import ArtefactCache

    from .frames import load_nir_frames, load_paired, parse_sizes
    from .quantize import quantize_int8
    from .report import precision_report

    # every option is checked before the model is built or a frame is read
    set_threads(args.threads)
    if not args.frames and not args.paired:
        raise InputError("give --frames (calibration NIR frames) or --paired (a folder with nir/ and rgb/)")
    if args.random_init and args.weights:
        raise InputError("give --weights or --random-init, not both")
    if args.model != "lite" and not (args.weights or args.random_init):
        raise InputError(f"--model {args.model}: the bundled weights are lite; expected --weights FILE for trained {args.model} weights, "
                         "or --random-init to calibrate a randomly initialised one (for speed measurements)")
    sizes = parse_sizes(args.sizes)
    on_cpu = resolve_device(args.device).type == "cpu"
    reduced = sorted(set(PRECISIONS) - {"fp32"})
    if args.precisions is None:
        precisions = ["bf16", "int8"] + ([] if on_cpu else ["fp16"])
    else:
        precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
        unknown = sorted(set(precisions) - set(PRECISIONS))
        if unknown:
            raise InputError(f"--precisions: {', '.join(unknown)}: expected some of {', '.join(reduced)}")
        if not set(precisions) - {"fp32"}:
            raise InputError(f"--precisions {args.precisions!r}: no reduced precision to report; expected some of {', '.join(reduced)}")
    quantize = "int8" in precisions and not args.skip_quantize
    if args.eval == 0 and not quantize:
        raise InputError("--eval 0 (no report) leaves nothing to do without int8 calibration: "
                         "drop --skip-quantize, or add int8 to --precisions, or give --eval 1 or more")
    json_path = check_json_path(args.json, [args.frames] + ([str(Path(args.paired) / d) for d in ('nir', 'rgb')] if args.paired else [])) \
        if args.json else None
    frames_src = args.frames or str(Path(args.paired) / "nir")

    def frames_for(size: tuple[int, int]):
        """(calibration frames or None, report frames or None, their ground truth or None) at ``size``."""
        truth, names, evals, calib = None, set(), None, None
        if args.paired and args.eval:  # nirvision.datasets pairing: an unpaired name or a pair of two sizes is an error
            evals, truth, stems = load_paired(args.paired, size, args.eval)
            names = set(stems)
        if quantize or not args.paired:  # without --paired the report frames are held out of --frames
            calib = load_nir_frames(frames_src, size, args.num + (0 if args.paired else args.eval), exclude=names)
        if not args.paired and args.eval:  # hold out every k-th frame for the report
            k = max(2, len(calib) // args.eval)
            evals, calib = calib[::k][: args.eval], calib[[i for i in range(len(calib)) if i % k]]
            if quantize and not len(calib):
                raise InputError(f"calibration frames {frames_src}: only {len(evals)} frame(s), all held out as report frames; "
                                 "give more frames or lower --eval")
        return calib, evals, truth

    first = frames_for(sizes[0][1])  # bad frames or pairs are found before the model is built
    if args.precisions is None and on_cpu:
        print("fp16: not reported on the CPU unless asked (--precisions fp16,...: estimated on PyTorch's CPU fp16 kernels, 30-40x slower than fp32)")

    torch.manual_seed(args.seed)  # a random-init model is the same one `nirvision bench --seed` builds
    chain, config, meta = load_chain(args.weights, args.model if args.random_init else None)
    net = chain.eval()
    if args.random_init:
        print(f"weights: random init of {config.name} (seed {args.seed}), for speed measurements only: colorize uses trained weights, "
              "for which this int8 model does not count (leave out --random-init to calibrate the bundled weights, or give --weights)")
    else:
        print(f"weights: {meta.get('weights')} (model {config.name})")
    cache = ArtefactCache(args.cache)
    report = []
    for i, (size_text, size) in enumerate(sizes):
        calib, evals, truth = first if i == 0 else frames_for(size)
        if quantize:
            print(f"{size_text}: calibrating int8 on {len(calib)} frames ({args.method}) ...", file=sys.stderr, flush=True)
            path = quantize_int8(net, calib, cache, method=args.method)
            print(f"{size_text}: int8 model calibrated on {len(calib)} frames -> {path}")
        if evals is None:
            print(f"{size_text}: no report (--eval 0)")
            continue
        print(f"{size_text}: running fp32 and {', '.join(p for p in precisions if p != 'fp32')} on {len(evals)} report frames ...",
              file=sys.stderr, flush=True)
        rows = precision_report(net, precisions, evals, truth, args.device, cache.root, cpu_fp16=True)
        print(f"\n{size_text}, {len(evals)} frames" + (" with ground truth" if truth is not None else ""))
        print(f"  {'precision':9s} {'backend':14s} {'PSNR vs fp32':>12s} {'AE vs fp32':>10s} {'PSNR gt':>8s} {'dPSNR gt':>9s} {'AE gt':>6s}")
        for r in rows:
            if r.skipped:
                print(f"  {r.precision:9s} {r.backend:14s} skipped: {r.skipped}")
                continue
            print(f"  {r.precision:9s} {r.backend:14s} {cell(r.psnr_vs_fp32, '12.2f')} {cell(r.ae_vs_fp32, '10.3f')} "
                  f"{cell(r.psnr_gt, '8.2f')} {cell(r.dpsnr_gt, '+9.3f')} {cell(r.ae_gt, '6.2f')}")
        report += [r.to_dict() for r in rows]
    if json_path is not None:
        meta = {"weights": None if args.random_init else meta.get("weights"), "random_init": args.random_init, "seed": args.seed if args.random_init else None,
                "model": config.name, "method": args.method, "calibration_frames": frames_src, "torch": torch.__version__}
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps({"meta": meta, "rows": report}, indent=2))
        print(f"\nreport written to {args.json}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING - 10 * min(args.verbose, 2), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    from nirvision.errors import usage_errors

    from .frames import FramesError

    try:
        return run(args)
    except (FramesError, ValueError, *usage_errors()) as exc:
        print(f"calibrate: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - the command's last line of defence
        print(f"calibrate: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
