"""The finished chain as a small inference checkpoint with a model card."""
from __future__ import annotations

import json
import platform
import os
from pathlib import Path

from nirvision.errors import InputError
from nirvision.models.checkpoint import read_checkpoint, save_checkpoint
from nirvision.models.registry import parse_model_config

from .config import STAGES, TrainConfig


def export_weights(cfg: TrainConfig, config_path: str, out: Path, floor: dict, data_info: dict, levels: dict | None = None) -> Path:
    """Write ``out`` (nir_to_gray + colorizer of the finetune output) and ``out``.md; ``levels``:
    the training images' NIR levels (``LevelsBand.to_dict``), which ``--levels`` brings frames to."""
    out = Path(out)
    if out.suffix.lower() == ".md":  # the card would overwrite the weights
        raise InputError(f"export {out}: the model card is written next to the weights with the suffix .md; "
                         "expected a weights file name not ending in .md (e.g. weights.pt)")
    run = cfg.run_dir()
    payload = read_checkpoint(run / "finetune" / "output.pt")
    model = parse_model_config(payload["model_config"])
    histories = {s: json.loads((run / s / "history.json").read_text()) if (run / s / "history.json").is_file() else [] for s in STAGES}
    seconds = {s: sum(r.get("seconds", 0.0) for r in h) for s, h in histories.items()}
    out_meta = payload.get("meta", {})
    metas = {s: out_meta if s == "finetune" else _meta(run / s / "output.pt") for s in STAGES}
    walls = {s: metas[s].get("wall_seconds") for s in STAGES}
    val = out_meta.get("val") or (histories["finetune"][-1]["val"] if histories["finetune"] else {})
    meta = {
        "trained_by": "nirvision train (python -m train)",
        "train_config": config_path,
        "data": cfg.data.root,
        "split": data_info,
        "epochs": {s: cfg.stage(s).epochs for s in STAGES},
        "train_seconds": seconds,  # the training steps alone
        "wall_seconds": walls if all(isinstance(v, (int, float)) for v in walls.values()) else None,  # each stage in all
        "machine": f"{platform.machine()}, {os.cpu_count()} logical cores, {platform.processor() or 'cpu'}",
        "val": val,
        "finetune_epoch": int(out_meta.get("epoch") or cfg.finetune.epochs),  # the epoch these weights are from
        "last_val": out_meta.get("last_val") or val,
        "floor_nir_as_gray": floor,
        "ema": out_meta.get("ema"),  # {"decay", "updates"} where the weights are the finetune's moving average
        "finetune_quarters": quarters(histories["finetune"]),
    }
    if levels:
        meta["nir_levels"] = levels
    nets = {r: payload["networks"][r] for r in ("nir_to_gray", "colorizer")}
    save_checkpoint(out, model, nets, meta)
    card = out.with_suffix(".md")
    card.write_text(model_card(cfg, config_path, meta, out.name))
    return out


def _meta(path: Path) -> dict:
    """A stage output's meta (empty where the file is gone or unreadable: its times are then not known)."""
    try:
        meta = read_checkpoint(path).get("meta")
    except (ValueError, OSError):
        return {}
    return meta if isinstance(meta, dict) else {}


def _time_line(meta: dict) -> str:
    """The card's time line: each stage's wall time (validation, pictures and checkpoints included)
    where the outputs record it, else, said so, the training steps' alone (older outputs)."""
    steps = meta["train_seconds"]
    walls = meta.get("wall_seconds")
    if walls:
        took = ", ".join(f"{s} {duration(walls[s])}" for s in STAGES)
        return (f"- Wall time: {duration(sum(walls.values()))} in all ({took}; each stage's training, validation, sample pictures "
                f"and checkpoints, over its resumed runs; not the data loading before the stages, nor epochs an interruption cut short), "
                f"of which the training steps {duration(sum(steps.values()))}, on {meta['machine']}.")
    took = ", ".join(f"{s} {duration(steps[s])}" for s in STAGES)
    return (f"- Training-step time (validation, sample pictures and checkpoints not counted): {duration(sum(steps.values()))} in all "
            f"({took}) on {meta['machine']}.")


def quarters(history: list[dict]) -> list[dict]:
    """Validation PSNR over the finetune in four spans of epochs: mean, min and max of the weights
    handed on (``val``) and, with ema, of the live weights (``val_live``)."""
    out = []
    n = len(history)
    for q in range(4):
        span = history[q * n // 4: (q + 1) * n // 4]
        if not span:
            continue
        row = {"first": span[0]["epoch"], "last": span[-1]["epoch"]}
        for key in ("val", "val_live"):
            values = [r[key]["psnr"] for r in span if key in r]
            if values:
                row[key] = {"mean": sum(values) / len(values), "min": min(values), "max": max(values)}
        out.append(row)
    return out


def _quarter_lines(rows: list[dict], ema: bool) -> list[str]:
    if not rows:
        return []
    label = "mean (min-max) of the averaged weights, then of the live ones" if ema else "mean (min-max)"
    lines = ["", f"Validation PSNR over the finetune, per quarter of its epochs, {label}:", ""]
    for r in rows:
        v = r.get("val", {})
        text = f"- epochs {r['first']}-{r['last']}: {v.get('mean', float('nan')):.2f} dB ({v.get('min', float('nan')):.2f}-{v.get('max', float('nan')):.2f})"
        if ema and "val_live" in r:
            lv = r["val_live"]
            text += f"; live {lv['mean']:.2f} dB ({lv['min']:.2f}-{lv['max']:.2f})"
        lines.append(text)
    return lines


def duration(seconds: float) -> str:
    """A wall time as people read it: seconds below a minute (a short stage is not "0.0 min"),
    minutes below an hour, hours above."""
    if seconds < 59.5:  # up to "59 s"; from there "1.0 min"
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def model_card(cfg: TrainConfig, config_path: str, meta: dict, filename: str) -> str:
    val, floor = meta["val"], meta["floor_nir_as_gray"]
    lines = [
        f"# {filename}: MPFNet `{cfg.model}` trained by nirvision",
        "",
        f"- Config: `{config_path}` (model `{cfg.model}`), seed {cfg.seed}.",
        f"- Data: the VCIP 2020 NIR-to-RGB training pairs at `{cfg.data.root}` (research and education use only); "
        f"{meta['split']['train']} training pairs, {meta['split']['val']} validation pairs split per category "
        f"(seed {cfg.data.split_seed}, {cfg.data.val_fraction:.0%} target; "
        + ("crops of one photograph, found by their content, kept on one side" if cfg.data.split_by_content else "not checked for overlapping crops")
        + (f"; groups of {cfg.data.photo_group} consecutive names" if cfg.data.photo_group > 1 else "") + ").",
        f"- Validation names: {', '.join(meta['split']['val_names'])}.",
        f"- Epochs: translate {meta['epochs']['translate']}, pretrain {meta['epochs']['pretrain']}, finetune {meta['epochs']['finetune']}"
        + (f"; these weights are finetune epoch {meta['finetune_epoch']}, the one with the best validation PSNR "
           f"(the last epoch: {meta['last_val'].get('psnr', float('nan')):.2f} dB; choosing by validation flatters the validation figures a little)"
           if meta["finetune_epoch"] != meta["epochs"]["finetune"] else "") + ".",
        *([f"- Weights: the exponential moving average of the finetune's weights (decay {meta['ema']['decay']} a step, "
           f"{meta['ema']['updates']} steps), which validation measured and which these figures are for."] if meta.get("ema") else []),
        *([f"- NIR levels of the training images, which `--levels auto` / `stretch` bring frames to: 1st percentile "
           f"{meta['nir_levels']['low'][0]:.0f}-{meta['nir_levels']['low'][1]:.0f} (mean {meta['nir_levels']['low_mean']:.1f}), 99th "
           f"{meta['nir_levels']['high'][0]:.0f}-{meta['nir_levels']['high'][1]:.0f} (mean {meta['nir_levels']['high_mean']:.1f}), "
           f"the middle half over {meta['nir_levels']['images']} images."] if meta.get("nir_levels") else []),
        _time_line(meta),
        "",
        "## Validation metrics (256x256, computed as the VCIP 2020 challenge does)",
        "",
        "| | PSNR (dB) | SSIM | AE (deg) |",
        "|---|---|---|---|",
        f"| this model | {val.get('psnr', float('nan')):.2f} | {val.get('ssim', float('nan')):.4f} | {val.get('ae', float('nan')):.2f} |",
        f"| floor: NIR copied as gray | {floor['psnr']:.2f} | {floor['ssim']:.4f} | {floor['ae']:.2f} |",
        "",
        "For reference, the paper reports 22.14 dB PSNR on the official 28-image test set for its full model,",
        "and ATCycleGAN 19.59 dB (Yang et al., MPFNet, Table I); those numbers are on another set and another model size.",
        "LPIPS is not reported: it needs AlexNet weights that cannot be downloaded here.",
        *_quarter_lines(meta.get("finetune_quarters") or [], bool(meta.get("ema"))),
        "",
    ]
    return "\n".join(lines)
