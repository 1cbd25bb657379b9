"""``nirvision evaluate --weights W --data DIR``: PSNR, SSIM, AE (and LPIPS where weights are given).

DIR holds ``nir/NAME.png`` and ``rgb/NAME.png``. Metrics follow the VCIP 2020 challenge
(see ``nirvision.metrics``); per image and mean, as a table, JSON and a sample grid. ``--names``
and ``--limit`` score a subset (only those pairs are read); the JSON records which pairs, and
the backend, precision and device that scored them.
"""
from __future__ import annotations

import difflib
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
                   help="all (the default): every pair, those a model trained on this folder learnt from included; val: only "
                        "the validation pairs the weights' training held out, as the weights record them (else the default split: "
                        "seed 0, 8%%, crops of one photograph on one side); it says which")
    p.add_argument("--names", metavar="NAME,...", help="score only these pairs: comma-separated names without suffix (field_0012,forest_0003)")
    p.add_argument("--limit", type=int, metavar="N", help="score N pairs (of the split / --names) spread over the categories (the name before "
                   "its number) and over each category's names, the same N every run: a quick check; the JSON lists them")
    p.add_argument("--backend", default="eager", help="backend to score, as colorize's --backend (default eager): a reduced precision or "
                                                       "another backend scored on the same pairs")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: CUDA where available)")
    p.add_argument("--precision", default="fp32", help="fp32 (default), bf16, fp16 or int8, as colorize's --precision")
    p.add_argument("--input-bits", default="auto", metavar="auto|10|12|14|16",
                   help="bits that hold the picture in 16-bit NIR images, as colorize's --input-bits: auto (default) reads all "
                        "of them at the fewest of 10, 12, 14, 16 bits that hold the largest value of the pairs read")
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


def _spread(items: list, n: int) -> list:
    """``n`` items evenly spaced over ``items`` (all where there are no more), the first one first."""
    if len(items) <= n:
        return list(items)
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def spread_over_categories(names: list[str], n: int) -> list[str]:
    """``n`` of ``names`` spread over their categories (``nirvision.datasets.category``: forest_0012
    -> forest) in proportion to each category's size, every category at least once where ``n``
    allows, and evenly over each category's names (sorted, so one photograph's crops are not all
    taken); in the order of ``names``. Deterministic: the same ``n`` takes the same pairs."""
    from ..datasets import category

    if n >= len(names):
        return list(names)
    groups: dict[str, list[str]] = {}
    for name in sorted(names):
        groups.setdefault(category(name), []).append(name)
    cats = sorted(groups)
    if n < len(cats):  # fewer pairs than categories: one from each of n categories spread over them
        quota = {c: 1 for c in _spread(cats, n)}
    else:  # one each, the rest in proportion to size (largest remainders; ties by name)
        quota = {c: 1 for c in cats}
        rest = n - len(cats)
        share = {c: rest * (len(groups[c]) - 1) / max(1, len(names) - len(cats)) for c in cats}
        for c in cats:
            quota[c] += int(share[c])
        for c in sorted(cats, key=lambda c: (-(share[c] - int(share[c])), c))[: n - sum(quota.values())]:
            quota[c] += 1
    taken = {name for c, k in quota.items() for name in _spread(groups[c], k)}
    return [name for name in names if name in taken]


def parse_names(text: str) -> list[str]:
    """``--names``: comma-separated pair names (an image suffix given is dropped), each once, in the order given."""
    from ..datasets import IMAGE_EXTS

    names = []
    for part in text.split(","):
        part = part.strip()
        if Path(part).suffix.lower() in IMAGE_EXTS:
            part = Path(part).stem
        if part and part not in names:
            names.append(part)
    if not names:
        raise InputError(f"--names {text!r}: expected comma-separated pair names without suffix, e.g. field_0012,forest_0003")
    return names


SPLIT_DEFAULTS = {"seed": 0, "val_fraction": 0.08, "photo_group": 1, "split_by_content": True}  # validation_split's, training's defaults


def recorded_split(args) -> dict | None:
    """The validation split the weights record (``meta.split``: training writes its val_names and
    settings into the stage outputs and the exported weights), or None. Read before the pairs,
    to pick them; a file that cannot be read is said by ``Colorizer.load`` later."""
    from ..models.checkpoint import read_checkpoint
    from ..resources import default_weights_path

    if args.weights is None and args.model is not None:  # a random init records nothing
        return None
    try:
        meta = read_checkpoint(args.weights or default_weights_path()).get("meta")
    except (ValueError, OSError):  # CheckpointError: said when the weights load
        return None
    split = meta.get("split") if isinstance(meta, dict) else None
    return split if isinstance(split, dict) else None


def _split_settings(recorded: dict | None) -> dict | None:
    """The split settings ``recorded`` holds (seed, val_fraction, photo_group, split_by_content), or None."""
    if not recorded or not any(k in recorded for k in SPLIT_DEFAULTS):
        return None
    out = dict(SPLIT_DEFAULTS)
    for k, default in SPLIT_DEFAULTS.items():
        v = recorded.get(k, default)
        if type(v) is type(default) or (isinstance(default, float) and type(v) is int):
            out[k] = v
    return out


def _describe(settings: dict) -> str:
    return (f"seed {settings['seed']}, {settings['val_fraction']:.0%}"
            + (", crops of one photograph on one side" if settings["split_by_content"] else "")
            + (f", groups of {settings['photo_group']} consecutive names" if settings["photo_group"] > 1 else ""))


def validation_pairs(data, recorded: dict | None, where: str) -> tuple[list[str], str, str]:
    """``--split val``: the validation names of ``data``, where they come from ("weights", "weights'
    settings" or "default") and a line saying so. The names the weights record where any are in
    ``data`` (the split their training held out: another seed or fraction gives other names, and
    the default split would score pairs the model learnt from), else the split by the settings
    they record, else the default split."""
    from ..datasets import validation_split

    names = recorded.get("val_names") if recorded else None
    settings = _split_settings(recorded)
    missing_note = ""
    if isinstance(names, list) and names and all(isinstance(n, str) for n in names):
        wanted = set(names)
        present = [n for n in data.names if n in wanted]
        if present:
            gone = len(wanted) - len(present)
            how = f" ({_describe(settings)})" if settings else ""
            return present, "weights", (f"--split val: the {len(present)} validation pairs the weights record, which their training held out{how}"
                                        + (f"; {gone} of the {len(wanted)} recorded are not in {where}" if gone else ""))
        missing_note = f"none of the {len(wanted)} validation names the weights record is in {where}; "
    if settings:
        _, val = validation_split(data, settings["val_fraction"], settings["seed"], settings["photo_group"], settings["split_by_content"])
        return val, "weights' settings", f"--split val: {missing_note}the split by the settings the weights record ({_describe(settings)})"
    _, val = validation_split(data)
    return val, "default", (f"--split val: {missing_note}the weights record no validation split; the default split ({_describe(SPLIT_DEFAULTS)}), "
                            "which is the one their training held out only if it ran with those data settings (data.split_seed, "
                            "val_fraction, photo_group, split_by_content)")


def _pair_names(root: Path) -> list[str] | None:
    """The names of DIR's pairs from the file names alone (no image read); None where DIR is not
    two folders (``load_paired`` then says what is wrong)."""
    from ..datasets import IMAGE_EXTS

    nir, rgb = root / "nir", root / "rgb"
    if not (nir.is_dir() and rgb.is_dir()):
        return None

    def stems(d: Path) -> set[str]:
        return {q.stem for q in d.iterdir() if q.suffix.lower() in IMAGE_EXTS}

    return sorted(stems(nir) & stems(rgb))


def select_pairs(pool: list[str], names: list[str] | None, limit: int | None, where: str, outside: set[str] = frozenset()) -> list[str]:
    """The pairs ``--names`` and ``--limit`` take of ``pool`` (the split's names); an unknown
    name is an InputError naming it and a few close matches (or, for a name in ``outside``, the
    pairs of the folder the split left out, saying so)."""
    chosen = list(pool)
    if names is not None:
        have = set(pool)
        unknown = [n for n in names if n not in have]
        if unknown:
            close = difflib.get_close_matches(unknown[0], pool, n=4, cutoff=0.5)
            more = f" (and {len(unknown) - 1} more: {', '.join(unknown[1:4])}{', ...' if len(unknown) > 4 else ''})" if len(unknown) > 1 else ""
            hint = f"close matches: {', '.join(close)}" if close else f"names there look like {', '.join(_spread(pool, 3))}"
            if unknown[0] in outside:
                hint = f"it is a training pair, outside the validation split (without --split val every pair can be named); {hint}"
            raise InputError(f"--names: no pair named {unknown[0]!r} in {where}{more}; {hint}")
        chosen = list(names)
    if limit is not None:
        chosen = spread_over_categories(chosen, limit)
    return chosen


class _Progress:
    """``colorizing i/N`` on stderr: one line rewritten in a terminal; in a log (not a terminal)
    plain lines at about every tenth of the pairs, not carriage returns run together."""

    def __init__(self, total: int, stream=None):
        self.total, self.stream = total, stream or sys.stderr
        self.tty = self.stream.isatty()
        self.every = max(1, math.ceil(total / 10))

    def __call__(self, done: int) -> None:
        if self.tty:
            self.stream.write(f"\rcolorizing {done}/{self.total}")
        elif done % self.every == 0 or done == self.total:
            self.stream.write(f"colorizing {done}/{self.total}\n")
        else:
            return
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _label_tile(shape: tuple[int, int], lines: list[str]) -> np.ndarray:
    """A white H x W x 3 tile with ``lines`` of text fitted to its width (a grid row's label)."""
    import cv2

    h, w = shape
    tile = np.full((h, w, 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    widest = max(lines, key=len)
    scale = 0.5
    while scale > 0.3 and cv2.getTextSize(widest, font, scale, 1)[0][0] > w - 6:
        scale -= 0.05
    step = cv2.getTextSize("Ag", font, scale, 1)[0][1] + 6
    for i, line in enumerate(lines):
        while len(line) > 1 and cv2.getTextSize(line, font, scale, 1)[0][0] > w - 6:  # still too wide: cut, marked with ~
            line = line[:-2] + "~"
        y = 4 + step * (i + 1)
        if y < h:
            cv2.putText(tile, line, (3, y), font, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return tile


def run(args) -> int:
    from ..api import Colorizer
    from ..datasets import load_paired
    from ..metrics import evaluate_pairs, mean_metrics
    from ..visual import save_grid

    from ..runtime.frames import check_input_bits
    from .colorize import announce_backend, check_levels, infer_scale, note_random_weights

    if bool(args.lpips_alexnet) != bool(args.lpips_lin):
        raise InputError("LPIPS needs both --lpips-alexnet and --lpips-lin")
    scale = infer_scale(args)
    check_levels(args.levels)
    input_bits = check_input_bits(args.input_bits, "--input-bits")
    limit = args.limit
    if limit is not None and limit < 1:
        raise InputError(f"--limit {limit}: expected 1 or more pairs to score")
    names = parse_names(args.names) if args.names else None
    _check_outputs(args)  # before minutes of colorizing
    scorer = None
    if args.lpips_alexnet:
        from ..lpips import LPIPS

        scorer = LPIPS.load(args.lpips_alexnet, args.lpips_lin)
    subset, split_from = None, None
    pool = _pair_names(Path(args.data)) if args.split == "all" and (names or limit) else None
    if pool is not None:  # only the pairs taken are read (the listing is still checked for unpaired images)
        chosen = select_pairs(pool, names, limit, str(args.data))
        data = load_paired(args.data, names=chosen, input_bits=input_bits)
    else:
        data = load_paired(args.data, input_bits=input_bits)
        everything = list(data.names)
        if args.split == "val":
            val, split_from, note = validation_pairs(data, recorded_split(args), str(args.data))
            print(f"nirvision evaluate: {note}", file=sys.stderr)
            data = data.subset(val)
        pool = list(data.names)
        if names or limit:
            where = f"the validation split of {args.data}" if args.split == "val" else str(args.data)
            data = data.subset(select_pairs(pool, names, limit, where, set(everything) - set(pool)))
    if names or limit:
        subset = {"names": names, "limit": limit, "of": len(pool), "taken": list(data.names)}
        how = ", ".join(x for x in (f"--names ({len(names)})" if names else "", f"--limit {limit}, spread over the categories" if limit else "") if x)
        print(f"nirvision evaluate: scoring {len(data)} of {len(pool)} pairs ({how})", file=sys.stderr)
    if args.split == "all":
        print("nirvision evaluate: --split all: pairs a model trained on this folder has learnt from count too "
              "(--split val for the ones training holds out)", file=sys.stderr)
    small = [(n, x.shape) for n, x in zip(data.names, data.nir) if min(x.shape[:2]) < SSIM_MIN]
    if small:
        name, (h, w) = small[0][0], small[0][1][:2]
        raise InputError(f"{args.data}: pair {name!r} is {w}x{h}{f' (and {len(small) - 1} more)' if len(small) > 1 else ''}; "
                         f"expected at least {SSIM_MIN}x{SSIM_MIN} pixels (SSIM's window)")
    colorizer = Colorizer.load(args.weights, device=args.device, precision=args.precision, backend=args.backend, model=args.model,
                                infer_scale=scale, levels=args.levels, flip_average=args.flip_average)
    backend = colorizer.backend
    note_random_weights(args, colorizer.config, colorizer.meta)
    scored_by = {"backend": backend.name, "precision": backend.precision, "device": str(backend.device), "workers": int(getattr(backend, "workers", 1))}
    if not getattr(backend, "chosen_because", None):  # auto says what it chose and why (announce_backend); else the same facts
        print(f"nirvision evaluate: backend {backend.name} ({backend.precision} on {backend.device})", file=sys.stderr)
    announce_backend(args, backend)
    preds = []
    progress = _Progress(len(data))
    for i, nir in enumerate(data.nir):
        preds.append(colorizer(nir))
        progress(i + 1)
    progress.close()
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
            "weights": colorizer.meta.get("weights"), "data": str(args.data), "split": args.split, "split_from": split_from, "subset": subset, "count": len(data),
            **scored_by, "infer_scale": scale, "levels": args.levels, "input_bits": input_bits or "auto", "flip_average": args.flip_average,
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
        shape = data.nir[0].shape[:2]  # the grid's tile size (save_grid fits other sizes to it)
        labels = [_label_tile(shape, [name, f"PSNR {per['psnr'][i]:.2f} dB", f"SSIM {per['ssim'][i]:.3f}"]) for i, name in enumerate(data.names[:n])]
        grid = save_grid(args.grid, [labels, [np.repeat(x[..., None], 3, 2) for x in data.nir[:n]], preds[:n], data.rgb[:n]],
                         ["image", "NIR", "prediction", "RGB truth"])
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
