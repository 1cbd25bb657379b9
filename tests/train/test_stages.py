"""One iteration of each stage chained through checkpoints; resume reaches the same weights."""
import json

import numpy as np
import pytest
import torch

from nirvision.models import load_networks
from nirvision.models.checkpoint import read_checkpoint
from nirvision.models.registry import load_model_config
from train.data import TrainData
from train.dist import Context
from train.loop import StageInterrupted, StageRunner

from .conftest import tiny_config

MODEL = load_model_config("lite", require_training=True)


def run_stage(cfg, name, data, stop=None):
    runner = StageRunner(cfg, MODEL, data, Context(), name)
    return runner, runner.run(stop_after_steps=stop)


def test_three_stages_chain_through_checkpoints(paired_dir, tmp_path):
    cfg = tiny_config(paired_dir, tmp_path)
    data = TrainData(cfg.data, cfg.seed)
    outputs = {}
    for name in ("translate", "pretrain", "finetune"):
        runner = StageRunner(cfg, MODEL, data, Context(), name)
        if name == "finetune":  # it starts from translate's G_N2G and pretrain's F_G exactly as they were handed on
            for prev, role in (("translate", "nir_to_gray"), ("pretrain", "colorizer")):
                handed_on = load_networks(outputs[prev], roles=(role,))[1][role].state_dict()
                start = runner.nets[role].state_dict()
                assert start.keys() == handed_on.keys() and all(torch.equal(start[k], v) for k, v in handed_on.items()), role
        outputs[name] = runner.run()
        stage_dir = tmp_path / "t" / name
        for f in ("output.pt", "last.pt", "samples.png", "curves.png", "history.json"):
            assert (stage_dir / f).is_file(), f
        hist = json.loads((stage_dir / "history.json").read_text())
        # translate predicts gray against gray truth: no colour angle to measure (it would always be 0)
        assert len(hist) == 1 and set(hist[0]["val"]) == ({"psnr", "ssim"} if name == "translate" else {"psnr", "ssim", "ae"})
        assert all(torch.isfinite(torch.tensor(v)) for v in hist[0]["train"].values())
    # finetune started from translate's G_N2G and pretrain's F_G, then changed them
    _, trans, _ = load_networks(outputs["translate"], roles=("nir_to_gray",))
    _, pre, _ = load_networks(outputs["pretrain"], roles=("colorizer",))
    _, fine, _ = load_networks(outputs["finetune"])
    key = "heads.0.weight"
    assert not torch.equal(trans["nir_to_gray"].state_dict()[key], fine["nir_to_gray"].state_dict()[key])
    assert not torch.equal(pre["colorizer"].state_dict()[key], fine["colorizer"].state_dict()[key])
    # and a fresh network differs from both: the chain really came from the checkpoints
    torch.manual_seed(123)
    fresh = MODEL.build("colorizer").state_dict()[key]
    assert not torch.equal(fresh, pre["colorizer"].state_dict()[key])


def test_finetune_without_previous_stages_is_a_clear_error(paired_dir, tmp_path):
    cfg = tiny_config(paired_dir, tmp_path)
    data = TrainData(cfg.data, cfg.seed)
    with pytest.raises(FileNotFoundError, match="run .*--stage translate"):
        StageRunner(cfg, MODEL, data, Context(), "finetune")


@pytest.mark.parametrize("stage", ["translate", "pretrain"])
def test_interrupt_and_resume_matches_uninterrupted_run(paired_dir, tmp_path, stage):
    data_cfg = tiny_config(paired_dir, tmp_path / "a", epochs=2, iters=2)
    data = TrainData(data_cfg.data, data_cfg.seed)
    straight, _ = run_stage(tiny_config(paired_dir, tmp_path / "a", epochs=2, iters=2), stage, data)

    cfg_b = tiny_config(paired_dir, tmp_path / "b", epochs=2, iters=2)
    with pytest.raises(StageInterrupted):
        run_stage(cfg_b, stage, data, stop=3)  # dies in the middle of epoch 2
    resumed, _ = run_stage(tiny_config(paired_dir, tmp_path / "b", epochs=2, iters=2), stage, data)
    assert resumed.start_epoch == 1
    for role in straight.stage.trains:
        a, b = straight.nets[role].state_dict(), resumed.nets[role].state_dict()
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), f"{role}.{k} differs after resume"
    assert [h["epoch"] for h in resumed.history] == [1, 2]


def test_finetune_with_zero_weights_skips_those_terms(paired_dir, tmp_path):
    cfg = tiny_config(paired_dir, tmp_path)
    data = TrainData(cfg.data, cfg.seed)
    for name in ("translate", "pretrain"):
        run_stage(cfg, name, data)
    cfg.finetune.lambda_tran = 0.0
    cfg.finetune.lambda_feat = 0.0
    runner = StageRunner(cfg, MODEL, data, Context(), "finetune")
    before = {r: {k: v.clone() for k, v in runner.nets[r].state_dict().items()} for r in ("disc_gray", "disc_feat", "gray_to_nir", "colorizer")}
    runner.run()
    train = runner.history[-1]["train"]
    assert "l_pf" in train and "l_tran" not in train and "d_feat" not in train
    for role in ("disc_gray", "disc_feat", "gray_to_nir"):  # nothing trains them when their terms are off
        assert all(torch.equal(v, runner.nets[role].state_dict()[k]) for k, v in before[role].items()), role
    assert not torch.equal(before["colorizer"]["heads.0.weight"], runner.nets["colorizer"].state_dict()["heads.0.weight"])


def test_lr_factor_is_cyclegans_linear_decay():
    from train.loop import lr_factor

    # 12 epochs, decay over the last half: 6 at full rate, then 6/7 ... 1/7 (CycleGAN's policy)
    got = [lr_factor(e, 12, 0.5) for e in range(12)]
    assert got == pytest.approx([1.0] * 6 + [k / 7 for k in range(6, 0, -1)])
    assert [lr_factor(e, 5, 1.0) for e in range(5)] == [1.0] * 5  # no decay
    assert lr_factor(0, 4, 0.0) == pytest.approx(4 / 5)  # decaying from the first epoch


def test_keep_best_outputs_the_epoch_with_the_best_validation_psnr(paired_dir, tmp_path, monkeypatch):
    scripted = iter([12.0, 15.0, 13.0, 14.0])  # validation PSNR per epoch: the second epoch is the best
    real_validate = StageRunner.validate

    def validate(self):
        metrics, pictures = real_validate(self)
        return {**metrics, "psnr": next(scripted)}, pictures

    monkeypatch.setattr(StageRunner, "validate", validate)
    cfg = tiny_config(paired_dir, tmp_path, epochs=4, iters=1, lr=2e-3, keep_best=True)
    runner, out = run_stage(cfg, "pretrain", TrainData(cfg.data, cfg.seed))
    meta = read_checkpoint(out)["meta"]
    assert meta["epoch"] == 2 and meta["val"]["psnr"] == 15.0 and meta["last_val"]["psnr"] == 14.0
    best = read_checkpoint(tmp_path / "t" / "pretrain" / "best.pt")["networks"]["colorizer"]
    output = read_checkpoint(out)["networks"]["colorizer"]
    last = torch.load(tmp_path / "t" / "pretrain" / "last.pt", weights_only=True)
    assert last["best"] == {"epoch": 2, "psnr": 15.0}
    assert all(torch.equal(best[k], output[k]) for k in best)
    assert any(not torch.equal(last["networks"]["colorizer"][k], output[k]) for k in output)  # not the last epoch's
