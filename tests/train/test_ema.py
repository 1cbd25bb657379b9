"""The generators' weight average (``ema``): its arithmetic, what a stage hands on, resume."""
import json
import logging

import pytest
import torch
from torch import nn

from nirvision.config import ConfigError
from nirvision.models.checkpoint import read_checkpoint
from train.data import TrainData
from train.ema import WeightAverage
from train.loop import StageInterrupted

from .conftest import tiny_config
from .test_stages import run_stage


def test_average_follows_the_warmed_up_decay_and_swaps_back_exactly():
    net = nn.Linear(2, 1)
    with torch.no_grad():
        net.weight.fill_(0.0), net.bias.fill_(0.0)
    avg = WeightAverage({"n": net}, decay=0.9)
    expected = 0.0
    for n, value in enumerate([1.0, 2.0, 4.0, -3.0, 5.0]):
        with torch.no_grad():
            net.weight.fill_(value), net.bias.fill_(-value)
        d = min(0.9, (1 + n) / (10 + n))  # 0.1, 0.18..., then capped at 0.9 from the 9th update on
        expected = d * expected + (1 - d) * value
        avg.update()
    assert avg.updates == 5
    live_w = net.weight.detach().clone()
    with avg.applied():
        assert torch.allclose(net.weight, torch.full_like(net.weight, expected))
        assert torch.allclose(net.bias, torch.full_like(net.bias, -expected))
    assert torch.equal(net.weight, live_w)  # the live weights are back, bit for bit
    assert avg.rate() == pytest.approx(6 / 15)


def test_average_refuses_a_state_of_another_network():
    avg = WeightAverage({"colorizer": nn.Linear(2, 1)}, decay=0.99)
    other = WeightAverage({"colorizer": nn.Linear(3, 1)}, decay=0.99).state_dict()
    with pytest.raises(ValueError, match="colorizer.weight.*shape .*--fresh"):
        avg.load_state_dict(other, "last.pt")
    with pytest.raises(ValueError, match="does not hold network 'colorizer'"):
        avg.load_state_dict({"avg": {}}, "last.pt")


def test_ema_out_of_range_is_refused_naming_the_key(paired_dir, tmp_path):
    with pytest.raises(ConfigError, match="ema must lie in"):
        tiny_config(paired_dir, tmp_path, ema=1.0)


def test_stage_hands_on_the_average_and_records_both_validations(paired_dir, tmp_path):
    cfg = tiny_config(paired_dir, tmp_path, epochs=2, iters=3, lr=2e-3, ema=0.5)
    runner, out = run_stage(cfg, "pretrain", TrainData(cfg.data, cfg.seed))
    output = read_checkpoint(out)
    assert output["meta"]["ema"] == {"decay": 0.5, "updates": 6}
    live = torch.load(tmp_path / "t" / "pretrain" / "last.pt", weights_only=True)
    averaged = live["ema"]["avg"]["colorizer"]
    handed_on = output["networks"]["colorizer"]
    assert all(torch.equal(handed_on[k], averaged[k]) for k in averaged)
    assert any(not torch.equal(handed_on[k], live["networks"]["colorizer"][k]) for k in averaged)
    hist = json.loads((tmp_path / "t" / "pretrain" / "history.json").read_text())
    assert [set(h) >= {"val", "val_live"} for h in hist] == [True, True]
    assert hist[-1]["val"] != hist[-1]["val_live"]  # two sets of weights, two measurements
    # the runner's networks still train on the live weights
    assert all(torch.equal(runner.nets["colorizer"].state_dict()[k], live["networks"]["colorizer"][k]) for k in averaged)


def test_resume_with_ema_reaches_the_uninterrupted_average(paired_dir, tmp_path):
    def cfg(sub):
        return tiny_config(paired_dir, tmp_path / sub, epochs=2, iters=2, lr=2e-3, ema=0.7)

    data = TrainData(cfg("a").data, 3)
    _, straight = run_stage(cfg("a"), "pretrain", data)
    with pytest.raises(StageInterrupted):
        run_stage(cfg("b"), "pretrain", data, stop=3)
    _, resumed = run_stage(cfg("b"), "pretrain", data)
    a, b = read_checkpoint(straight)["networks"]["colorizer"], read_checkpoint(resumed)["networks"]["colorizer"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_switching_ema_on_mid_stage_starts_the_average_from_the_resumed_weights(paired_dir, tmp_path, caplog):
    data = TrainData(tiny_config(paired_dir, tmp_path).data, 3)
    run_stage(tiny_config(paired_dir, tmp_path, epochs=1, iters=1), "pretrain", data)
    with caplog.at_level(logging.WARNING, logger="train.loop"):
        runner, out = run_stage(tiny_config(paired_dir, tmp_path, epochs=2, iters=1, ema=0.9), "pretrain", data)
    assert "holds no weight average" in caplog.text
    assert runner.ema.updates == 1 and read_checkpoint(out)["meta"]["ema"]["updates"] == 1


def test_keep_best_chooses_by_the_average_not_the_live_weights(paired_dir, tmp_path, monkeypatch):
    from train.loop import StageRunner

    scripted = iter([10.0, 0.0, 9.0, 20.0])  # per epoch: the average, then the live weights
    real_validate = StageRunner.validate

    def validate(self):
        metrics, pictures = real_validate(self)
        return {**metrics, "psnr": next(scripted)}, pictures

    monkeypatch.setattr(StageRunner, "validate", validate)
    cfg = tiny_config(paired_dir, tmp_path, epochs=2, iters=2, lr=2e-3, ema=0.5, keep_best=True)
    _, out = run_stage(cfg, "pretrain", TrainData(cfg.data, cfg.seed))
    meta = read_checkpoint(out)["meta"]
    assert meta["epoch"] == 1 and meta["val"]["psnr"] == 10.0  # the live 20 dB of epoch 2 is not what is handed on
    assert meta["ema"]["updates"] == 2  # epoch 1's average (2 steps), not the last one's
    best = read_checkpoint(tmp_path / "t" / "pretrain" / "best.pt")["networks"]["colorizer"]
    output = read_checkpoint(out)["networks"]["colorizer"]
    assert all(torch.equal(best[k], output[k]) for k in best)
