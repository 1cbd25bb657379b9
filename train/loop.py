"""Running a stage: epochs, resume from the last checkpoint, validation, pictures, outputs.

Files under ``<output>/<name>/<stage>/``:
  last.pt      training state after the last finished epoch (networks, optimizers, pools,
               history); a restarted run resumes from it and reaches the same weights. It
               records the model config (a config asking for another model size is refused,
               naming both), the settings (warned about when they change on resume) and a sha256 of
               the previous stages' outputs it started from: if one changed, the stage
               starts afresh from the new output (with a warning) instead of resuming
  output.pt    the stage's result (a nirvision checkpoint holding every network so far),
               which the next stage starts from: the last epoch's weights, or with
               ``keep_best`` the weights of the epoch with the best validation PSNR
  best.pt      with ``keep_best``: that best epoch's networks so far (kept across resumes)
  With ``ema``, validation, best.pt and output.pt hold the generators' averaged weights
  (train/ema.py); history.json keeps the live weights' validation too (``val_live``).
  samples.png  validation inputs | predictions | truth; curves.png  losses and metrics
  history.json per-epoch losses, validation metrics and time: ``seconds`` the training steps,
               ``wall`` the stage's wall time so far (validation, pictures and checkpoints too,
               summed over resumed runs; an epoch an interruption cut short is not counted)
"""
from __future__ import annotations

import hashlib
import json
import logging
import pickle
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from nirvision.metrics import evaluate_pairs, mean_metrics
from nirvision.config import to_dict
from nirvision.models.checkpoint import (CheckpointError, checkpoint_config, load_into, model_mismatch, quiet_load, read_checkpoint,
                                         refused_global, save_checkpoint)
from nirvision.models.registry import ModelConfig, parse_model_config
from nirvision.visual import save_grid

from .config import STAGES, TrainConfig
from .data import TrainData
from .dist import Context
from .ema import WeightAverage
from .plots import save_curves, to_uint8_rgb
from .stages import DISC_ROLES, STAGE_CLASSES, Stage, make_stage

log = logging.getLogger(__name__)

STATE_FORMAT = "nirvision-train-state"


class StageInterrupted(RuntimeError):
    """Raised by the ``stop_after_steps`` test hook to simulate a crash mid-epoch."""


def build_networks(model: ModelConfig, seed: int) -> dict[str, torch.nn.Module]:
    """Every network training touches, initialised from ``seed`` (identical on all ranks)."""
    torch.manual_seed(seed)
    nets = {role: model.build(role) for role in ("nir_to_gray", "gray_to_nir", "colorizer")}
    for role, spec_role in DISC_ROLES.items():
        nets[role] = model.build(spec_role)
    return nets


def weights_digest(networks: dict[str, dict[str, torch.Tensor]]) -> str:
    """sha256 of the networks' tensors (names, dtypes, shapes, values): which weights a stage started from."""
    h = hashlib.sha256()
    for role in sorted(networks):
        for key in sorted(networks[role]):
            t = networks[role][key].detach().cpu().contiguous()
            h.update(f"{role}.{key}:{t.dtype}:{tuple(t.shape)};".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def epoch_seed(seed: int, stage: str, epoch: int) -> int:
    return seed * 1_000_003 + STAGES.index(stage) * 10_007 + epoch


def lr_factor(epoch: int, epochs: int, decay_from: float) -> float:
    """1 for the first ``decay_from`` of the epochs, then linearly down towards 0 (CycleGAN's
    policy: with n constant and d decaying epochs, epoch n + k (0-based) runs at 1 - (k + 1) / (d + 1),
    so the first decaying epoch is already below 1 and the last runs at 1 / (d + 1))."""
    start = int(round(decay_from * epochs))
    if epoch < start or epochs == start:
        return 1.0
    return 1.0 - (epoch - start + 1) / (epochs - start + 1)


class Progress:
    """A progress line on stderr for the interactive user (rank 0 only); quiet when not a TTY."""

    def __init__(self, enabled: bool, label: str, total: int):
        self.enabled, self.label, self.total = enabled and sys.stderr.isatty(), label, total
        self.start = time.perf_counter()

    def update(self, done: int, loss: float) -> None:
        if not self.enabled:
            return
        rate = done / max(1e-9, time.perf_counter() - self.start)
        bar = "#" * int(20 * done / self.total)
        sys.stderr.write(f"\r{self.label} [{bar:<20}] {done}/{self.total} loss {loss:.4f} {rate:.2f} it/s ")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


class StageRunner:
    def __init__(self, cfg: TrainConfig, model: ModelConfig, data: TrainData, ctx: Context, stage_name: str):
        self.cfg, self.model, self.data, self.ctx = cfg, model, data, ctx
        self.stage_name = stage_name
        self.stage_cfg = cfg.stage(stage_name)
        self.dir = cfg.run_dir() / stage_name
        self.inputs: dict[str, dict] = {}  # previous stage -> {"path", "sha256"} of the output this stage starts from
        self.saved_epoch: int | None = None  # the epoch last.pt holds (None until resume() looked)
        self.nets = build_networks(model, cfg.seed)
        for net in self.nets.values():
            net.to(ctx.device)
        self._load_previous_stage()
        self.stage: Stage = make_stage(stage_name, self.nets, self.stage_cfg, ctx, cfg.pool_size)
        self.ema = WeightAverage({r: self.nets[r] for r in self.stage.averages}, self.stage_cfg.ema) if self.stage_cfg.ema else None
        self.history: list[dict] = []
        self.start_epoch = 0
        self.best: dict | None = None  # with keep_best: {"epoch", "psnr"} of the weights in best.pt
        self.wall_before = 0.0  # wall seconds of the runs of this stage that last.pt continues
        self.started = time.perf_counter()  # when this process took the stage up

    # --- chaining and resume ---
    def _load_previous_stage(self) -> None:
        needs = {"translate": [], "pretrain": [], "finetune": ["translate", "pretrain"]}[self.stage_name]
        for prev in needs:
            path = self.cfg.run_dir() / prev / "output.pt"
            if not path.is_file():
                raise FileNotFoundError(f"stage {self.stage_name} starts from the output of stage {prev}, but {path} does not exist; run `python -m train --config ... --stage {prev}` first")
            payload = read_checkpoint(path)
            owned = {"translate": ("nir_to_gray", "gray_to_nir", "disc_gray", "disc_nir"), "pretrain": ("colorizer",)}[prev]
            self._check_written_by(payload, path, prev, owned)
            networks = payload.get("networks")
            missing = [r for r in owned if not isinstance(networks, dict) or r not in networks]
            if missing:
                has = ", ".join(networks) if isinstance(networks, dict) and networks else "none"
                raise CheckpointError(f"{path}: holds no weights for {', '.join(missing)} (it has: {has}); expected the output of stage {prev} "
                                      f"with all its networks; run `python -m train --config ... --stage {prev}` again")
            self._check_model(checkpoint_config(payload, path), path, owned,
                              f"run `python -m train --config ... --stage {prev} --fresh` to train it for this model first")
            for role in owned:
                load_into(self.nets[role], networks[role], f"{path}, network '{role}'")
            self.inputs[prev] = {"path": str(path), "sha256": weights_digest({r: networks[r] for r in owned})}
            log.info("%s: starting from %s (%s)", self.stage_name, path, ", ".join(owned))

    def _check_written_by(self, payload: dict, path: Path, prev: str, owned) -> None:
        """``path`` must be stage ``prev``'s output (its ``meta.stage``): every output.pt holds all
        the networks, those its stage does not train at the random init (as evaluate and colorize
        warn, nirvision.models.checkpoint.UNTRAINED_BY_STAGE), so another stage's file would start
        this one from noise. Refused where the networks taken were not trained by the stage that
        wrote it, warned where they were (a finetune's output) or where it does not say."""
        meta = payload.get("meta")
        wrote = meta.get("stage") if isinstance(meta, dict) else None
        if wrote == prev:
            return
        if wrote not in STAGE_CLASSES:
            log.warning("%s: %s does not record which stage wrote it (meta.stage); taken as the output of stage %s unchecked",
                        self.stage_name, path, prev)
            return
        untrained = [r for r in owned if r not in STAGE_CLASSES[wrote].trains]
        if untrained:
            raise CheckpointError(f"{path}: the output of stage {wrote} (meta.stage), which does not train its {', '.join(untrained)} "
                                  f"(left at the random init); expected the output of stage {prev}; run `python -m train --config ... "
                                  f"--stage {prev}` to write it")
        log.warning("%s: %s is the output of stage %s (meta.stage), not of stage %s; starting from its %s", self.stage_name, path,
                    wrote, prev, ", ".join(owned))

    def _check_model(self, stored: ModelConfig, path: Path, roles, remedy: str) -> None:
        """``path`` holds networks of another model size than the config's: say so, naming both
        sizes and ``remedy`` (a tensor-by-tensor diff would list hundreds of names)."""
        mismatch = model_mismatch(stored, self.model, [DISC_ROLES.get(r, r) for r in roles])
        if mismatch:
            raise CheckpointError(f"{path} {mismatch}; {remedy}, or give the config another `name:` for a new run")

    def _state_path(self) -> Path:
        return self.dir / "last.pt"

    def _settings(self) -> dict:
        """What a resumed stage should keep: its section, the data section, seed and pool size."""
        return {"seed": self.cfg.seed, "pool_size": self.cfg.pool_size, "data": to_dict(self.cfg.data),
                self.stage_name: to_dict(self.stage_cfg)}

    def _read_state(self, path: Path) -> dict:
        fresh = f"run `python -m train --config ... --stage {self.stage_name} --fresh` to start the stage over"
        try:
            state = quiet_load(path)
        except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a bad file
            code = refused_global(path, exc)
            if code:
                raise CheckpointError(f"{path}: refused: the file asks to run code ({code}); nirvision loads weights only; {fresh}") from None
            text = str(exc).strip().splitlines()[0][:200].split(". ")[0] if str(exc).strip() else ""
            reason = type(exc).__name__ + (f": {text}" if text and not isinstance(exc, pickle.UnpicklingError) else "")
            raise CheckpointError(f"{path}: cannot be read as a training state ({path.stat().st_size} bytes; truncated, damaged or "
                                  f"not a last.pt: {reason}); {fresh}") from None
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            kind = " (it is a nirvision checkpoint, such as an output.pt)" if isinstance(state, dict) and state.get("format") == "nirvision-checkpoint" else ""
            raise CheckpointError(f"{path}: not a training state{kind}; expected the last.pt that python -m train writes; {fresh}")
        if state.get("stage") != self.stage_name:
            raise CheckpointError(f"{path}: the training state of stage {state.get('stage')!r}, expected one of stage {self.stage_name!r}; {fresh}")
        return state

    def _inputs_changed(self, state: dict, path: Path) -> bool:
        """True where a previous stage's output differs from the one ``state`` started from."""
        if not self.inputs:
            return False
        recorded = state.get("inputs")
        if recorded is None:
            log.warning("%s: %s does not record which outputs of %s it started from (written by an older version); "
                        "resuming it without checking them", self.stage_name, path, " and ".join(self.inputs))
            return False
        changed = [prev for prev, now in self.inputs.items() if (recorded.get(prev) or {}).get("sha256") != now["sha256"]]
        if changed:
            log.warning("%s: %s changed since %s was started from it (stage %s ran again); starting %s afresh from the new "
                        "output: the %d epoch(s) in %s are discarded", self.stage_name, " and ".join(self.inputs[p]["path"] for p in changed),
                        path, " and ".join(changed), self.stage_name, int(state.get("epoch", 0)), path)
        return bool(changed)

    def _warn_changed_settings(self, state: dict, path: Path) -> None:
        before = state.get("settings")
        if before is None:
            log.warning("%s: %s does not record the settings it was trained with (written by an older version); "
                        "resuming with the config's current settings", self.stage_name, path)
            return
        now = self._settings()
        changes = []
        for key in now:
            old, new = before.get(key), now[key]
            if isinstance(new, dict):
                old = old if isinstance(old, dict) else {}
                for k in new:
                    if k != "epochs" and old.get(k) != new[k]:
                        changes.append(f"{key}.{k} {old.get(k)!r} -> {new[k]!r}")
            elif old != new:
                changes.append(f"{key} {old!r} -> {new!r}")
        if changes:
            log.warning("%s: settings changed since %s was written: %s; resuming with the new settings "
                        "(use --stage %s --fresh to start the stage over with them)", self.stage_name, path, ", ".join(changes), self.stage_name)

    def resume(self) -> None:
        path = self._state_path()
        if not path.is_file():
            self.saved_epoch = 0
            return
        state = self._read_state(path)
        if isinstance(state.get("model_config"), dict):  # states of older versions do not record it
            fresh = f"use `python -m train --config ... --stage {self.stage_name} --fresh` to start the stage over with the config's model"
            self._check_model(parse_model_config(state["model_config"], source=f"{path} (model_config)"), path, state.get("networks") or {}, fresh)
        if self._inputs_changed(state, path):
            self.saved_epoch = 0
            return
        self._warn_changed_settings(state, path)
        try:
            self._load_state(state, path)
        except CheckpointError as exc:  # a state without a model config, whose networks do not fit the config's model
            raise CheckpointError(f"{exc}; if the config's model changed since {path} was written, run `python -m train --config ... "
                                  f"--stage {self.stage_name} --fresh` to start the stage over, or give the config another `name:`") from None
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError) as exc:
            raise CheckpointError(f"{path}: training state incomplete or does not fit this stage ({type(exc).__name__}: {exc}); "
                                  f"run `python -m train --config ... --stage {self.stage_name} --fresh` to start the stage over") from None
        self.saved_epoch = self.start_epoch
        log.info("%s: resumed from %s after epoch %d", self.stage_name, path, self.start_epoch)

    def _load_state(self, state: dict, path: Path) -> None:
        for role, sd in state["networks"].items():
            load_into(self.nets[role], sd, f"{path}, network '{role}'")
        for name, opt in self.stage.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        by_rank = state.get("pools_by_rank")
        if by_rank is None:  # states written before pools were saved per rank
            by_rank = [state.get("pools", {})]
        if len(by_rank) != self.ctx.world:
            log.warning("%s: %s holds the image pools of %d process(es), this run has %d; each process takes pool (rank mod %d)",
                        self.stage_name, path, len(by_rank), self.ctx.world, len(by_rank))
        pools = by_rank[self.ctx.rank % len(by_rank)]
        for name, pool in self.stage.pools.items():
            pool.load(pools.get(name))
        self.history = list(state["history"])
        self.start_epoch = int(state["epoch"])
        if self.ema is not None:
            if state.get("ema"):
                self.ema.load_state_dict(state["ema"], str(path))
            else:
                self.ema = WeightAverage(self.ema.nets, self.ema.decay)  # from the resumed weights
                log.warning("%s: %s holds no weight average (ema was off); the average starts from epoch %d's weights",
                            self.stage_name, path, self.start_epoch)
        self.best = state.get("best")
        self.wall_before = float(state.get("wall_seconds") or sum(r.get("seconds", 0.0) for r in self.history))  # older states: steps only

    def wall_seconds(self) -> float:
        """The stage's wall time so far: this process's since it took the stage up, plus that of the
        runs last.pt continues (their time after its last save, an epoch cut short, is not counted)."""
        return self.wall_before + time.perf_counter() - self.started

    def _save_state(self, epoch: int, pools_by_rank: list[dict]) -> None:
        state = {
            "format": STATE_FORMAT,
            "stage": self.stage_name,
            "epoch": epoch,
            "networks": {r: {k: v.detach().cpu() for k, v in n.state_dict().items()} for r, n in self.nets.items()},
            "optimizers": {k: o.state_dict() for k, o in self.stage.optimizers.items()},
            "pools_by_rank": pools_by_rank,  # each process keeps its own CycleGAN image pools
            "history": self.history,
            "best": self.best,
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "inputs": self.inputs,  # the previous stages' outputs this stage started from
            "settings": self._settings(),
            "model_config": self.model.to_dict(),  # a resume with another model size is refused naming both
            "wall_seconds": self.wall_seconds(),
        }
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self._state_path().with_suffix(".tmp")
        try:
            torch.save(state, tmp)
            tmp.replace(self._state_path())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self.saved_epoch = epoch

    # --- validation ---
    @torch.no_grad()
    def validate(self) -> tuple[dict[str, float], tuple[torch.Tensor, ...]]:
        for net in self.nets.values():
            net.eval()
        nir, rgb = self.data.val_tensors()
        shown, preds, truths = [], [], []
        for i in range(0, len(nir), 8):
            s, p, t = self.stage.predict(nir[i: i + 8].to(self.ctx.device), rgb[i: i + 8].to(self.ctx.device))
            shown.append(s.cpu()), preds.append(p.cpu()), truths.append(t.cpu())
        for net in self.nets.values():
            net.train()
        shown, preds, truths = torch.cat(shown), torch.cat(preds), torch.cat(truths)
        metrics = mean_metrics(evaluate_pairs(to_uint8_rgb(preds), to_uint8_rgb(truths)))
        if preds.shape[1] == 1:  # translate predicts gray against gray truth: the angle between gray vectors is always 0
            metrics.pop("ae", None)
        return metrics, (shown, preds, truths)

    # --- the loop ---
    def run(self, stop_after_steps: int | None = None) -> Path:
        cfg, ctx = self.stage_cfg, self.ctx
        self.resume()
        pretrain = self.stage_name == "pretrain"
        count = len(self.data.pretrain_rgb) if pretrain else len(self.data.nir)
        steps = cfg.iters_per_epoch or self.data.steps_per_epoch(cfg.batch_size, ctx.world, count)
        done_steps = 0
        for net in self.nets.values():
            net.train()
        aug = cfg.data_for_stage(self.cfg.data)
        for epoch in range(self.start_epoch, cfg.epochs):
            t0 = time.perf_counter()
            factor = lr_factor(epoch, cfg.epochs, cfg.decay_from)
            for opt in self.stage.optimizers.values():
                for group in opt.param_groups:
                    group["lr"] = cfg.lr * factor
            gen = torch.Generator().manual_seed(epoch_seed(self.cfg.seed, self.stage_name, epoch))
            pool_gen = torch.Generator().manual_seed(epoch_seed(self.cfg.seed, self.stage_name, epoch) + 7919 + ctx.rank)
            sums: dict[str, float] = {}
            progress = Progress(ctx.main, f"{self.stage_name} {epoch + 1}/{cfg.epochs}", steps)
            for i, batch in enumerate(self.data.batches(gen, cfg.batch_size, ctx.rank, ctx.world, steps, aug.crop, pretrain=pretrain, aug=aug)):
                batch = type(batch)(**{k: v.to(ctx.device) for k, v in vars(batch).items()})
                losses = self.stage.step(batch, pool_gen)
                if self.ema is not None:
                    self.ema.update()
                for k, v in losses.items():
                    sums[k] = sums.get(k, 0.0) + v
                progress.update(i + 1, losses["loss"])
                done_steps += 1
                if stop_after_steps is not None and done_steps >= stop_after_steps:
                    progress.close()
                    raise StageInterrupted(f"stopped after {done_steps} steps (test hook)")
            progress.close()
            train_means = ctx.all_mean({k: v / steps for k, v in sums.items()})
            ctx.sync_buffers(self.nets.values())
            record = {"epoch": epoch + 1, "lr": cfg.lr * factor, "train": train_means, "seconds": time.perf_counter() - t0}
            pools_by_rank = ctx.gather_objects({k: p.state() for k, p in self.stage.pools.items()})
            if ctx.main:
                with self._handed_on():
                    metrics, pictures = self.validate()
                    record["val"] = metrics
                    if cfg.keep_best and (self.best is None or metrics["psnr"] > self.best["psnr"]):
                        self._save_best(epoch + 1, metrics)
                if self.ema is not None:
                    record["val_live"] = self.validate()[0]
                self.history.append(record)
                record["wall"] = self.wall_seconds()
                self._save_state(epoch + 1, pools_by_rank)
                self._write_pictures(pictures)
                live = f" (live weights {record['val_live']['psnr']:.2f} dB)" if "val_live" in record else ""
                ae = f", AE {metrics['ae']:.2f} deg" if "ae" in metrics else ""  # none for translate (gray against gray)
                log.info("%s epoch %d/%d: loss %.4f, val PSNR %.2f dB%s, SSIM %.4f%s (%.1f s)",
                         self.stage_name, epoch + 1, cfg.epochs, train_means.get("loss", float("nan")),
                         metrics["psnr"], live, metrics["ssim"], ae, record["seconds"])
            else:
                self.history.append(record)
            ctx.barrier()
        return self._write_output()

    def _handed_on(self):
        """Inside: the networks hold the weights the stage hands on (the average with ``ema``)."""
        return self.ema.applied() if self.ema is not None else nullcontext()

    def _write_pictures(self, pictures) -> None:
        n = self.cfg.sample_count
        shown, preds, truths = (to_uint8_rgb(t[:n]) for t in pictures)
        labels = {"translate": ["NIR", "G_N2G(NIR)", "gray truth"], "pretrain": ["gray", "F_G(gray)", "RGB truth"], "finetune": ["NIR", "prediction", "RGB truth"]}
        save_grid(self.dir / "samples.png", [shown, preds, truths], labels[self.stage_name])
        save_curves(self.dir / "curves.png", self.history)
        (self.dir / "history.json").write_text(json.dumps(self.history, indent=1))

    def _best_path(self) -> Path:
        return self.dir / "best.pt"

    def _save_best(self, epoch: int, metrics: dict[str, float]) -> None:
        self.best = {"epoch": epoch, "psnr": float(metrics["psnr"])}
        meta = {"stage": self.stage_name, "epoch": epoch, "val": metrics, "split": self.data.split_info()}
        if self.ema is not None:
            meta["ema_updates"] = self.ema.updates  # the average handed on is the one of this epoch
        save_checkpoint(self._best_path(), self.model, self.nets, meta)
        log.info("%s: epoch %d is the best so far (val PSNR %.2f dB): %s", self.stage_name, epoch, metrics["psnr"], self._best_path())

    def _write_output(self) -> Path:
        path = self.dir / "output.pt"
        chosen = self.history[-1] if self.history else {}
        handed_on = self._handed_on()
        ema_updates = self.ema.updates if self.ema is not None else None
        if self.stage_cfg.keep_best and self.history:
            handed_on = nullcontext()  # best.pt already holds the weights handed on
            self.ctx.barrier()  # every process takes the best epoch's weights (rank 0 wrote them and knows which)
            if not self._best_path().is_file():
                raise FileNotFoundError(f"{self.stage_name}: keep_best is set but {self._best_path()} is missing; run the stage again with --fresh")
            payload = read_checkpoint(self._best_path())
            for role, net in self.nets.items():
                load_into(net, payload["networks"][role], f"{self._best_path()}, network '{role}'")
            chosen = self.history[int(payload["meta"]["epoch"]) - 1]
            ema_updates = payload["meta"].get("ema_updates", ema_updates)
            if self.ctx.main:
                log.info("%s: output is epoch %d of %d (best validation PSNR %.2f dB; the last epoch had %.2f dB)", self.stage_name,
                         chosen["epoch"], len(self.history), chosen["val"]["psnr"], self.history[-1]["val"]["psnr"])
        with handed_on:
            self._save_output(path, chosen, ema_updates)
        return path

    def _save_output(self, path: Path, chosen: dict, ema_updates: int | None) -> None:
        self.ctx.check_consistent(self.nets.values())
        if self.ctx.main:
            meta = {"stage": self.stage_name, "epochs": self.stage_cfg.epochs, "val": chosen.get("val", {}),
                    "epoch": int(chosen.get("epoch", 0)), "last_val": (self.history[-1] if self.history else {}).get("val", {}),
                    "train_seconds": float(sum(r.get("seconds", 0.0) for r in self.history)),  # the training steps alone
                    "wall_seconds": self.wall_seconds(),  # everything up to this file: validation, pictures, checkpoints
                    "split": self.data.split_info()}  # the validation split, which nirvision evaluate --split val takes
            if self.ema is not None:
                meta["ema"] = {"decay": self.ema.decay, "updates": ema_updates}
            save_checkpoint(path, self.model, self.nets, meta)
            log.info("%s: wrote %s", self.stage_name, path)
        self.ctx.barrier()


def floor_metrics(data: TrainData) -> dict[str, float]:
    """The floor: validation metrics of copying NIR as gray into all three channels."""
    preds = [np.repeat(n[..., None], 3, axis=2) for n in data.val.nir]
    return mean_metrics(evaluate_pairs(preds, data.val.rgb))
