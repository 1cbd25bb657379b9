"""``python -m train --config configs/train/lite.yaml [--stage translate|pretrain|finetune|all]``

Runs the stages in order; each resumes from its last checkpoint after an interruption (Ctrl-C,
SIGTERM or SIGHUP exit 130, 143 or 129 saying which epoch a rerun resumes after: the same
command, or with ``--fresh`` the command without it) and its output feeds the next;
a stage whose previous stage's output changed since it started (that stage ran again) starts
afresh from the new output. Config, ``--export`` and ``--output`` are checked, and the data
loaded, before the run folder is made. Multi-process: ``torchrun --nproc_per_node N -m train ...``.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shlex
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

from nirvision.config import ConfigError
from nirvision.errors import InputError, usage_errors
from nirvision.models.registry import load_model_config
from nirvision.runtime.levels import LevelsBand

from .config import STAGES, load_train_config
from .data import TrainData
from .dist import close_context, init_context
from .export import duration, export_weights
from .loop import StageRunner, floor_metrics

log = logging.getLogger("train")


def size_multiples(model) -> dict[str, int]:
    """What each stage's input side must be a multiple of, from the networks it trains."""
    m = {role: model.networks[role].config.multiple for role in ("nir_to_gray", "gray_to_nir", "colorizer")}
    translate = math.lcm(m["nir_to_gray"], m["gray_to_nir"])
    return {"translate": translate, "pretrain": m["colorizer"], "finetune": math.lcm(m["nir_to_gray"], m["colorizer"]),
            "validation": math.lcm(translate, m["colorizer"])}


def _patchgan_min_side(cfg) -> int:
    """The smallest square input a PatchGAN runs on: every InstanceNorm needs more than one
    pixel and the last convolution at least one (24 for 3 layers)."""
    for side in range(2, 4097):
        s, ok = side // 2, True  # first conv: k4 s2 p1
        for n in range(1, cfg.layers + 1):
            s = (s + 2 - 4) // (2 if n < cfg.layers else 1) + 1
            ok = ok and s >= 2  # InstanceNorm
        if ok and s - 1 >= 1:
            return side
    return 4096


def size_minimums(model) -> dict[str, int]:
    """The smallest crop each stage's networks train at (and image size validation runs at):
    an MPFNet's deepest level must keep more than one pixel for InstanceNorm, so its side is at
    least two multiples (as inference pads to, nirvision.models.chain.padded_size)."""
    side = {}
    for role, spec in model.networks.items():
        side[role] = 2 * spec.config.multiple if spec.type == "mpfnet" else _patchgan_min_side(spec.config)
    translate = max(side["nir_to_gray"], side["gray_to_nir"], side["image_discriminator"])
    return {"translate": translate, "pretrain": side["colorizer"], "finetune": max(translate, side["colorizer"], side["feature_discriminator"]),
            "validation": max(side["nir_to_gray"], side["colorizer"])}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m train", description="Train MPFNet with the paper's three-stage schedule.")
    p.add_argument("--config", required=True, help="training YAML (configs/train/lite.yaml or paper.yaml)")
    p.add_argument("--stage", choices=STAGES + ("all",), default="all", help="run one stage, or all in order (default)")
    p.add_argument("--data", help="paired folder with nir/ and rgb/ (overrides data.root)")
    p.add_argument("--output", help="runs folder (overrides output)")
    p.add_argument("--export", help="after finetune, write the inference weights here (a .pt or .pth file outside the data, e.g. weights.pt) "
                   "and a model card next to them (weights.md)")
    p.add_argument("--threads", type=int, help="torch threads per process (overrides threads)")
    p.add_argument("--fresh", action="store_true", help="start the stages being run over: their last.pt, outputs, history and pictures "
                   "are removed first (after an interruption, rerun without --fresh to resume)")
    return p.parse_args(argv)


def _writable_folder(path: Path, what: str) -> None:
    """The nearest existing folder at or above ``path`` must be a folder we can create files in."""
    anc = path.absolute()
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir():
        raise InputError(f"{what}: {anc} is a file; expected a folder")
    try:
        with tempfile.TemporaryFile(dir=anc):
            pass
    except OSError as exc:
        raise InputError(f"{what}: cannot create files in {anc} ({exc.strerror or exc}); expected a writable folder") from None


EXPORT_SUFFIXES = (".pt", ".pth")


def check_export(raw: str, stages: tuple[str, ...], data_root: str | None = None) -> Path:
    """Check ``--export`` before training: a .pt / .pth file path whose folder can be written,
    with room for the model card next to it, outside the training data (``data_root``), where
    it would replace or sit among the images (links followed, as the write would follow them)."""
    what = f"--export {raw}"
    if "finetune" not in stages:
        raise InputError(f"{what}: the weights are exported after the finetune stage, which --stage {stages[0]} does not run; "
                         "expected --stage finetune or all")
    if not raw or raw.endswith(("/", os.sep)):
        raise InputError(f"{what}: expected a file path for the weights (e.g. weights.pt), got a folder")
    path = Path(raw)
    if path.suffix.lower() == ".md":
        raise InputError(f"{what}: the model card is written next to the weights with the suffix .md; "
                         f"expected a weights file name not ending in .md (e.g. {path.with_suffix('.pt').name})")
    for p, kind in ((path, "the weights"), (path.with_suffix(".md"), "the model card")):
        if p.is_dir():
            raise InputError(f"{what}: {p} is a folder; expected a file path for {kind}")
    if path.suffix.lower() not in EXPORT_SUFFIXES:
        raise InputError(f"{what}: the weights are a PyTorch checkpoint (nirvision's format, not ONNX or an image); "
                         f"expected a file name ending in .pt or .pth (e.g. {path.with_suffix('.pt').name})")
    if data_root:
        data = Path(os.path.realpath(data_root))
        target = Path(os.path.realpath(path))
        if target == data or data in target.parents:
            raise InputError(f"{what}: lies in the training data {data_root}; expected a path outside it "
                             "(the weights and their model card would sit among, or replace, the images)")
    if path.is_file():
        from nirvision.io.specs import same_file
        from nirvision.resources import default_weights_path

        bundled = same_file(path, default_weights_path())
        log.warning("%s exists: it is replaced, with its model card, when the finetune stage ends%s", what,
                    " (the bundled weights that nirvision colorize and demo use: an installed, not editable, nirvision keeps "
                    "its own copy until it is installed again, pip install .)" if bundled else "")
    _writable_folder(path.parent, what)
    return path


def check_output(cfg) -> None:
    """The run folder and its stage folders must be folders (or not exist yet) in a writable place."""
    run = cfg.run_dir()
    for p in (run, *(run / s for s in STAGES)):
        if p.exists() and not p.is_dir():
            raise InputError(f"output: {p} is a file; expected {'the run folder' if p == run else f'the {p.name} stage folder'} "
                             "(move the file away or choose another --output)")
    _writable_folder(run, f"output {cfg.output}")


class _TerminalFormatter(logging.Formatter):
    """Errors as one plain line (``train: error: ...``), the rest with time, rank and logger."""

    def format(self, record: logging.LogRecord) -> str:
        if record.levelno >= logging.ERROR:
            return f"train: error: {record.getMessage()}"
        return super().format(record)


def _not_file_only(record: logging.LogRecord) -> bool:
    return not getattr(record, "file_only", False)


class _Buffer(logging.Handler):
    """Keeps the records logged before the run folder (and train.log) exists."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def close_logging() -> None:
    """Remove (and close) the handlers ``setup_logging`` added."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_train_run", False)]:
        root.removeHandler(old)
        old.close()


def setup_logging(run_dir: Path, rank: int) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    text = f"%(asctime)s [rank {rank}] %(levelname)s %(name)s: %(message)s"
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    close_logging()
    file_handler = logging.FileHandler(run_dir / ("train.log" if rank == 0 else f"train.rank{rank}.log"))
    file_handler.setFormatter(logging.Formatter(text))
    handlers = [file_handler]
    if rank == 0:
        terminal = logging.StreamHandler(sys.stderr)
        terminal.setFormatter(_TerminalFormatter(text))
        terminal.addFilter(_not_file_only)
        handlers.append(terminal)
    for h in handlers:
        h._train_run = True
        root.addHandler(h)


# What --fresh removes from each stage folder it runs: everything a run of the stage writes there
# (train/loop.py), so that nothing of the discarded run is left to be taken for the new one's.
STAGE_FILES = ("last.pt", "last.tmp", "output.pt", "best.pt", "history.json", "curves.png", "samples.png")


def remove_stage_files(run_dir: Path, stages: tuple[str, ...]) -> None:
    """``--fresh``: the files of the discarded runs of ``stages``, all removed before the first
    stage starts (a later stage's old last.pt must not be resumed when its inputs come out the same)."""
    for stage in stages:
        gone = []
        for name in STAGE_FILES:
            path = run_dir / stage / name
            if path.is_file():
                path.unlink()
                gone.append(name)
        if gone:
            log.info("--fresh: removed %s from %s", ", ".join(gone), run_dir / stage)


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP (a scheduler's preemption, docker stop, the ssh session closed): handled as Ctrl-C."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopOnSignals:
    """While installed, SIGTERM and SIGHUP raise ``Stopped`` in the main thread (a SIGHUP that is
    ignored, as under nohup, stays ignored); ``restore`` puts the previous handlers back (once)."""

    def __init__(self):
        self.previous: dict[int, object] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
            return
        for name in ("SIGTERM", "SIGHUP"):
            signum = getattr(signal, name, None)
            if signum is not None and signal.getsignal(signum) is not signal.SIG_IGN:
                self.previous[signum] = signal.signal(signum, self._stop)

    @staticmethod
    def _stop(signum, _frame):
        raise Stopped(signum)

    def restore(self) -> None:
        while self.previous:
            signum, handler = self.previous.popitem()
            signal.signal(signum, handler)


def rerun_command(argv: list[str]) -> str:
    """The command line without ``--fresh`` (or an abbreviation of it that argparse took)."""
    kept = [a for a in argv if not (len(a) >= 3 and "--fresh".startswith(a))]
    return shlex.join(["python", "-m", "train", *kept])


def _interrupted(phase: str, stage: str | None, runner: StageRunner | None, stages: tuple[str, ...], export: bool,
                 how: str = "interrupted", fresh_rerun: str | None = None) -> str:
    """The line an interruption ends with. ``fresh_rerun``: the command without ``--fresh``, where
    that was given: the same command would remove the epochs just finished and start over."""
    if phase == "data":  # before training nothing was removed or made: the same command does
        return f"train: {how} while loading the data, before training; run the same command again to start"
    if phase == "after":
        where, todo = "after the stages finished", "write floor.json" + (" and the export" if export else "")
    else:
        later = list(stages[stages.index(stage) + 1:])
        rest = f", then {' and '.join(later)}" if later else ""
        done = runner.saved_epoch if runner is not None else None
        where = f"in stage {stage}" + (" before its first epoch finished" if done == 0 else "")
        todo = (f"resume it after epoch {done}" if done else "resume it from its last finished epoch" if done is None else "start it") + rest
    if fresh_rerun is None:
        return f"train: {how} {where}; run the same command again to {todo}"
    return (f"train: {how} {where}; to {todo}, run the command again without --fresh (with it, what the stages "
            f"finished is removed and they start over): {fresh_rerun}")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    stages = STAGES if args.stage == "all" else (args.stage,)
    try:
        cfg = load_train_config(args.config)
        if args.data:
            cfg.data.root = args.data
        if args.output:
            cfg.output = args.output
        if args.threads is not None:
            if args.threads < 0:
                raise InputError(f"--threads {args.threads}: expected 0 (torch's default) or more")
            cfg.threads = args.threads
        model = load_model_config(cfg.model, require_training=True)
        try:
            cfg.check_sizes(size_multiples(model), size_minimums(model))
        except ValueError as exc:
            raise ConfigError(str(args.config), "", str(exc)) from None
        if not args.data and not Path(cfg.data.root).is_dir():  # said now, with where the path came from, not at the first stage
            raise InputError(f"{cfg.data.root}: folder not found (data.root of {args.config}, read from the working folder "
                             f"{Path.cwd()}); expected a paired folder with nir/ and rgb/: give --data DIR")
        export = check_export(args.export, stages, cfg.data.root) if args.export is not None else None
        check_output(cfg)
    except (ConfigError, InputError) as exc:
        print(f"train: error: {exc}", file=sys.stderr)
        return 2
    ctx = init_context(cfg.bf16)
    root = logging.getLogger()
    buffer = _Buffer()
    root.addHandler(buffer)
    root.setLevel(logging.INFO)
    phase, stage, runner = "data", None, None
    signals = StopOnSignals()
    try:
        signals.install()
        try:
            if cfg.threads:
                torch.set_num_threads(cfg.threads)
            log.info("config %s: model %s, seed %d, world %d, threads %d", args.config, cfg.model, cfg.seed, ctx.world, torch.get_num_threads())
            data = TrainData(cfg.data, cfg.seed)  # checked before the run folder (and train.log) is made
        except usage_errors() as exc:
            if ctx.main:
                print(f"train: error: {exc}", file=sys.stderr)
            return 2
        finally:
            root.removeHandler(buffer)
        setup_logging(cfg.run_dir(), ctx.rank)
        for record in buffer.records:  # what was logged before train.log existed
            logging.getLogger(record.name).handle(record)
        phase = "stages"
        if args.fresh and ctx.main:
            remove_stage_files(cfg.run_dir(), stages)
        ctx.barrier()
        for stage in stages:
            runner = None
            t0 = time.perf_counter()
            runner = StageRunner(cfg, model, data, ctx, stage)
            runner.run()
            log.info("stage %s done in %s", stage, duration(time.perf_counter() - t0))
        phase = "after"
        if ctx.main and "finetune" in stages:
            floor = floor_metrics(data)
            log.info("floor (NIR copied as gray): PSNR %.2f dB, SSIM %.4f, AE %.2f deg", floor["psnr"], floor["ssim"], floor["ae"])
            info = data.split_info()
            (cfg.run_dir() / "floor.json").write_text(json.dumps({"floor": floor, "split": info}, indent=1))
            if export is not None:
                levels = LevelsBand.from_images(data.nir[:, 0].numpy()).to_dict()
                out = export_weights(cfg, args.config, export, floor, info, levels)
                log.info("exported %s and %s", out, out.with_suffix(".md"))
    except usage_errors() + (FileNotFoundError,) as exc:
        log.error("%s", exc)
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM / SIGHUP (Stopped)
        signals.restore()  # a second signal while this is said ends the process as it would have
        how = f"stopped by {exc.args[0]}" if isinstance(exc, Stopped) else "interrupted"
        fresh_rerun = rerun_command(argv) if args.fresh else None
        if fresh_rerun is not None and ctx.world > 1:
            fresh_rerun = "the torchrun command without --fresh"
        message = _interrupted(phase, stage, runner, stages, export is not None, how, fresh_rerun)
        if phase != "data":
            log.warning("%s", message, extra={"file_only": True})
        if ctx.main:
            if sys.stderr.isatty():
                sys.stderr.write("\n")  # end a progress line
            print(message, file=sys.stderr)
        return 128 + exc.signum if isinstance(exc, Stopped) else 130
    finally:
        signals.restore()
        close_context(ctx)
        close_logging()
    return 0


if __name__ == "__main__":
    sys.exit(main())
