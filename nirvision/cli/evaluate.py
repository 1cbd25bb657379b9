"""``nirvision evaluate --weights W --data DIR``: PSNR, SSIM, AE (and LPIPS where weights are given).

DIR holds ``nir/NAME.png`` and ``rgb/NAME.png``. Metrics follow the VCIP 2020 challenge
(see ``nirvision.metrics``); per image and mean, as a table, JSON and a sample grid.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np

from ..errors import InputError


def add_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="score a checkpoint on paired NIR/RGB images")
    p.add_argument("--weights", help="checkpoint (default: the bundled weights)")
    p.add_argument("--model", help="model config for --weights if it must be overridden (lite, paper, YAML)")
    p.add_argument("--data", required=True, help="folder with nir/ and rgb/ subfolders of same-named images")
    p.add_argument("--split", choices=("all", "val"), default="all",
                   help="score every pair, or only the validation split that training holds out (seed 0, 8%%, "
                        "crops of one photograph on one side)")
    p.add_argument("--backend", default="eager", help="backend to score, as colorize's --backend (default eager): a reduced precision or "
                                                       "another backend scored on the same pairs")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: CUDA where available)")
    p.add_argument("--precision", default="fp32", help="fp32 (default), bf16, fp16 or int8, as colorize's --precision")
    p.add_argument("--levels", default="auto", metavar="auto|stretch|off", help="NIR levels, as colorize's --levels (default auto)")
    p.add_argument("--infer-scale", default="1", metavar="S", help="run the model at S times each image's size, as colorize's --infer-scale (default 1)")
    p.add_argument("--flip-average", action="store_true", help="average each image's colours with its mirror image's, as colorize's --flip-average")
    p.add_argument("--json", type=Path, help="write per-image and mean metrics here")
    p.add_argument("--grid", type=Path, default=Path("evaluation-samples.png"), help="sample grid image, NIR | prediction | truth (default: evaluation-samples.png in the working folder; --grid-count 0 for none)")
    p.add_argument("--grid-count", type=int, default=6, help="rows of the sample grid (0: no grid)")
    p.add_argument("--lpips-alexnet", type=Path, help="torchvision AlexNet weights (state dict) for LPIPS")
    p.add_argument("--lpips-lin", type=Path, help="LPIPS v0.1 linear-layer weights for AlexNet (alex.pth)")
    p.set_defaults(func=run)


GRID_SUFFIXES = (".png", ".jpg", ".jpeg")
SSIM_MIN = 7  # SSIM's 7x7 window (nirvision.metrics)


def _finite(obj):
    """JSON has no infinity: PSNR of identical images becomes null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def run(args) -> int:
    from ..api import Colorizer
    from ..datasets import load_paired, validation_split
    from ..metrics import evaluate_pairs, mean_metrics
    from ..visual import save_grid

    from .colorize import check_levels, infer_scale

    if bool(args.lpips_alexnet) != bool(args.lpips_lin):
        raise InputError("LPIPS needs both --lpips-alexnet and --lpips-lin")
    scale = infer_scale(args)
    check_levels(args.levels)
    _check_outputs(args)  # before minutes of colorizing
    scorer = None
    if args.lpips_alexnet:
        from ..lpips import LPIPS

        scorer = LPIPS.load(args.lpips_alexnet, args.lpips_lin)
    data = load_paired(args.data)
    if args.split == "val":
        _, val = validation_split(data)
        data = data.subset(val)
    small = [(n, x.shape) for n, x in zip(data.names, data.nir) if min(x.shape[:2]) < SSIM_MIN]
    if small:
        name, (h, w) = small[0][0], small[0][1][:2]
        raise InputError(f"{args.data}: pair {name!r} is {w}x{h}{f' (and {len(small) - 1} more)' if len(small) > 1 else ''}; "
                         f"expected at least {SSIM_MIN}x{SSIM_MIN} pixels (SSIM's window)")
    colorizer = Colorizer.load(args.weights, device=args.device, precision=args.precision, backend=args.backend, model=args.model,
                                infer_scale=scale, levels=args.levels, flip_average=args.flip_average)
    preds = []
    for i, nir in enumerate(data.nir):
        preds.append(colorizer(nir))
        print(f"\rcolorizing {i + 1}/{len(data)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    per = evaluate_pairs(preds, data.rgb)
    lpips_note = "LPIPS skipped: it needs AlexNet weights (give --lpips-alexnet and --lpips-lin)"
    if scorer is not None:
        per["lpips"] = [scorer.distance(p, t) for p, t in zip(preds, data.rgb)]
        lpips_note = ""
    means = mean_metrics(per)
    floor = mean_metrics(evaluate_pairs([np.repeat(n[..., None], 3, axis=2) for n in data.nir], data.rgb))
    keys = list(per)
    print(f"{'image':24s} " + " ".join(f"{k.upper():>8s}" for k in keys))
    for i, name in enumerate(data.names):
        print(f"{name:24s} " + " ".join(f"{per[k][i]:8.4f}" for k in keys))
    print(f"{'mean':24s} " + " ".join(f"{means[k]:8.4f}" for k in keys))
    print(f"{'floor: NIR as gray':24s} " + " ".join(f"{floor.get(k, math.nan):8.4f}" for k in keys))
    if lpips_note:
        print(lpips_note)
    if args.json:  # the figures first: they are what a failed picture must not cost
        report = {
            "weights": colorizer.meta.get("weights"), "data": str(args.data), "split": args.split, "count": len(data), "infer_scale": scale, "levels": args.levels, "flip_average": args.flip_average,
            "mean": means, "floor_nir_as_gray": floor, "lpips": None if lpips_note else "AlexNet",
            "per_image": [{"name": name, **{k: per[k][i] for k in keys}} for i, name in enumerate(data.names)],
        }
        try:
            args.json.write_text(json.dumps(_finite(report), indent=1))
        except OSError as exc:
            raise InputError(f"--json {args.json}: cannot be written ({exc.strerror or exc})") from None
        print(f"metrics: {args.json}")
    n = min(args.grid_count, len(data))
    if n:
        grid = save_grid(args.grid, [[np.repeat(x[..., None], 3, 2) for x in data.nir[:n]], preds[:n], data.rgb[:n]], ["NIR", "prediction", "RGB truth"])
        print(f"sample grid: {grid}")
    return 0


def _check_outputs(args) -> None:
    """--grid / --json / --grid-count that could only fail after the colorizing, refused now."""
    from ..io.specs import check_report_path

    if args.grid_count < 0:
        raise InputError(f"--grid-count {args.grid_count}: expected 0 (no grid) or more rows")
    inputs = [Path(args.data) / "nir", Path(args.data) / "rgb"]
    if args.grid_count:
        check_report_path(args.grid, "--grid", GRID_SUFFIXES, inputs)
    if args.json:
        check_report_path(args.json, "--json", (".json",), inputs)
