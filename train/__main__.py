"""``python -m train --config configs/train/lite.yaml [--stage translate|pretrain|finetune|all]``

Runs the stages in order; each resumes from its last checkpoint after an interruption and
its output feeds the next. Multi-process: ``torchrun --nproc_per_node N -m train ...``.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path

import torch

from nirvision.config import ConfigError
from nirvision.errors import InputError
from nirvision.models.checkpoint import CheckpointError
from nirvision.models.registry import load_model_config
from nirvision.runtime.levels import LevelsBand

from .config import STAGES, load_train_config
from .data import TrainData
from .dist import close_context, init_context
from .export import export_weights
from .loop import StageRunner, floor_metrics

log = logging.getLogger("train")


def size_multiples(model) -> dict[str, int]:
    """What each stage's input side must be a multiple of, from the networks it trains."""
    m = {role: model.networks[role].config.multiple for role in ("nir_to_gray", "gray_to_nir", "colorizer")}
    translate = math.lcm(m["nir_to_gray"], m["gray_to_nir"])
    return {"translate": translate, "pretrain": m["colorizer"], "finetune": math.lcm(m["nir_to_gray"], m["colorizer"]),
            "validation": math.lcm(translate, m["colorizer"])}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m train", description="Train MPFNet with the paper's three-stage schedule.")
    p.add_argument("--config", required=True, help="training YAML (configs/train/lite.yaml or paper.yaml)")
    p.add_argument("--stage", choices=STAGES + ("all",), default="all", help="run one stage, or all in order (default)")
    p.add_argument("--data", help="paired folder with nir/ and rgb/ (overrides data.root)")
    p.add_argument("--output", help="runs folder (overrides output)")
    p.add_argument("--export", type=Path, help="after finetune, write the inference weights (and a model card) here")
    p.add_argument("--threads", type=int, help="torch threads per process (overrides threads)")
    p.add_argument("--fresh", action="store_true", help="ignore last.pt and outputs of the stages being run")
    return p.parse_args(argv)


def setup_logging(run_dir: Path, rank: int) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    fmt = logging.Formatter(f"%(asctime)s [rank {rank}] %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for old in [h for h in root.handlers if getattr(h, "_train_run", False)]:
        root.removeHandler(old)
        old.close()
    handlers = [logging.FileHandler(run_dir / ("train.log" if rank == 0 else f"train.rank{rank}.log"))]
    if rank == 0:
        handlers.append(logging.StreamHandler(sys.stderr))
    for h in handlers:
        h.setFormatter(fmt)
        h._train_run = True
        root.addHandler(h)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        cfg = load_train_config(args.config)
        if args.data:
            cfg.data.root = args.data
        if args.output:
            cfg.output = args.output
        if args.threads:
            cfg.threads = args.threads
        model = load_model_config(cfg.model, require_training=True)
        try:
            cfg.check_sizes(size_multiples(model))
        except ValueError as exc:
            raise ConfigError(str(args.config), "", str(exc)) from None
    except (ConfigError, InputError) as exc:
        print(f"train: error: {exc}", file=sys.stderr)
        return 2
    ctx = init_context(cfg.bf16)
    setup_logging(cfg.run_dir(), ctx.rank)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    log.info("config %s: model %s, seed %d, world %d, threads %d", args.config, cfg.model, cfg.seed, ctx.world, torch.get_num_threads())
    try:
        data = TrainData(cfg.data, cfg.seed)
        stages = STAGES if args.stage == "all" else (args.stage,)
        for name in stages:
            runner_dir = cfg.run_dir() / name
            if args.fresh and ctx.main:
                for f in ("last.pt", "output.pt", "best.pt"):
                    (runner_dir / f).unlink(missing_ok=True)
            ctx.barrier()
            t0 = time.perf_counter()
            runner = StageRunner(cfg, model, data, ctx, name)
            runner.run()
            log.info("stage %s done in %.1f min", name, (time.perf_counter() - t0) / 60)
        if ctx.main and "finetune" in stages:
            floor = floor_metrics(data)
            log.info("floor (NIR copied as gray): PSNR %.2f dB, SSIM %.4f, AE %.2f deg", floor["psnr"], floor["ssim"], floor["ae"])
            info = {"train": len(data.train_names), "val": len(data.val_names), "val_names": data.val_names, "skipped": len(data.skipped)}
            (cfg.run_dir() / "floor.json").write_text(json.dumps({"floor": floor, "split": info}, indent=1))
            if args.export:
                levels = LevelsBand.from_images(data.nir[:, 0].numpy()).to_dict()
                out = export_weights(cfg, args.config, args.export, floor, info, levels)
                log.info("exported %s and %s", out, out.with_suffix(".md"))
    except (ConfigError, InputError, CheckpointError, FileNotFoundError) as exc:
        log.error("%s", exc)
        return 2
    finally:
        close_context(ctx)
    return 0


if __name__ == "__main__":
    sys.exit(main())
