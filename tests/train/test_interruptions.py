"""Interruptions and chaining: a --fresh run's resume hint, SIGTERM as Ctrl-C, what --fresh
removes, the stage's wall time, and a previous stage's output written by another stage."""
import json
import shlex
import shutil
import signal
import time

import pytest
import torch
import yaml

from nirvision.config import to_dict
from nirvision.models.checkpoint import CheckpointError, read_checkpoint
from train.__main__ import STAGE_FILES, main
from train.data import TrainData
from train.dist import Context
from train.export import model_card
from train.loop import StageRunner

from .conftest import tiny_config
from .test_model_size_and_export import card_meta
from .test_stages import MODEL, run_stage


def _config(paired_dir, tmp_path, epochs=2):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(to_dict(tiny_config(paired_dir, tmp_path / "runs", epochs=epochs))))
    return str(path)


def _stop_in_epoch(monkeypatch, epoch: int, stop):
    """``stop()`` (raise KeyboardInterrupt, send a signal) when the given epoch's batches are asked for."""
    real = TrainData.batches
    calls = []

    def batches(self, *a, **k):
        calls.append(1)
        if len(calls) == epoch:
            stop()
        return real(self, *a, **k)

    monkeypatch.setattr(TrainData, "batches", batches)
    return real


def _interrupt():
    raise KeyboardInterrupt


def _last_line(err: str) -> str:
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


# --- finding 1: after an interrupted --fresh run, the hint is the command without --fresh ---

def test_interrupted_fresh_run_says_to_rerun_without_fresh_and_that_command_resumes(paired_dir, tmp_path, capsys, monkeypatch):
    config = _config(paired_dir, tmp_path)
    real = _stop_in_epoch(monkeypatch, 2, _interrupt)
    assert main(["--config", config, "--stage", "pretrain", "--fresh"]) == 130
    line = _last_line(capsys.readouterr().err)
    command = shlex.join(["python", "-m", "train", "--config", config, "--stage", "pretrain"])
    assert line == ("train: interrupted in stage pretrain; to resume it after epoch 1, run the command again without --fresh "
                    f"(with it, what the stages finished is removed and they start over): {command}")
    monkeypatch.setattr(TrainData, "batches", real)
    assert main(shlex.split(command)[3:]) == 0  # the command it gave resumes
    assert "pretrain: resumed from" in (tmp_path / "runs" / "t" / "train.log").read_text()
    assert torch.load(tmp_path / "runs" / "t" / "pretrain" / "last.pt", weights_only=True)["epoch"] == 2


def test_abbreviated_fresh_is_left_out_of_the_command_too(paired_dir, tmp_path, capsys, monkeypatch):
    config = _config(paired_dir, tmp_path, epochs=1)
    _stop_in_epoch(monkeypatch, 1, _interrupt)
    assert main(["--config", config, "--fres", "--stage", "translate"]) == 130
    command = shlex.join(["python", "-m", "train", "--config", config, "--stage", "translate"])
    assert _last_line(capsys.readouterr().err) == ("train: interrupted in stage translate before its first epoch finished; to start it, "
                                                   "run the command again without --fresh (with it, what the stages finished is removed "
                                                   f"and they start over): {command}")


# --- finding 6: SIGTERM is handled as Ctrl-C, exit 143 ---

class Unhandled(Exception):
    pass


def _guard(signum, _frame):  # where train leaves SIGTERM to the default, the test fails instead of pytest being killed
    raise Unhandled(f"signal {signum} reached the handler train should have replaced")


def test_sigterm_saves_says_where_to_resume_and_exits_143(paired_dir, tmp_path, capsys, monkeypatch):
    original = signal.signal(signal.SIGTERM, _guard)
    try:
        config = _config(paired_dir, tmp_path)
        real = _stop_in_epoch(monkeypatch, 2, lambda: signal.raise_signal(signal.SIGTERM))
        assert main(["--config", config, "--stage", "pretrain"]) == 143
        assert signal.getsignal(signal.SIGTERM) is _guard  # the previous handler is back
    finally:
        signal.signal(signal.SIGTERM, original)
    expected = "train: stopped by SIGTERM in stage pretrain; run the same command again to resume it after epoch 1"
    assert _last_line(capsys.readouterr().err) == expected
    assert expected in (tmp_path / "runs" / "t" / "train.log").read_text()
    monkeypatch.setattr(TrainData, "batches", real)
    assert main(["--config", config, "--stage", "pretrain"]) == 0
    assert "pretrain: resumed from" in (tmp_path / "runs" / "t" / "train.log").read_text()


# --- finding 9: --fresh removes everything of the discarded run ---

def test_fresh_removes_the_discarded_runs_history_and_pictures(paired_dir, tmp_path, capsys, monkeypatch):
    config = _config(paired_dir, tmp_path, epochs=1)
    assert main(["--config", config, "--stage", "pretrain"]) == 0
    stage = tmp_path / "runs" / "t" / "pretrain"
    for name in ("last.pt", "output.pt", "history.json", "curves.png", "samples.png"):
        assert (stage / name).is_file(), name
    _stop_in_epoch(monkeypatch, 1, _interrupt)  # the fresh run stops before its first epoch ends
    assert main(["--config", config, "--stage", "pretrain", "--fresh"]) == 130
    assert sorted(p.name for p in stage.iterdir()) == []
    assert set(STAGE_FILES) >= {"last.pt", "output.pt", "best.pt", "history.json", "curves.png", "samples.png"}
    assert "--fresh: removed last.pt, output.pt, history.json, curves.png, samples.png from" in (tmp_path / "runs" / "t" / "train.log").read_text()


# --- finding 5: the stage's wall time counts validation, pictures and checkpoints ---

def test_wall_time_counts_validation_and_is_what_the_card_reports(paired_dir, tmp_path, monkeypatch):
    cfg = tiny_config(paired_dir, tmp_path, epochs=2)
    data = TrainData(cfg.data, cfg.seed)
    real = StageRunner.validate

    def slow_validate(self):
        time.sleep(0.3)  # a lower bound: the wall time must hold it, the training-step time must not
        return real(self)

    monkeypatch.setattr(StageRunner, "validate", slow_validate)
    _, out = run_stage(cfg, "pretrain", data)
    meta = read_checkpoint(out)["meta"]
    assert meta["wall_seconds"] >= meta["train_seconds"] + 2 * 0.3
    history = json.loads((tmp_path / "t" / "pretrain" / "history.json").read_text())
    assert history[0]["wall"] >= 0.3 and history[1]["wall"] >= history[0]["wall"] + 0.3
    assert meta["wall_seconds"] >= history[-1]["wall"]
    state = torch.load(tmp_path / "t" / "pretrain" / "last.pt", weights_only=True)
    assert state["wall_seconds"] >= 0.6  # kept across a resume
    runner = StageRunner(cfg, MODEL, data, Context(), "pretrain")
    runner.resume()
    assert runner.wall_seconds() >= state["wall_seconds"]


def test_model_card_reports_the_wall_time_and_says_what_older_outputs_count():
    cfg = tiny_config("data", "runs")
    meta = card_meta({"translate": 10.0, "pretrain": 50.0, "finetune": 120.0})
    card = model_card(cfg, "c.yaml", meta, "w.pt")
    assert "- Wall time: 3.0 min in all (translate 10 s, pretrain 50 s, finetune 2.0 min; each stage's training, validation" in card
    assert "of which the training steps 2.2 min, on x86_64." in card
    meta["wall_seconds"] = None  # outputs written before the wall time was recorded
    card = model_card(cfg, "c.yaml", meta, "w.pt")
    assert ("- Training-step time (validation, sample pictures and checkpoints not counted): 2.2 min in all "
            "(translate 4.2 s, pretrain 30 s, finetune 1.6 min) on x86_64.") in card
    assert "Wall time" not in card


# --- finding 7: a previous stage's output.pt written by another stage ---

def test_another_stages_output_as_the_previous_stages_is_refused_or_warned(paired_dir, tmp_path, caplog, capsys):
    cfg = tiny_config(paired_dir, tmp_path)
    data = TrainData(cfg.data, cfg.seed)
    run = tmp_path / "t"
    for name in ("translate", "pretrain"):
        shutil.copy(run_stage(cfg, name, data)[1], tmp_path / f"{name}.pt")
    shutil.copy(tmp_path / "translate.pt", run / "pretrain" / "output.pt")  # swapped: each stage's random-init networks taken
    shutil.copy(tmp_path / "pretrain.pt", run / "translate" / "output.pt")
    with pytest.raises(CheckpointError, match=rf"{run / 'translate' / 'output.pt'}: the output of stage pretrain \(meta.stage\), which does "
                                              r"not train its nir_to_gray, gray_to_nir, disc_gray, disc_nir \(left at the random init\); "
                                              r"expected the output of stage translate"):
        StageRunner(cfg, MODEL, data, Context(), "finetune")
    shutil.copy(tmp_path / "translate.pt", run / "translate" / "output.pt")
    with pytest.raises(CheckpointError, match=r"the output of stage translate \(meta.stage\), which does not train its colorizer"):
        StageRunner(cfg, MODEL, data, Context(), "finetune")
    # through the command: one line, exit 2
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(to_dict(cfg)))
    assert main(["--config", str(config), "--stage", "finetune"]) == 2
    assert "which does not train its colorizer (left at the random init); expected the output of stage pretrain" in capsys.readouterr().err
    # a finetune's output trained every network: taken, with a warning
    shutil.copy(tmp_path / "pretrain.pt", run / "pretrain" / "output.pt")
    fine = run_stage(cfg, "finetune", data)[1]
    shutil.copy(fine, run / "pretrain" / "output.pt")
    caplog.set_level("WARNING")
    StageRunner(cfg, MODEL, data, Context(), "finetune")
    assert f"{run / 'pretrain' / 'output.pt'} is the output of stage finetune (meta.stage), not of stage pretrain" in caplog.text
